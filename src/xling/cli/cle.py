"""Commands of `xling cle`: cross-lingual word embeddings (map, bli, run, grid, simulate)."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

import typer

from xling.cli.app import app
from xling.cli.common import AddressOption, ExecutorOption, GridOutOption, JsonOption, RetriesOption, emit_json
from xling.cli.grid import run_and_show
from xling.registry import DOWNSTREAM_MODELS, DOWNSTREAM_TASKS, MAPPERS, choices, downstream_metrics

cle_app = typer.Typer(help="Cross-lingual word embeddings: map, evaluate with BLI, simulate.", no_args_is_help=True)
app.add_typer(cle_app, name="cle")


# --- BLI and simulation (data / evaluation side) -------------------------------------------------------------------


ProtocolName = Literal["glavas2019", "vecmap", "muse"]
Retrieval = Literal["nn", "csls", "isf"]
Convention = Literal["line", "source"]
OOV = Literal["skip", "wrong"]
Case = Literal["keep", "lower"]

_PROTOCOL_HELP = (
    "Named BLI protocol: glavas2019 (xling-eval: first 200K rows, lowercased, repeated lines counted, "
    "NN, per line), vecmap or muse (per source word, CSLS). Options given explicitly override it."
)
_CACHE_HELP = "Keep a .npy copy of each vectors file in the cache folder ($XLING_CACHE, default ~/.cache/xling)."

# The options the commands share, declared once.
SrcOption = Annotated[Path, typer.Option("--src", help="Source vectors, word2vec text or .bin (frequency order).")]
TgtOption = Annotated[Path, typer.Option("--tgt", help="Target vectors, word2vec text or .bin (frequency order).")]
TestDictOption = Annotated[Path, typer.Option("--test-dict", help="Test dictionary: 'source<TAB>target' lines.")]
TrainDictOption = Annotated[
    Path | None, typer.Option("--train-dict", help="Training dictionary (supervised and semi-supervised methods).")
]
ProtocolOption = Annotated[ProtocolName | None, typer.Option(help=_PROTOCOL_HELP)]
RetrievalOption = Annotated[
    Retrieval | None,
    typer.Option(help="nn (cosine), csls or isf (default: the protocol's; without one nn for bli, csls for run)."),
]
ConventionOption = Annotated[
    Convention | None,
    typer.Option(help="line (xling-eval: every line) or source (MUSE/vecmap: any gold) (default: line)."),
]
OOVOption = Annotated[OOV | None, typer.Option(help="skip OOV items or count them as wrong (default: skip).")]
MaxVocabOption = Annotated[
    int | None,
    typer.Option(help="Vectors read per side, 0 for all (default: 200000; a protocol counts rows or words)."),
]
CaseOption = Annotated[
    Case | None,
    typer.Option(help="keep: words as written; lower: lowercase vectors and dictionaries (default: keep)."),
]
CacheOption = Annotated[bool, typer.Option(help=_CACHE_HELP)]
SkipBadOption = Annotated[
    bool, typer.Option("--skip-bad", help="Skip malformed vector rows (counted) instead of failing.")
]
Method = MAPPERS.choices()
MethodOption = Annotated[Method, typer.Option("--method", "-m", help="Mapping method (see the README's method table).")]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", help="Parameter KEY=VALUE (YAML value), repeatable, e.g. --param vocabulary_cutoff=10000."),
]
SeedOption = Annotated[int, typer.Option(min=0, help="Random seed (stochastic methods and models).")]


@cle_app.command("bli")
def bli_command(
    src: SrcOption,
    tgt: TgtOption,
    test_dict: TestDictOption,
    protocol: ProtocolOption = None,
    retrieval: RetrievalOption = None,
    convention: ConventionOption = None,
    oov: OOVOption = None,
    case: CaseOption = None,
    max_vocab: MaxVocabOption = None,
    csls_k: Annotated[int | None, typer.Option(help="CSLS neighbourhood size (default: 10).")] = None,
    isf_beta: Annotated[
        float | None, typer.Option(help="Inverse temperature of the inverted softmax (default: 30).")
    ] = None,
    skip_bad: SkipBadOption = False,
    cache: CacheOption = True,
    backend: Annotated[Literal["auto", "numpy", "faiss", "torch"], typer.Option(help="Retrieval backend.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: p1, p5, p10, mrr, coverage, n, ...")] = False,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", metavar="FILE", help="Also write the result and run record here.")
    ] = None,
) -> None:
    """Bilingual lexicon induction: P@1/5/10, MRR and coverage of two (mapped) spaces on a test dictionary."""
    import json

    from rich.console import Console

    from xling.cle.bli import evaluate
    from xling.cle.dictionaries import lookup, read_dictionary
    from xling.cle.protocol import resolve
    from xling.cle.vectors import read_vectors
    from xling.report.terminal import print_bli

    conv = resolve(
        protocol,
        None,
        retrieval=retrieval,
        convention=convention,
        oov=oov,
        case=case,
        max_vocab=max_vocab,
        csls_k=csls_k,
        isf_beta=isf_beta,
        skip_bad=skip_bad or None,
    )
    options = {**conv.vector_options(), "cache": cache}
    dictionary = read_dictionary(test_dict, **conv.dictionary_options())
    with Console(stderr=True).status(f"reading {src}") as status:  # progress on stderr: --json output stays clean
        x = read_vectors(src, **options)
        status.update(f"reading {tgt}")
        z = read_vectors(tgt, **options)
        found = lookup(dictionary, x.index, z.index)
        status.update(f"ranking {len(found.src_rows)} test pairs among {len(z)} targets ({conv.retrieval})")
        result = evaluate(x.vectors, z.vectors, found, inplace=True, backend=backend, **conv.bli_options()).to_dict()
    result["protocol"] = protocol
    if out is not None:
        from xling.io import atomic_file
        from xling.provenance import run_record

        config = dict(src=str(src), tgt=str(tgt), test_dict=str(test_dict), conventions=conv.record(), **options)
        with atomic_file(out) as fh:
            json.dump({**result, "run": run_record(config)}, fh, indent=2, default=str)
    if as_json:
        emit_json(result)
        return
    print_bli(result, dictionary, x, z)


@cle_app.command("simulate")
def simulate_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for src.vec, tgt.vec, train.tsv, test.tsv.")
    ],
    n_words: Annotated[int, typer.Option(help="Vocabulary size of each language.")] = 20000,
    dim: Annotated[int, typer.Option(help="Dimension.")] = 300,
    noise: Annotated[float, typer.Option(help="Noise scale (rare words get more).")] = 0.3,
    warp: Annotated[float, typer.Option(help="Non-isomorphism in [0, 1] (0: a linear map fits exactly).")] = 0.0,
    overlap: Annotated[float, typer.Option(help="Share of each vocabulary with a translation.")] = 0.9,
    n_train: Annotated[int, typer.Option(help="Training dictionary size (most frequent words).")] = 5000,
    n_test: Annotated[int, typer.Option(help="Test dictionary size (random other words).")] = 2000,
    clusters: Annotated[int, typer.Option(help="Shared concept clusters.")] = 100,
    lang_clusters: Annotated[int, typer.Option(help="Clusters only one language has.")] = 20,
    cluster_spread: Annotated[
        float, typer.Option(min=0.0, help="Spread of concepts around their cluster centre (smaller: tighter clusters).")
    ] = 1.0,
    rank_noise: Annotated[float, typer.Option(help="Disagreement of the two frequency rankings (log scale).")] = 1.0,
    synonyms: Annotated[float, typer.Option(help="Share of translated words with a second gold translation.")] = 0.05,
    identical: Annotated[float, typer.Option(help="Share of translated words spelled the same in both.")] = 0.0,
    spectrum: Annotated[
        float, typer.Option(help="Decay of the latent dimensions' scales (0: round point clouds).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    downstream: Annotated[
        bool,
        typer.Option(
            "--downstream", help="Also write CLDC, XNLI and CLIR data from the same concepts into OUT/downstream/."
        ),
    ] = False,
    text_band: Annotated[
        float,
        typer.Option(help="--downstream: texts draw their words from this most frequent share of each vocabulary."),
    ] = 0.2,
    n_docs: Annotated[int, typer.Option(help="--downstream: CLDC training documents per language (test: half).")] = 800,
    n_nli: Annotated[
        int, typer.Option(help="--downstream: XNLI training pairs per language (dev, test: a fifth).")
    ] = 3000,
    n_queries: Annotated[int, typer.Option(help="--downstream: CLIR queries.")] = 40,
) -> None:
    """Write two simulated embedding spaces with a planted map, and train/test dictionaries."""
    from rich.console import Console

    from xling.cle.simulate import simulate_pair, write_pair

    pair = simulate_pair(
        n_words,
        dim,
        noise,
        warp,
        overlap,
        seed,
        n_train=n_train,
        n_test=n_test,
        n_clusters=clusters,
        lang_clusters=lang_clusters,
        cluster_spread=cluster_spread,
        rank_noise=rank_noise,
        synonyms=synonyms,
        identical=identical,
        spectrum=spectrum,
    )
    options = (
        {"seed": seed, "band": text_band, "n_docs": n_docs, "n_nli": n_nli, "n_queries": n_queries}
        if downstream
        else None
    )
    paths = write_pair(pair, out, downstream=options)
    Console().print(
        f"wrote {', '.join(str(p) for p in paths.values())} "
        f"({len(pair.train)} train / {len(pair.test)} test dictionary lines)"
    )


Task = DOWNSTREAM_TASKS.choices()
DownstreamModel = DOWNSTREAM_MODELS.choices()
DownstreamMetric = choices(downstream_metrics())


class Stopwords(str, Enum):
    auto = "auto"
    file = "file"
    nltk = "nltk"
    none = "none"


@cle_app.command("downstream")
def downstream_command(
    task: Annotated[
        Task,
        typer.Option(
            "--task",
            help="cldc: document classification; xnli: natural language inference; clir: cross-lingual retrieval.",
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Task folder: DIR/<lang>/{train,test}.tsv (cldc, xnli), a TED "
            "CLDC root, MultiNLI/XNLI files, or queries.<lang>.tsv + "
            "docs.<lang>.jsonl + qrels.txt (clir).",
        ),
    ],
    src_lang: Annotated[str, typer.Option("--src-lang", help="Training (CLIR: query) language.")],
    tgt_lang: Annotated[str, typer.Option("--tgt-lang", help="Test (CLIR: document) language.")],
    src: SrcOption,
    tgt: TgtOption,
    model: Annotated[
        DownstreamModel | None,
        typer.Option(
            "--task-model", help="cldc: cnn (default) or mean; xnli: esim; clir: bwe-agg (default) or tbt-qt."
        ),
    ] = None,
    metric: Annotated[
        DownstreamMetric | None,
        typer.Option(
            "--task-metric",
            help="Headline score (every metric is computed): cldc micro_f1 (default, the paper's), accuracy, "
            "macro_f1, f1_positive (TED); xnli accuracy (default), macro_f1; clir map (default, trec_eval's AP) or "
            "map_reference (the reference code's: relevant documents retrieved, queries with none skipped).",
        ),
    ] = None,
    param: ParamOption = None,
    seed: SeedOption = 0,
    topics: Annotated[str, typer.Option(help="TED CLDC: comma-separated topics (default: all).")] = "",
    stopwords: Annotated[
        Stopwords,
        typer.Option(
            help="clir: DIR/stopwords.<lang>.txt (file), NLTK's lists as the reference uses them (nltk, shipped "
            "with xling), none, or auto (file, else nltk; a language with neither is an error)."
        ),
    ] = Stopwords.auto,
    max_vocab: MaxVocabOption = None,
    case: CaseOption = None,
    cache: CacheOption = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON line: task, model, metric, score, n, coverage, ...")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Also write result.json, run.json and the predictions (or the TREC run) here.",
        ),
    ] = None,
) -> None:
    """Zero-shot transfer: train on the source language with frozen source vectors, test on the target language."""

    from xling.cle.downstream.evaluate import (
        check_task,
        evaluate_downstream,
        load_task_data,
        model_params,
        write_downstream,
    )
    from xling.cle.vectors import read_vectors
    from xling.errors import XlingError
    from xling.report.terminal import print_downstream

    params = _parse_params(param)
    model_name, metric_name = check_task(task, model, metric)
    model_params(model_name, params)  # unknown parameters fail before any file is read
    topic_list = [t.strip() for t in topics.split(",") if t.strip()] or None
    loaded = load_task_data(task, data, src_lang, tgt_lang, topics=topic_list)  # bad data fails before vectors
    options = {
        "max_vocab": 200000 if max_vocab is None else max_vocab or None,
        "lowercase": case == "lower",
        "cache": cache,
    }
    x, z = read_vectors(src, **options), read_vectors(tgt, **options)
    if x.dim != z.dim:
        raise XlingError(f"{tgt}: vectors have {z.dim} dimensions, but {src} has {x.dim}; map both into one space")
    with _epoch_progress() as progress:
        result = evaluate_downstream(
            task,
            data,
            src_lang,
            tgt_lang,
            x,
            z,
            loaded=loaded,
            stopwords=stopwords.value,
            model=model_name,
            metric=metric_name,
            params=params,
            seed=seed,
            progress=progress,
        )
    row = {**result.row(), "seed": seed, "seconds": round(result.seconds, 3)}
    if out is not None:
        config = dict(
            task=task,
            data=str(data),
            src_lang=src_lang,
            tgt_lang=tgt_lang,
            src=str(src),
            tgt=str(tgt),
            model=model_name,
            metric=metric_name,
            params=result.params,
            topics=topic_list,
            stopwords=stopwords.value,
            case=case,
            **options,
        )
        write_downstream(out, result, config, seed)
    if as_json:  # strict JSON: a metric that is undefined (NaN) is null
        emit_json(row)
        return
    print_downstream(result)


def _epoch_progress():
    """A context giving a per-epoch progress callback on stderr: a live status line on a terminal, otherwise one
    plain line per epoch."""
    import sys
    from contextlib import contextmanager

    from rich.console import Console

    def describe(event: dict) -> str:
        unit = f" {event['unit']}" if event.get("unit") not in (None, "cldc") else ""
        dev = f", dev accuracy {event['dev_accuracy']:.3f}" if "dev_accuracy" in event else ""
        return (
            f"{event['model']}{unit}: epoch {event['epoch']}/{event['epochs']}, loss {event['loss']:.4f}"
            f"{dev} ({event['seconds']:.1f} s)"
        )

    @contextmanager
    def context():
        if not sys.stderr.isatty():
            yield lambda event: print(describe(event), file=sys.stderr, flush=True)
            return
        with Console(stderr=True).status("training ...") as status:
            yield lambda event: status.update(describe(event))

    return context()


# --- mapping (methods side) ------------------------------------------------------------------------------------------


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


@cle_app.command("map")
def map_command(
    method: MethodOption,
    src: SrcOption,
    tgt: TgtOption,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Output folder: src.vec, tgt.vec, W_src.npy, W_tgt.npy, run.json."
        ),
    ],
    train_dict: TrainDictOption = None,
    protocol: ProtocolOption = None,
    max_vocab: MaxVocabOption = None,
    case: CaseOption = None,
    seed: SeedOption = 0,
    param: ParamOption = None,
    write_vectors: Annotated[
        bool, typer.Option(help="Write the mapped vectors (--no-write-vectors: only the maps).")
    ] = True,
    skip_bad: SkipBadOption = False,
    cache: CacheOption = True,
) -> None:
    """Map two embedding spaces into one shared space; write both mapped spaces and the mapping matrices."""
    from rich.console import Console

    from xling.cle.mappers import make_mapper
    from xling.cle.mappers.run import describe_fit, load_for_mapping, map_embeddings, write_mapped
    from xling.cle.protocol import resolve

    params = _parse_params(param)
    make_mapper(method, **params)  # an unknown method, parameter or ill-typed value fails before any file is read
    conv = resolve(protocol, None, case=case, max_vocab=max_vocab, skip_bad=skip_bad or None)
    train, x, z, options = load_for_mapping(method, src, tgt, train_dict, conv, cache)
    mapped = map_embeddings(
        method, x, z, train, params=params, seed=seed, verbose=True, protocol=conv if protocol else None, overwrite=True
    )
    config = dict(
        method=method,
        src=str(src),
        tgt=str(tgt),
        train_dict=str(train_dict) if train_dict else None,
        params=params,
        conventions=conv.record(),
        **options,
    )
    write_mapped(mapped, out, config=config, seed=seed, vectors=write_vectors)
    fit = describe_fit(mapped.info)
    Console().print(f"{method}: mapped {len(x)} source and {len(z)} target words into {out} ({fit})")


@cle_app.command("run")
def run_command(
    method: MethodOption,
    src: SrcOption,
    tgt: TgtOption,
    test_dict: TestDictOption,
    train_dict: TrainDictOption = None,
    protocol: ProtocolOption = None,
    retrieval: RetrievalOption = None,
    convention: ConventionOption = None,
    oov: OOVOption = None,
    max_vocab: MaxVocabOption = None,
    case: CaseOption = None,
    seed: SeedOption = 0,
    param: ParamOption = None,
    skip_bad: SkipBadOption = False,
    cache: CacheOption = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON: p1, p5, p10, mrr, coverage, n, method, ...")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="DIR", help="Also write the maps, result.json and run.json here."),
    ] = None,
) -> None:
    """Map, then evaluate with BLI in one step (the vectors are mapped in place: one copy of each space in memory)."""

    from rich.console import Console

    from xling.cle.bli import bli
    from xling.cle.dictionaries import read_dictionary
    from xling.cle.mappers import make_mapper
    from xling.cle.mappers.run import describe_fit, load_for_mapping, map_embeddings, write_mapped
    from xling.cle.protocol import resolve
    from xling.report.terminal import print_bli

    params = _parse_params(param)
    make_mapper(method, **params)  # an unknown method, parameter or ill-typed value fails before any file is read
    conv = resolve(
        protocol,
        {"retrieval": "csls"},
        retrieval=retrieval,
        convention=convention,
        oov=oov,
        case=case,
        max_vocab=max_vocab,
        skip_bad=skip_bad or None,
    )
    test = read_dictionary(test_dict, **conv.dictionary_options())
    train, x, z, options = load_for_mapping(method, src, tgt, train_dict, conv, cache)
    mapped = map_embeddings(
        method, x, z, train, params=params, seed=seed, verbose=True, protocol=conv if protocol else None, overwrite=True
    )
    result = {
        **bli(mapped.src, mapped.tgt, test, inplace=True, **conv.bli_options()).to_dict(),
        "method": method,
        "protocol": protocol,
        "fit_seconds": mapped.info["fit_seconds"],
    }
    if out is not None:
        config = dict(
            method=method,
            src=str(src),
            tgt=str(tgt),
            test_dict=str(test_dict),
            train_dict=str(train_dict) if train_dict else None,
            params=params,
            conventions=conv.record(),
            **options,
        )
        write_mapped(mapped, out, config=config, seed=seed, vectors=False, extra=result)
    if as_json:
        emit_json(result)
        return
    print_bli(result, test, x, z)
    Console().print(f"{method}: {describe_fit(mapped.info)}")


@cle_app.command("grid")
def grid_command(
    spec_path: Annotated[
        Path, typer.Argument(metavar="SPEC.yaml", help="CLE grid spec: methods, pairs, sizes, files.")
    ],
    out: GridOutOption = None,
    executor: ExecutorOption = None,
    address: AddressOption = None,
    max_retries: RetriesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Methods x language pairs x dictionary sizes on the grid engine (`xling grid run` on a CLE spec): resumable,
    retried, results in OUT/cle_results.csv, report in OUT/analysis. Exit code 1 if some units failed."""
    from xling.errors import XlingError
    from xling.studies import kind_of, load_study

    spec = load_study(spec_path, out=out, executor=executor, address=address, max_retries=max_retries)
    if kind_of(spec).name != "cle":
        raise XlingError(f"{spec_path}: not a CLE grid spec (it has no 'methods'); run it with `xling grid run`")
    run_and_show(spec, as_json=as_json)
