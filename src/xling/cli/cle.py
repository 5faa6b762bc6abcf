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

    from rich.console import Console

    from xling.cle.bli import evaluate
    from xling.cle.dictionaries import lookup, read_dictionary
    from xling.cle.vectors import read_vectors

    options = dict(max_vocab=max_vocab or None, lowercase=case == "lower", skip_bad=skip_bad, cache=cache)
    dictionary = read_dictionary(test_dict, case=case)
    with Console(stderr=True).status(f"reading {src}") as status:  # progress on stderr: --json output stays clean
        x = read_vectors(src, **options)
        status.update(f"reading {tgt}")
        z = read_vectors(tgt, **options)
        found = lookup(dictionary, x.index, z.index)
        status.update(f"ranking {len(found.src_rows)} test pairs among {len(z)} targets ({retrieval})")
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
    spectrum: Annotated[float, typer.Option(help="Decay of the latent dimensions' scales (0: round point clouds).")]
    = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write two simulated embedding spaces with a planted map, and train/test dictionaries."""
    from rich.console import Console

    from xling.cle.simulate import simulate_pair, write_pair

    pair = simulate_pair(n_words, dim, noise, warp, overlap, seed, n_train=n_train, n_test=n_test,
                         n_clusters=clusters, lang_clusters=lang_clusters, rank_noise=rank_noise, synonyms=synonyms,
                         identical=identical, spectrum=spectrum)
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


# --- mapping (methods side) ------------------------------------------------------------------------------------------

_METHOD_HELP = ("proc, proc-b, proc-b-iterative, cca, cca-xlingeval, vecmap-sup, vecmap-semi, vecmap-identical, "
                "vecmap-unsup, muse, icp or gwa.")
_PARAM_HELP = "Method parameter KEY=VALUE (YAML value), repeatable, e.g. --param vocabulary_cutoff=10000."


def _parse_params(items: list[str] | None) -> dict:
    """``KEY=VALUE`` options into a dict (values parsed as YAML scalars); malformed → ``XlingError``."""
    import yaml

    from xling.errors import XlingError

    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise XlingError(f"--param: expected KEY=VALUE, found {item!r}")
        if key.strip() in out:
            raise XlingError(f"--param: {key.strip()!r} given twice")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise XlingError(f"--param {key.strip()}: cannot parse value {value!r}") from None
        if isinstance(out[key.strip()], str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                out[key.strip()] = float(out[key.strip()])
            except ValueError:
                pass
    return out


def _load_for_mapping(method: str, src: Path, tgt: Path, train_dict: Path | None, max_vocab: int, case: str,
                      skip_bad: bool, cache: bool):
    """Validate the method name first (cheap), then read the dictionary and both vector files."""
    from xling.cle.dictionaries import read_dictionary
    from xling.cle.mappers import seed_of
    from xling.cle.vectors import read_vectors

    seed_kind = seed_of(method)
    if seed_kind == "dictionary" and train_dict is None:
        from xling.errors import XlingError

        raise XlingError(f"method {method!r} needs a training dictionary (--train-dict)")
    train = read_dictionary(train_dict, case=case) if train_dict is not None else None
    options = dict(max_vocab=max_vocab or None, lowercase=case == "lower", skip_bad=skip_bad, cache=cache)
    return train, read_vectors(src, **options), read_vectors(tgt, **options), options


@cle_app.command("map")
def map_command(
    method: Annotated[str, typer.Option("--method", "-m", help=_METHOD_HELP)],
    src: Annotated[Path, typer.Option("--src", help="Source vectors, word2vec text or .bin (frequency order).")],
    tgt: Annotated[Path, typer.Option("--tgt", help="Target vectors, word2vec text or .bin (frequency order).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: src.vec, tgt.vec, W_src.npy, W_tgt.npy, "
                                                          "run.json.")],
    train_dict: Annotated[Path | None, typer.Option("--train-dict", help="Training dictionary (supervised and "
                                                                         "semi-supervised methods).")] = None,
    max_vocab: Annotated[int, typer.Option(help="Read at most this many vectors per side (0: all).")] = 200000,
    case: Annotated[str, typer.Option(help="keep: words as written; lower: lowercase vectors and dictionary.")]
    = "keep",
    seed: Annotated[int, typer.Option(help="Random seed (stochastic dictionary induction).")] = 0,
    param: Annotated[list[str] | None, typer.Option("--param", help=_PARAM_HELP)] = None,
    vectors: Annotated[bool, typer.Option(help="Write the mapped vectors (--no-vectors: only the maps).")] = True,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip malformed vector rows (counted) instead of failing.")]
    = False,
    cache: Annotated[bool, typer.Option(help="Keep a .npy copy of each vectors file for fast rereads.")] = True,
) -> None:
    """Map two embedding spaces into one shared space; write both mapped spaces and the mapping matrices."""
    from rich.console import Console

    from xling.cle.mappers import check_method
    from xling.cle.mappers.run import map_embeddings, write_mapped

    params = _parse_params(param)
    check_method(method)
    train, x, z, options = _load_for_mapping(method, src, tgt, train_dict, max_vocab, case, skip_bad, cache)
    mapped = map_embeddings(method, x, z, train, params=params, seed=seed, verbose=True)
    config = dict(method=method, src=str(src), tgt=str(tgt), train_dict=str(train_dict) if train_dict else None,
                  case=case, params=params, **options)
    write_mapped(mapped, out, config=config, seed=seed, vectors=vectors)
    Console().print(f"{method}: mapped {len(x)} source and {len(z)} target words into {out} "
                    f"({_describe(mapped.info)})")


@cle_app.command("run")
def run_command(
    method: Annotated[str, typer.Option("--method", "-m", help=_METHOD_HELP)],
    src: Annotated[Path, typer.Option("--src", help="Source vectors, word2vec text or .bin (frequency order).")],
    tgt: Annotated[Path, typer.Option("--tgt", help="Target vectors, word2vec text or .bin (frequency order).")],
    test_dict: Annotated[Path, typer.Option("--test-dict", help="Test dictionary: 'source<TAB>target' lines.")],
    train_dict: Annotated[Path | None, typer.Option("--train-dict", help="Training dictionary (supervised and "
                                                                         "semi-supervised methods).")] = None,
    retrieval: Annotated[str, typer.Option(help="nn (cosine), csls or isf (inverted softmax).")] = "csls",
    convention: Annotated[str, typer.Option(help="line (xling-eval: every line) or source (MUSE/vecmap: any gold).")]
    = "line",
    oov: Annotated[str, typer.Option(help="skip out-of-vocabulary items or count them as wrong.")] = "skip",
    max_vocab: Annotated[int, typer.Option(help="Read at most this many vectors per side (0: all).")] = 200000,
    case: Annotated[str, typer.Option(help="keep: words as written; lower: lowercase vectors and dictionaries.")]
    = "keep",
    seed: Annotated[int, typer.Option(help="Random seed (stochastic dictionary induction).")] = 0,
    param: Annotated[list[str] | None, typer.Option("--param", help=_PARAM_HELP)] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip malformed vector rows (counted) instead of failing.")]
    = False,
    cache: Annotated[bool, typer.Option(help="Keep a .npy copy of each vectors file for fast rereads.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: p1, p5, p10, mrr, coverage, n, method, ...")]
    = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the maps, result.json and run.json here.")]
    = None,
) -> None:
    """Map, then evaluate with BLI in one step (the mapped vectors stay in memory)."""
    import json

    from xling.cle.bli import bli
    from xling.cle.dictionaries import read_dictionary
    from xling.cle.mappers import check_method
    from xling.cle.mappers.run import map_embeddings, write_mapped

    params = _parse_params(param)
    check_method(method)
    test = read_dictionary(test_dict, case=case)
    train, x, z, options = _load_for_mapping(method, src, tgt, train_dict, max_vocab, case, skip_bad, cache)
    mapped = map_embeddings(method, x, z, train, params=params, seed=seed, verbose=not as_json)
    result = {**bli(mapped.src, mapped.tgt, test, retrieval_method=retrieval, convention=convention, oov=oov,
                    inplace=True).to_dict(), "method": method, "fit_seconds": mapped.info["fit_seconds"]}
    if out is not None:
        config = dict(method=method, src=str(src), tgt=str(tgt), test_dict=str(test_dict),
                      train_dict=str(train_dict) if train_dict else None, retrieval=retrieval, convention=convention,
                      oov=oov, case=case, params=params, **options)
        write_mapped(mapped, out, config=config, seed=seed, vectors=False, extra=result)
    if as_json:
        print(json.dumps(result))
        return
    _print_bli(result, test, x, z)
    from rich.console import Console

    Console().print(f"{method}: {_describe(mapped.info)}")


def _describe(info: dict) -> str:
    """One line about a mapping run: seed pairs, iterations, time."""
    parts = []
    if "train_pairs" in info:
        parts.append(f"{info['train_pairs']} seed pairs ({info['seed']})")
    if "n_iter" in info:
        ended = info.get("status", "converged" if info.get("converged", True) else "max_iter")
        parts.append(f"{info['n_iter']} iterations" + {"converged": "", "max_iter": ", stopped at max_iter"}.get(
            ended, f", {ended}"))
    if "criterion" in info:
        parts.append(f"mean cosine {info['criterion']:.4f} ({info['selected']})")
    if "sizes" in info:
        parts.append("dictionary sizes " + " → ".join(str(s) for s in info["sizes"]))
    parts.append(f"{info['fit_seconds']:.1f} s")
    return ", ".join(parts)


@cle_app.command("grid")
def grid_command(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC.yaml", help="CLE grid spec: methods, pairs, sizes, files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: store/, tables/, run.json.")]
    = Path("xling-out/cle-grid"),
) -> None:
    """Methods x language pairs x dictionary sizes; resumable (finished units are skipped); writes tables."""
    from rich.console import Console
    from rich.table import Table

    from xling.cle.grid import load_grid_spec, run_grid, summary_tables

    spec = load_grid_spec(spec_path)
    table = run_grid(spec, out, spec_path.resolve().parent)
    averages = summary_tables(table, spec.fail_mrr)["cle_averages"]
    view = Table(title=f"CLE grid: mean over pairs ({spec.retrieval}, failure = MRR < {spec.fail_mrr})")
    for col in ("method", "size", "MRR", "P@1", "pairs", "failures", "errors"):
        view.add_column(col, justify="left" if col in ("method", "size") else "right")
    for row in averages.itertuples():
        view.add_row(row.method, row.size, f"{100 * row.mrr_mean:.1f}", f"{100 * row.p1_mean:.1f}",
                     str(row.pairs_done), str(row.failures), str(row.errors))
    console = Console()
    console.print(view)
    console.print(f"tables in {out / 'tables'}; rerun the same command to resume or retry failed units")
