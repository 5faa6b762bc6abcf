"""Commands of `xling cle`: cross-lingual word embeddings (map, bli, run, grid, simulate)."""

from pathlib import Path
from typing import Annotated

import typer

from xling.cli.app import app, data_app

cle_app = typer.Typer(help="Cross-lingual word embeddings: map, evaluate with BLI, simulate.", no_args_is_help=True)
app.add_typer(cle_app, name="cle")


# --- BLI and simulation (data / evaluation side) -------------------------------------------------------------------


@cle_app.command("bli")
def bli_command(
    src: Annotated[Path, typer.Option("--src", help="Source vectors (mapped), word2vec text or .bin.")],
    tgt: Annotated[Path, typer.Option("--tgt", help="Target vectors (mapped), word2vec text or .bin.")],
    test_dict: Annotated[Path, typer.Option("--test-dict", help="Test dictionary: 'source<TAB>target' lines.")],
    retrieval: Annotated[str, typer.Option(help="nn (cosine), csls or isf (inverted softmax).")] = "nn",
    convention: Annotated[str, typer.Option(help="line (xling-eval: every line) or source (MUSE/vecmap: any gold).")]
    = "line",
    oov: Annotated[str, typer.Option(help="skip out-of-vocabulary items or count them as wrong.")] = "skip",
    case: Annotated[str, typer.Option(help="keep: compare words as written; lower: lowercase vectors and dictionary.")]
    = "keep",
    max_vocab: Annotated[int, typer.Option(help="Read at most this many vectors per side (0: all).")] = 200000,
    csls_k: Annotated[int, typer.Option(help="CSLS neighbourhood size.")] = 10,
    isf_beta: Annotated[float, typer.Option(help="Inverse temperature of the inverted softmax.")] = 30.0,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip malformed vector rows (counted) instead of failing.")]
    = False,
    cache: Annotated[bool, typer.Option(help="Keep a .npy copy of each vectors file for fast rereads.")] = True,
    backend: Annotated[str, typer.Option(help="auto, numpy, faiss or torch.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: p1, p5, p10, mrr, coverage, n, ...")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the result and run record here.")]
    = None,
) -> None:
    """Bilingual lexicon induction: P@1/5/10, MRR and coverage of two (mapped) spaces on a test dictionary."""
    import json

    from xling.cle.bli import evaluate
    from xling.cle.dictionaries import lookup, read_dictionary
    from xling.cle.vectors import read_vectors

    options = dict(max_vocab=max_vocab or None, lowercase=case == "lower", skip_bad=skip_bad, cache=cache)
    dictionary = read_dictionary(test_dict, case=case)
    x = read_vectors(src, **options)
    z = read_vectors(tgt, **options)
    found = lookup(dictionary, x.index, z.index)
    result = evaluate(x.vectors, z.vectors, found, retrieval_method=retrieval, convention=convention, oov=oov,
                      csls_k=csls_k, isf_beta=isf_beta, inplace=True, backend=backend).to_dict()
    if output is not None:
        from xling.io import atomic_file
        from xling.provenance import run_record

        config = dict(src=str(src), tgt=str(tgt), test_dict=str(test_dict), retrieval=retrieval,
                      convention=convention, oov=oov, case=case, csls_k=csls_k, isf_beta=isf_beta, **options)
        with atomic_file(output) as fh:
            json.dump({**result, "run": run_record(config)}, fh, indent=2, default=str)
    if as_json:
        print(json.dumps(result))
        return
    _print_bli(result, dictionary, x, z)


def _print_bli(result: dict, dictionary, x, z) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"BLI ({result['retrieval']}, per {result['convention']}, OOV {result['oov']})")
    for col in ("P@1", "P@5", "P@10", "MRR", "coverage", "n"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{100 * result[k]:.2f}" for k in ("p1", "p5", "p10", "mrr", "coverage")), str(result["n"]))
    console = Console()
    console.print(table)
    notes = [f"{len(dictionary)} dictionary lines ({dictionary.repeats} repeats dropped)",
             f"{len(x)} source / {len(z)} target vectors", f"{result['n_oov']} OOV items"]
    if x.skipped or z.skipped:
        notes.append(f"{x.skipped} + {z.skipped} bad vector rows skipped")
    console.print("; ".join(notes))


@cle_app.command("simulate")
def simulate_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for src.vec, tgt.vec, train.tsv, test.tsv.")],
    n_words: Annotated[int, typer.Option(help="Vocabulary size of each language.")] = 20000,
    dim: Annotated[int, typer.Option(help="Dimension.")] = 300,
    noise: Annotated[float, typer.Option(help="Noise scale (rare words get more).")] = 0.3,
    warp: Annotated[float, typer.Option(help="Non-isomorphism in [0, 1] (0: a linear map fits exactly).")] = 0.0,
    overlap: Annotated[float, typer.Option(help="Share of each vocabulary with a translation.")] = 0.9,
    n_train: Annotated[int, typer.Option(help="Training dictionary size (most frequent words).")] = 5000,
    n_test: Annotated[int, typer.Option(help="Test dictionary size (random other words).")] = 2000,
    clusters: Annotated[int, typer.Option(help="Shared concept clusters.")] = 100,
    lang_clusters: Annotated[int, typer.Option(help="Clusters only one language has.")] = 20,
    rank_noise: Annotated[float, typer.Option(help="Disagreement of the two frequency rankings (log scale).")] = 1.0,
    synonyms: Annotated[float, typer.Option(help="Share of translated words with a second gold translation.")] = 0.05,
    identical: Annotated[float, typer.Option(help="Share of translated words spelled the same in both.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write two simulated embedding spaces with a planted map, and train/test dictionaries."""
    from rich.console import Console

    from xling.cle.simulate import simulate_pair, write_pair

    pair = simulate_pair(n_words, dim, noise, warp, overlap, seed, n_train=n_train, n_test=n_test,
                         n_clusters=clusters, lang_clusters=lang_clusters, rank_noise=rank_noise, synonyms=synonyms,
                         identical=identical)
    paths = write_pair(pair, out)
    Console().print(f"wrote {', '.join(str(p) for p in paths.values())} "
                    f"({len(pair.train)} train / {len(pair.test)} test dictionary lines)")


@data_app.command("fetch")
def fetch_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Data folder (dictionaries in <out>/xling-eval-bli).")]
    = Path("xling-data"),
    pairs: Annotated[str, typer.Option(help="Comma-separated language pairs (e.g. en-de,de-fi), 'all' or 'none'.")]
    = "all",
    vectors: Annotated[str, typer.Option(help="Comma-separated languages of fastText wiki vectors to fetch.")] = "",
    max_vocab: Annotated[int, typer.Option(help="Rows of each vectors file to download (0: the whole file).")]
    = 200000,
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
        files = fetch_bli(out / "xling-eval-bli", wanted, base_url=bli_base_url,
                          report=lambda path, status: counts.__setitem__(status, counts[status] + 1))
        console.print(f"dictionaries: {len(files)} files for {len(wanted or bli_pairs())} pairs in "
                      f"{out / 'xling-eval-bli'} ({counts['downloaded']} downloaded, {counts['cached']} cached)")
    for lang in [v.strip() for v in vectors.split(",") if v.strip()]:
        with console.status(f"wiki.{lang}.vec ...") as status:
            path = fetch_fasttext(lang, out / "vectors", max_vocab=max_vocab or None, base_url=vectors_base_url,
                                  report=lambda rows, lang=lang: status.update(f"wiki.{lang}.vec: {rows} rows"))
        console.print(f"vectors: {path}")
