"""One downstream task on one (mapped) pair of spaces: train on the source language, test on the target language.

``evaluate_downstream(task, data_dir, src_lang, tgt_lang, src, tgt)`` loads the task's data and returns a
``DownstreamResult``; ``run_task(task, data, src, tgt)`` does the same for data loaded once with ``load_task_data``
(a grid loads each pair's data once and evaluates every method's mapped spaces on it). ``DownstreamResult.row()``
is one row of the downstream results table: ``task, model, metric, score, n, coverage`` plus every metric.

Choices the paper leaves open are recorded in ``DownstreamResult.choices`` (and in ``run.json``) and are one
parameter away (``params``; see ``model_params``).
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xling.cle.downstream import clir as clir_models
from xling.cle.downstream.data import CLDCData, CLIRData, NLIData, load_cldc
from xling.cle.downstream.models import CNNClassifier, ESIMClassifier, MeanClassifier, Progress
from xling.cle.downstream.text import Coverage, to_ids, tokenize_words
from xling.cle.vectors import Embeddings
from xling.errors import XlingError, XlingNote
from xling.registry import DOWNSTREAM_MODELS, DOWNSTREAM_TASKS, downstream_models


@dataclass
class DownstreamResult:
    """A task's score on one pair of spaces, with every metric, coverage, per-unit details and the choices made."""

    task: str
    model: str
    metric: str
    score: float
    n: int
    coverage: float  # token coverage of the target-language test texts (CLIR: of the documents)
    coverage_src: float  # token coverage of the source-language training texts (CLIR: of the queries)
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    # what the CLI writes beside the result: predictions (classification) or the ranking (CLIR); not serialised
    artifacts: dict[str, Any] = field(default_factory=dict, repr=False)

    def row(self) -> dict[str, Any]:
        """One row of the downstream table: task, model, metric, score, n, coverage, coverage_src, metrics."""
        return {
            "task": self.task,
            "model": self.model,
            "metric": self.metric,
            "score": self.score,
            "n": self.n,
            "coverage": self.coverage,
            "coverage_src": self.coverage_src,
            **self.metrics,
        }

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("artifacts")
        return out


_RUNTIME = {"seed", "progress", "src_stopwords", "tgt_stopwords"}  # set per run, not model parameters


def load_task_data(
    task: str, data_dir: str | Path, src_lang: str, tgt_lang: str, topics: list[str] | None = None
) -> CLDCData | NLIData | CLIRData:
    """The task's data for a language pair (its registered loader, ``xling.cle.downstream.data``)."""
    check_task(task)
    if task == "cldc":
        return load_cldc(data_dir, src_lang, tgt_lang, topics=topics)
    return DOWNSTREAM_TASKS.load(task)(data_dir, src_lang, tgt_lang)


def evaluate_downstream(
    task: str,
    data_dir: str | Path,
    src_lang: str,
    tgt_lang: str,
    src: Embeddings,
    tgt: Embeddings,
    *,
    topics: list[str] | None = None,
    stopwords: str = "auto",
    loaded: CLDCData | NLIData | CLIRData | None = None,
    **options,
) -> DownstreamResult:
    """One downstream task on one pair of spaces: the grid's unit (keyword ``options`` of ``run_task``).

    Loads the task's data for the pair unless ``loaded`` (from ``load_task_data``) is given. For CLIR,
    ``stopwords`` picks the stopword lists (``clir_stopwords``); the result records which were used.
    """
    data = loaded if loaded is not None else load_task_data(task, data_dir, src_lang, tgt_lang, topics=topics)
    if task == "clir":
        (src_sw, src_from), (tgt_sw, tgt_from) = (
            clir_stopwords(data_dir, lang, stopwords) for lang in (src_lang, tgt_lang)
        )
        result = run_task(task, data, src, tgt, src_stopwords=src_sw, tgt_stopwords=tgt_sw, **options)
        result.details["stopwords"] = {"src": src_from, "tgt": tgt_from}
        return result
    return run_task(task, data, src, tgt, **options)


#: NLTK's stopword lists (the CLIR reference's), shipped with xling for the languages NLTK took from Snowball; see
#: ``stopwords/LICENSE-stopwords`` for their source and licence.
STOPWORDS_DIR = Path(__file__).with_name("stopwords")


def shipped_stopword_languages() -> list[str]:
    """Languages (ISO 639-1) whose NLTK stopword list xling ships."""
    return sorted(p.stem for p in STOPWORDS_DIR.glob("*.txt"))


