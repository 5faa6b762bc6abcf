"""``xling train``, ``xling eval`` and ``xling data prepare``: parse, call the library, print."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

import typer
from pydantic import Field

from xling.cli.app import app, data_app
from xling.cli.common import ConfigOption, JsonOption, KindOption, emit_json
from xling.config import LoraSpec, ModelSpec, ScoreSpec, Spec, TrainSpec, load_spec, parse_spec
from xling.errors import XlingError
from xling.jsonable import records


class EngineConfig(Spec):
    """``--config`` of ``xling train``/``xling eval``: LoRA, training and scoring options (all optional)."""

    model: ModelSpec | None = None
    lora: LoraSpec = Field(default_factory=LoraSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    score: ScoreSpec = Field(default_factory=ScoreSpec)


def _config(path: Path | None) -> EngineConfig:
    return load_spec(EngineConfig, path) if path else EngineConfig()


def model_spec(arg: str | None, kind: str, config: EngineConfig) -> ModelSpec:
    """``--model``: a model YAML, a local folder, or a hub id (else the config's ``model``)."""
    if arg is None:
        if config.model is None:
            raise XlingError("no model: pass --model or set 'model' in --config")
        return config.model
    if arg.endswith((".yaml", ".yml")):
        return load_spec(ModelSpec, arg)
    local = Path(arg).expanduser()
    if local.exists() or arg.startswith((".", "/", "~")):
        return parse_spec(ModelSpec, {"name": local.resolve().name, "path": str(local), "kind": kind}, "--model")
    return parse_spec(ModelSpec, {"name": arg, "kind": kind}, "--model")


@app.command()
def train(
    task: str = typer.Option(..., "--task", help="Task YAML path, mini:<name>, or a paper benchmark name."),
    lang: str = typer.Option(..., "--lang", help="Source language."),
    out: Path = typer.Option(..., "-o", "--out", metavar="DIR", help="Adapter folder to write."),
    model: str | None = typer.Option(None, "--model", help="Model folder, hub id or model YAML."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the LoRA initialisation, data order and dropout."),
    kind: KindOption = "causal",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune LoRA on one source cell (task × language) and save the adapter."""
    from rich.console import Console

    from xling.train import train_cell

    cfg = _config(config)
    spec = model_spec(model, kind, cfg)
    folder = train_cell(spec, task, lang, seed, out, cfg.lora, cfg.train, progress=not as_json)
    log = json.loads((folder / "train_log.json").read_text())
    if as_json:
        emit_json({"adapter": str(folder), **log})
        return
    val = log["best_val_loss"]
    Console().print(
        f"adapter written to [bold]{folder}[/] (kept epoch {log['kept_epoch']}"
        + (f", validation loss {val:.4f})" if val is not None else ")")
    )


@app.command("eval")
def evaluate(
    task: list[str] = typer.Option(..., "--task", help="Task (repeatable): YAML path, mini:<name> or benchmark."),
    out: Path = typer.Option(..., "-o", "--out", metavar="DIR", help="Output folder."),
    model: str | None = typer.Option(None, "--model", help="Model folder, hub id or model YAML."),
    adapter: list[str] = typer.Option([], "--adapter", help="Adapter folder, or NAME=FOLDER (repeatable)."),
    lang: list[str] = typer.Option([], "--lang", help="Languages (repeatable; default: all of each task)."),
    split: Literal["train", "test"] | None = typer.Option(
        None, "--split", help="Split to score (default: the config's, test)."
    ),
    kind: KindOption = "causal",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score the base model and every adapter on every task × language; write log-likelihoods and scores."""
    from rich.console import Console
    from rich.table import Table

    from xling.score import score_items, summarize, write_outputs
    from xling.tasks.registry import load_aligned, resolve_task

    cfg = _config(config)
    spec = model_spec(model, kind, cfg)
    score = cfg.score if split is None else cfg.score.model_copy(update={"split": split})
    adapters: dict[str, str | None] = {"base": None}
    for entry in adapter:
        name, _, folder = entry.rpartition("=") if "=" in entry else (Path(entry).name, "", entry)
        if name in adapters:
            raise XlingError(f"adapter name {name!r} given twice (use NAME=FOLDER to tell them apart)")
        adapters[name] = folder
    items = []
    for t in task:
        langs = list(lang) or resolve_task(t).languages()
        for lang_items in load_aligned(t, langs, score.split).values():
            items += lang_items
    partial = out.resolve().parent / f".{out.resolve().name}.partial"  # finished cells: a rerun resumes from them
    console = Console(stderr=as_json)
    if partial.is_dir():
        console.print(f"resuming: {len(list(partial.glob('*.parquet')))} finished cell(s) in {partial}")
    loglik = score_items(spec, adapters, items, score, progress=not as_json, checkpoint_dir=partial)
    write_outputs(
        loglik,
        out,
        {"model": spec, "adapters": adapters, "tasks": task, "languages": lang, "score": score},
        score.benchmark_format,
        tasks=task,
    )
    shutil.rmtree(partial, ignore_errors=True)
    if as_json:
        emit_json(
            {
                "out": str(out),
                "scores": records(summarize(loglik)),
                "peak_memory_bytes": loglik.attrs.get("peak_memory_bytes"),
            }
        )
        return
    table = Table("adapter", "task", "language", "n", "acc", "acc_norm", "acc_bytes")
    for row in summarize(loglik).itertuples(index=False):
        table.add_row(
            row.adapter,
            row.task,
            row.language,
            str(row.n),
            f"{row.acc:.4f}",
            f"{row.acc_norm:.4f}",
            f"{row.acc_bytes:.4f}",
        )
    console.print(table)
    peak = loglik.attrs.get("peak_memory_bytes") or 0
    console.print(f"wrote {out}/loglikelihoods.parquet and {out}/scores.csv; peak memory {peak / 2**20:.0f} MiB")


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
