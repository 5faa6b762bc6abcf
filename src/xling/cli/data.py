"""``xling data fetch`` and ``xling data prepare``: the data a study needs, downloaded or laid out from released
files, so later runs work offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xling.cli.app import data_app
from xling.cli.common import JsonOption, emit_json
from xling.errors import XlingError


@data_app.command("prepare")
def prepare(
    config: str = typer.Argument(
        ...,
        help="A data YAML (tasks, languages, source) or a grid config; or 'cle' for the CLE study's data (--from).",
    ),
    source: str | None = typer.Option(
        None,
        "--source",
        help="aligned, upstream, or a folder of local copies "
        "of the hub repos (FOLDER/<owner>/<name>); overrides the config's.",
    ),
    from_: Path | None = typer.Option(
        None, "--from", help="cle: the folder holding the downloaded releases (archives or extracted)."
    ),
    out: Path | None = typer.Option(
        None, "-o", "--out", metavar="DIR", help="cle: the data folder to lay out (default: xling-data)."
    ),
    langs: str | None = typer.Option(None, help="cle: comma-separated languages (default: the paper's eight)."),
    only: str | None = typer.Option(None, help="cle: comma-separated datasets: vectors, bli, cldc, xnli, clir."),
    max_vocab: int | None = typer.Option(
        None, min=0, help="cle: rows of each vectors file to keep (0: all; default: 200000)."
    ),
    encoding: list[str] = typer.Option(
        [], help="cle: LANG=CODEC for CLEF files of a language (repeatable), e.g. ru=koi8-r."
    ),
    as_json: JsonOption = False,
) -> None:
    """Fetch every dataset CONFIG needs into the local cache, so later runs work offline; or, with 'cle', lay out
    the CLE study's data (vectors, dictionaries, TED CLDC, XNLI, CLEF 2003) from the released files in --from."""
    from rich.console import Console

    cle_options = {"--from": from_, "-o": out, "--langs": langs, "--only": only, "--max-vocab": max_vocab}
    if config != "cle":
        given = [name for name, value in cle_options.items() if value is not None] + (
            ["--encoding"] if encoding else []
        )
        if given:
            raise XlingError(f"{', '.join(given)}: only with 'xling data prepare cle'")
        from xling.tasks.prepare import prepare_data, read_data_spec

        done = prepare_data(read_data_spec(config, source))
        if as_json:
            emit_json({"prepared": done})
        else:
            Console().print(f"prepared {len(done)} dataset(s)" + "".join(f"\n  {d}" for d in done))
        return
    if source is not None:
        raise XlingError("--source: only with a data YAML or grid config (for 'cle', use --from)")
    if from_ is None:
        raise XlingError("xling data prepare cle: --from FOLDER is required (where the downloaded files are)")
    _prepare_cle(from_, out or Path("xling-data"), langs, only, max_vocab, encoding, as_json)


def _prepare_cle(
    from_: Path, out: Path, langs: str | None, only: str | None, max_vocab: int | None, encoding: list, as_json: bool
) -> None:
    from rich.console import Console
    from rich.table import Table

    from xling.cle.prepare import prepare_cle, summary

    encodings = {}
    for item in encoding:
        lang, sep, codec = item.partition("=")
        if not sep or not lang.strip() or not codec.strip():
            raise XlingError(f"--encoding: expected LANG=CODEC, found {item!r}")
        encodings[lang.strip()] = codec.strip()
    console = Console(stderr=as_json)
    with console.status("preparing ...") as status:
        results = prepare_cle(
            from_,
            out,
            languages=[x.strip() for x in langs.split(",") if x.strip()] if langs else None,
            only=[x.strip() for x in only.split(",") if x.strip()] if only else None,
            max_vocab=200000 if max_vocab is None else max_vocab or None,
            encodings=encodings,
            report=lambda message: status.update(message),
        )
    if as_json:
        emit_json({"out": str(out), "datasets": summary(results)})
        return
    table = Table("dataset", "written", "kept", "source")
    for r in results:
        table.add_row(r.dataset, str(len(r.written)), str(len(r.kept)), r.source or "not found")
    console.print(table)
    for r in results:
        for note in r.notes:
            console.print(f"{r.dataset}: {note}", highlight=False)
    console.print(f"data folder: {out}")


@data_app.command("fetch")
def fetch_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Data folder (dictionaries in <out>/xling-eval-bli).")
    ] = Path("xling-data"),
    pairs: Annotated[
        str, typer.Option(help="Comma-separated language pairs (e.g. en-de,de-fi), 'all' or 'none'.")
    ] = "all",
    vectors: Annotated[str, typer.Option(help="Comma-separated languages of fastText wiki vectors to fetch.")] = "",
    max_vocab: Annotated[
        int | None, typer.Option(help="Rows of each vectors file to download, 0 for the whole file (default: 200000).")
    ] = None,
    bli_base_url: Annotated[str | None, typer.Option(help="Mirror of xling-eval's bli_datasets folder.")] = None,
    vectors_base_url: Annotated[str | None, typer.Option(help="Mirror of fastText's vectors-wiki folder.")] = None,
) -> None:
    """Download the xling-eval BLI dictionaries and fastText wiki vectors (cached, checksummed, resumable)."""
    from rich.console import Console

    from xling.cle.fetch import bli_pairs, fetch_bli, fetch_fasttext

    console = Console()
    wanted = None if pairs == "all" else [] if pairs == "none" else [p.strip() for p in pairs.split(",") if p.strip()]
    if wanted != []:
        counts = {"cached": 0, "downloaded": 0}
        files = fetch_bli(
            out / "xling-eval-bli",
            wanted,
            base_url=bli_base_url,
            report=lambda path, status: counts.__setitem__(status, counts[status] + 1),
        )
        console.print(
            f"dictionaries: {len(files)} files for {len(wanted or bli_pairs())} pairs in "
            f"{out / 'xling-eval-bli'} ({counts['downloaded']} downloaded, {counts['cached']} cached)"
        )
    for lang in [v.strip() for v in vectors.split(",") if v.strip()]:
        with console.status(f"wiki.{lang}.vec ...") as status:
            rows = 200000 if max_vocab is None else max_vocab or None
            path = fetch_fasttext(
                lang,
                out / "vectors",
                max_vocab=rows,
                base_url=vectors_base_url,
                report=lambda rows, lang=lang: status.update(f"wiki.{lang}.vec: {rows} rows"),
            )
        console.print(f"vectors: {path}")