def clir_stopwords(data_dir: str | Path, lang: str, source: str = "auto") -> tuple[frozenset[str], str]:
    """Stopwords of ``lang`` for CLIR preprocessing, and where they came from.

    ``file``: ``DIR/stopwords.<lang>.txt`` (one word a line); ``nltk``: NLTK's list, the reference's (shipped with
    xling: no download); ``none``: none; ``auto``: the file if present, else NLTK's list. A language with neither is
    an ``XlingError`` naming what is missing: running without stopwords changes the scores, so it is never a silent
    fallback (``none`` asks for it).
    """
    if source not in ("auto", "file", "nltk", "none"):
        raise XlingError(f"unknown stopwords source {source!r}; expected auto, file, nltk or none")
    if source == "none":
        return frozenset(), "none"
    path = Path(data_dir) / f"stopwords.{lang}.txt"
    if source == "file" or (source == "auto" and path.is_file()):
        if not path.is_file():
            raise XlingError(f"{path}: no such stopwords file")
        return _read_stopwords(path), str(path)
    shipped = STOPWORDS_DIR / f"{lang}.txt"
    if not shipped.is_file():
        where = f"put one at {path} or " if source == "auto" else ""
        raise XlingError(
            f"no stopword list for language {lang!r}: xling ships NLTK's lists (the CLIR reference's) for "
            f"{', '.join(shipped_stopword_languages())}; {where}pass --stopwords none (stopwords: none in a grid)"
        )
    return _read_stopwords(shipped), "nltk"


def _read_stopwords(path: Path) -> frozenset[str]:
    return frozenset(w.strip().lower() for w in path.read_text(encoding="utf-8").splitlines() if w.strip())


def check_task(task: str, model: str | None = None, metric: str | None = None) -> tuple[str, str]:
    """Validate names (``xling.registry``: ``DOWNSTREAM_TASKS``, ``DOWNSTREAM_MODELS``); return (model, metric) with
    the task's defaults filled in: its first registered model, and the metric the paper reports (its first)."""
    DOWNSTREAM_TASKS.check(task)
    models, metrics = downstream_models(task), task_metrics(task)
    model = model or models[0]
    if model not in models:
        raise XlingError(f"unknown model {model!r} for {task}; expected one of {', '.join(models)}")
    metric = metric or metrics[0]
    if metric not in metrics:
        raise XlingError(f"unknown metric {metric!r} for {task}; expected one of {', '.join(metrics)}")
    return model, metric


def task_metrics(task: str) -> tuple[str, ...]:
    """The metrics a downstream task reports, the headline (the one the paper reports) first: CLDC micro-averaged F1
    (the caption of Glavaš et al. 2019's CLDC table as we know it, not re-read against its text), XNLI accuracy,
    CLIR MAP. Every other metric is computed too and is one ``--task-metric`` away."""
    return DOWNSTREAM_TASKS.meta(task)["metrics"]


def model_params(model: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults of ``model``'s parameters overridden by ``params``; an unknown key is an ``XlingError``."""
    signature = inspect.signature(DOWNSTREAM_MODELS.load(model))
    defaults = {
        k: p.default
        for k, p in signature.parameters.items()
        if p.default is not inspect.Parameter.empty and k not in _RUNTIME
    }
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise XlingError(
            f"unknown parameter {unknown[0]!r} for model {model}; expected one of {', '.join(sorted(defaults))}"
        )
    out = dict(defaults)
    for key, value in (params or {}).items():
        out[key] = _coerce(model, key, value, defaults[key])
    return out


def _coerce(model: str, key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default`` (YAML reads ``1e-3`` as a string); a mismatch is an ``XlingError``.

    A ``None`` default (an optional length) takes an integer; ``filters`` takes ``[[width, count], ...]``.
    """
    number = isinstance(value, (int, float, str)) and not isinstance(value, bool)
    try:
        if key == "filters":
            filters = tuple((int(w), int(n)) for w, n in value)
            if filters:
                return filters
        elif isinstance(default, bool):
            if isinstance(value, bool):
                return value
        elif isinstance(default, float) and number:
            return float(value)
        elif (default is None or isinstance(default, int)) and number and float(value).is_integer():
            return int(float(value))
        elif isinstance(default, str) and isinstance(value, str):
            return value
    except (TypeError, ValueError):
        pass
    expected = (
        "[[width, count], ...]" if key == "filters" else "an integer" if default is None else type(default).__name__
    )
    raise XlingError(f"parameter {key!r} of model {model}: expected {expected}, found {value!r}")


def run_task(
    task: str,
    data: CLDCData | NLIData | CLIRData,
    src: Embeddings,
    tgt: Embeddings,
    *,
    model: str | None = None,
    metric: str | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    src_stopwords: frozenset[str] = frozenset(),
    tgt_stopwords: frozenset[str] = frozenset(),
) -> DownstreamResult:
    """Train on the source language with ``src``, test on the target language with ``tgt``; one result.

    ``data`` comes from ``load_task_data``; ``params`` override the model's defaults (``model_params``); ``seed``
    fixes initialisation, batch order and dropout; ``progress`` receives one event per epoch.
    """
    model, metric = check_task(task, model, metric)
    if src.dim != tgt.dim:
        raise XlingError(
            f"source vectors have {src.dim} dimensions, target vectors {tgt.dim}; map both into one space first"
        )
    expected = {"cldc": CLDCData, "xnli": NLIData, "clir": CLIRData}[task]
    if not isinstance(data, expected):
        raise XlingError(f"{task} needs {expected.__name__} (from load_task_data), found {type(data).__name__}")
    chosen = model_params(model, params)
    start = time.perf_counter()
    if task == "cldc":
        metrics, n, cov, cov_src, details, artifacts = _run_cldc(data, src, tgt, model, chosen, seed, progress)
    elif task == "xnli":
        metrics, n, cov, cov_src, details, artifacts = _run_xnli(data, src, tgt, chosen, seed, progress)
    else:
        metrics, n, cov, cov_src, details, artifacts = _run_clir(
            data, src, tgt, model, chosen, src_stopwords, tgt_stopwords
        )
    if metric not in metrics:
        raise XlingError(f"metric {metric!r} is not defined for this data (found {', '.join(metrics)})")
    return DownstreamResult(
        task,
        model,
        metric,
        metrics[metric],
        n,
        cov,
        cov_src,
        metrics,
        chosen,
        details,
        DOWNSTREAM_MODELS.load(model).CHOICES,
        time.perf_counter() - start,
        artifacts,
    )


# --- CLDC ------------------------------------------------------------------------------------------------------------


def _classification_metrics(gold: list[str], pred: list[str], classes: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    out = {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, labels=classes, average="macro", zero_division=0)),
    }
    if set(classes) == {"positive", "negative"}:
        out["f1_positive"] = float(f1_score(gold, pred, pos_label="positive", average="binary", zero_division=0))
    return out


def _micro_f1(predictions: list[tuple[str, str, str, str]]) -> float:
    """Micro-averaged F1 over every (unit, item, gold, predicted) decision: TED's binary topic tasks as one
    multi-label problem (true/false positives and false negatives of the positive class pooled over topics); for a
    single multi-class task it equals accuracy."""
    from sklearn.metrics import f1_score

    gold, pred = [g for _, _, g, _ in predictions], [p for _, _, _, p in predictions]
    if set(gold) | set(pred) <= {"positive", "negative"}:
        return float(f1_score(gold, pred, pos_label="positive", average="binary", zero_division=0))
    return float(f1_score(gold, pred, average="micro"))


def _run_cldc(
    data: CLDCData, src: Embeddings, tgt: Embeddings, model: str, params: dict, seed: int, progress: Progress | None
):
    per_task, cov, cov_src, predictions = [], Coverage(), Coverage(), []
    for task in data.tasks:
        train_ids, c_src = to_ids((tokenize_words(t) for t in task.train.texts), src.index)
        test_ids, c_tgt = to_ids((tokenize_words(t) for t in task.test.texts), tgt.index)
        for total, part in ((cov_src, c_src), (cov, c_tgt)):
            total.tokens, total.found = total.tokens + part.tokens, total.found + part.found
        report = None if progress is None else (lambda event, name=task.name: progress({**event, "unit": name}))
        if model == "mean":
            clf = MeanClassifier(**params, progress=report)
        else:
            clf = CNNClassifier(**params, seed=seed, progress=report)
        clf.fit(train_ids, task.train.labels, src.vectors)
        pred = clf.predict(test_ids, tgt.vectors)
        predictions += [
            (task.name, origin, gold, p) for origin, gold, p in zip(task.test.origins, task.test.labels, pred)
        ]
        scores = _classification_metrics(task.test.labels, pred, clf.classes_)
        per_task.append(
            {
                "name": task.name,
                "n_train": len(task.train),
                "n_test": len(task.test),
                "coverage": c_tgt.token_rate,
                **scores,
                **({"epochs": clf.epochs_run_, "losses": clf.losses_} if model == "cnn" else {}),
            }
        )
    keys = [k for k in per_task[0] if k in task_metrics("cldc")]
    metrics = {"micro_f1": _micro_f1(predictions), **{k: float(np.mean([t[k] for t in per_task])) for k in keys}}
    details = {"layout": data.layout, "data": data.source, "units": per_task}
    return (
        metrics,
        int(sum(t["n_test"] for t in per_task)),
        cov.token_rate,
        cov_src.token_rate,
        details,
        {"predictions": predictions},
    )


# --- XNLI ------------------------------------------------------------------------------------------------------------


def _run_xnli(data: NLIData, src: Embeddings, tgt: Embeddings, params: dict, seed: int, progress: Progress | None):
    def ids(pairs, emb):
        premises, c1 = to_ids((tokenize_words(t) for t in pairs.premises), emb.index)
        hypotheses, c2 = to_ids((tokenize_words(t) for t in pairs.hypotheses), emb.index)
        return premises, hypotheses, (c1.found + c2.found) / max(1, c1.tokens + c2.tokens)

    train_p, train_h, cov_src = ids(data.train, src)
    test_p, test_h, cov = ids(data.test, tgt)
    dev = None
    if data.dev is not None:
        dev_p, dev_h, _ = ids(data.dev, src)
        dev = (dev_p, dev_h, data.dev.labels)
    else:  # which epoch is kept changes the score: say so
        warnings.warn(
            "xnli: no source-language dev set (DIR/<src>/dev.tsv, MultiNLI or XNLI dev): the model after the last "
            "epoch is kept, not the best epoch on dev",
            XlingNote,
            stacklevel=2,
        )
    clf = ESIMClassifier(**params, seed=seed, progress=progress)
    clf.fit(train_p, train_h, data.train.labels, src.vectors, dev=dev)
    pred = clf.predict(test_p, test_h, tgt.vectors)
    metrics = _classification_metrics(data.test.labels, pred, clf.classes_)
    details = {
        "files": data.files,
        "n_train": len(data.train),
        "n_dev": len(data.dev) if data.dev else 0,
        "skipped_without_gold": data.train.skipped + data.test.skipped,
        "best_epoch": clf.best_epoch_,
        "losses": clf.losses_,
        "dev_accuracy": clf.dev_accuracy_,
    }
    predictions = [("xnli", origin, gold, p) for origin, gold, p in zip(data.test.origins, data.test.labels, pred)]
    return metrics, len(data.test), cov, cov_src, details, {"predictions": predictions}


# --- CLIR ------------------------------------------------------------------------------------------------------------


def _run_clir(
    data: CLIRData,
    src: Embeddings,
    tgt: Embeddings,
    model: str,
    params: dict,
    src_stopwords: frozenset[str],
    tgt_stopwords: frozenset[str],
):
    ranking = DOWNSTREAM_MODELS.load(model)(
        data.queries,
        data.docnos,
        data.docs,
        src,
        tgt,
        src_stopwords=src_stopwords,
        tgt_stopwords=tgt_stopwords,
        **params,
    )
    ap = clir_models.average_precision(ranking, data.qrels)
    ap_reference = clir_models.reference_average_precision(ranking, data.qrels)
    info = ranking.info
    details = {
        "files": data.files,
        "n_docs": len(data.docs),
        "n_queries": len(data.queries),
        "relevant_unranked": clir_models.relevant_unranked(ranking, data.qrels),
        "ap": ap,
        **{k: v for k, v in info.items() if k != "translations"},
    }
    cov = info["doc_tokens_found"] / info["doc_tokens"] if info["doc_tokens"] else 0.0
    cov_src = info["query_tokens_found"] / info["query_tokens"] if info["query_tokens"] else 0.0
    details["translations"] = info.get("translations")
    details["queries_skipped_by_reference"] = len(ap) - len(ap_reference)
    metrics = {
        "map": float(np.mean(list(ap.values()))),
        "map_reference": float(np.mean(list(ap_reference.values()))) if ap_reference else float("nan"),
    }
    return metrics, len(ap), cov, cov_src, details, {"ranking": ranking}


def write_downstream(out: str | Path, result: DownstreamResult, config: dict[str, Any], seed: int) -> None:
    """``OUT/result.json``, ``run.json`` and ``predictions.tsv`` (classification) or ``run.trec`` (CLIR, the 1000
    best documents per query in TREC's run format), atomically."""
    import json

    from xling.io import atomic_dir
    from xling.provenance import write_run_record

    with atomic_dir(out) as tmp:
        (tmp / "result.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
        write_run_record(tmp, config, seed, choices=result.choices, result=result.row())
        if "predictions" in result.artifacts:
            with open(tmp / "predictions.tsv", "w", encoding="utf-8") as fh:
                fh.write("unit\titem\tgold\tpredicted\n")
                fh.writelines(f"{u}\t{o}\t{g}\t{p}\n" for u, o, g, p in result.artifacts["predictions"])
        if "ranking" in result.artifacts:  # TREC run format, the 1000 best documents per query
            ranking = result.artifacts["ranking"]
            with open(tmp / "run.trec", "w", encoding="utf-8") as fh:
                for qi, qid in enumerate(ranking.qids):
                    order = np.argsort(-ranking.scores[qi], kind="stable")[:1000]
                    fh.writelines(
                        f"{qid} Q0 {ranking.docnos[d]} {k + 1} {ranking.scores[qi, d]:.6f} xling-{result.model}\n"
                        for k, d in enumerate(order.tolist())
                        if np.isfinite(ranking.scores[qi, d])
                    )
