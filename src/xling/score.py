"""The one scoring driver: every model kind's scorer over every (task, language) cell, resumable.

``score_items`` validates the adapters and items, groups the items into cells, and asks the model kind's scorer
(``xling.models``: lm-eval log-likelihoods for a causal LM, cosines for an encoder) for one cell at a time; with
``checkpoint_dir`` every finished cell is saved there, so a rerun after an interruption loads it instead of
scoring it again, for every kind. ``summarize`` turns the rows into acc, acc_norm and acc_bytes as lm-eval
computes them; ``write_outputs`` writes them with the run record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import pandas as pd

from xling.config import ModelSpec, ScoreSpec
from xling.errors import XlingError, on_interrupt
from xling.models import get_kind
from xling.models.base import COLUMNS
from xling.progress import Progress
from xling.tasks.items import MCItem

__all__ = ["COLUMNS", "score_items", "summarize", "write_outputs"]


def _limit_items(items: Sequence[MCItem], max_items: int | None) -> list[MCItem]:
    """The first ``max_items`` items of each (task, language) cell; duplicate ids in a cell are an error."""
    kept, count, seen = [], {}, set()
    for it in items:
        key = (it.task, it.language, it.id)
        if key in seen:
            raise XlingError(f"task {it.task!r} language {it.language!r}: duplicate item id {it.id!r}")
        seen.add(key)
        cell = (it.task, it.language)
        count[cell] = count.get(cell, 0) + 1
        if max_items is None or count[cell] <= max_items:
            kept.append(it)
    return kept


def score_items(
    model: ModelSpec,
    adapters: Mapping[str, str | Path | None],
    items: Sequence[MCItem],
    spec: ScoreSpec = ScoreSpec(),
    *,
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Score every choice of every item under every entry of ``adapters`` (label → adapter folder, or ``None`` for
    the base model). Returns one row per (adapter, item, choice), columns ``COLUMNS``;
    ``attrs['peak_memory_bytes']`` holds the peak memory.

    Items are scored one (task, language) cell at a time; with ``checkpoint_dir`` each finished cell is saved
    there and a rerun after an interruption loads it instead of scoring it again.
    """
    adapters = {
        label: None if path is None else Path(path) for label, path in (dict(adapters) or {"base": None}).items()
    }
    items = _limit_items(items, spec.max_items)
    if not items:
        raise XlingError("no items to score")
    for label, path in adapters.items():
        if path is not None and not path.is_dir():
            raise XlingError(f"adapter {label!r}: no such folder {str(path)!r}")
    cells: dict[tuple[str, str], list[MCItem]] = {}
    for it in items:
        cells.setdefault((it.task, it.language), []).append(it)
    saved = {
        cell: _checkpoint_path(checkpoint_dir, model, adapters, spec, cell_items) for cell, cell_items in cells.items()
    }
    pending = [
        it for cell, cell_items in cells.items() if not (saved[cell] and saved[cell].is_file()) for it in cell_items
    ]
    scorer, frames, peak, oom, batch = None, [], 0, 0, spec.batch_size

    def kept() -> str:
        n = sum(p is not None and p.is_file() for p in saved.values())
        return f"{n} of {len(saved)} scored cell(s) are kept in {checkpoint_dir}; rerun the same command to resume"

    with (
        on_interrupt(kept) if checkpoint_dir is not None else nullcontext(),
        Progress("scoring", len(cells), enabled=progress) as bar,
    ):
        for cell in cells:
            path = saved[cell]
            if path is not None and path.is_file():
                frames.append(pd.read_parquet(path))
                bar.advance()
                continue
            scorer = scorer or get_kind(model.kind).scorer(model, adapters, spec, pending)
            frame = scorer.score(cells[cell])
            peak = max(peak, frame.attrs["peak_memory_bytes"])
            oom = max(oom, frame.attrs.get("oom_retries") or 0)
            batch = frame.attrs.get("batch_size", batch)
            if path is not None:
                from xling.io import atomic_file

                with atomic_file(path, "wb") as fh:
                    frame.to_parquet(fh, index=False)
            frames.append(frame)
            bar.advance()
            bar.line(f"{cell[0]} {cell[1]}: {len(cells[cell])} items x {len(adapters)} model(s) scored")
    out = pd.concat(frames, ignore_index=True)
    out.attrs["peak_memory_bytes"] = peak
    out.attrs["oom_retries"] = oom
    out.attrs["batch_size"] = batch  # the size used (after any out-of-memory halving)
    return out


def _checkpoint_path(folder, model: ModelSpec, adapters: Mapping, spec: ScoreSpec, items) -> Path | None:
    """Where a cell's finished scores are kept: keyed by model, adapters, options and the items' content."""
    if folder is None:
        return None
    import hashlib
    import json

    from xling.tasks.registry import items_fingerprint

    key = json.dumps(
        [
            model.model_dump(mode="json"),
            {k: str(v) for k, v in adapters.items()},
            spec.model_dump(mode="json"),
            items_fingerprint(items),
        ],
        sort_keys=True,
    )
    return Path(folder) / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.parquet"


def summarize(loglik_df: pd.DataFrame) -> pd.DataFrame:
    """Per (adapter, task, language): n items and acc, acc_norm, acc_bytes as lm-eval computes them
    (argmax of loglik, of loglik / characters, of loglik / UTF-8 bytes; ties go to the first choice)."""
    keys = ["adapter", "task", "language", "item_id"]
    d = loglik_df.sort_values(keys + ["choice"], kind="stable").reset_index(drop=True)
    by = [d[k] for k in keys]
    hits = {}
    for metric, score in (
        ("acc", d["loglik"]),
        ("acc_norm", d["loglik"] / d["n_chars"]),
        ("acc_bytes", d["loglik"] / d["n_bytes"]),
    ):
        best = score.groupby(by, sort=False).idxmax()
        hits[metric] = pd.Series(d.loc[best.to_numpy(), "is_gold"].to_numpy(dtype=float), index=best.index)
    per_item = pd.DataFrame(hits).reset_index()
    if "kind" in d:  # a kind whose scores have no length to normalise by (a cosine): acc_norm = acc_bytes = acc
        kinds = d.groupby(by, sort=False)["kind"].first()
        normalised = {k: get_kind(k).length_normalised for k in kinds.unique()}
        plain = ~kinds.map(normalised).to_numpy(dtype=bool)
        per_item.loc[plain, "acc_norm"] = per_item.loc[plain, "acc"]
        per_item.loc[plain, "acc_bytes"] = per_item.loc[plain, "acc"]
    out = per_item.groupby(["adapter", "task", "language"], sort=True).agg(
        n=("acc", "size"), acc=("acc", "mean"), acc_norm=("acc_norm", "mean"), acc_bytes=("acc_bytes", "mean")
    )
    return out.reset_index()


def write_outputs(
    loglik_df: pd.DataFrame,
    out_dir: str | Path,
    config=None,
    benchmark_format: str = "lm-eval",
    tasks: Sequence[str] = (),
) -> Path:
    """``OUT/loglikelihoods.parquet``, ``OUT/scores.csv`` and ``OUT/run.json``, written atomically. ``run.json``
    carries what the sources of ``tasks`` (the task names scored) record about their formats (paper benchmarks:
    which evaluation format they used and that it is inferred)."""
    from xling.io import atomic_dir
    from xling.provenance import write_run_record
    from xling.tasks.registry import format_records

    extra = format_records(tasks, benchmark_format)
    with atomic_dir(out_dir) as tmp:
        loglik_df.to_parquet(tmp / "loglikelihoods.parquet", index=False)
        summarize(loglik_df).to_csv(tmp / "scores.csv", index=False)
        write_run_record(
            tmp,
            config,
            peak_memory_bytes=loglik_df.attrs.get("peak_memory_bytes"),
            oom_retries=loglik_df.attrs.get("oom_retries"),
            batch_size=loglik_df.attrs.get("batch_size"),
            **extra,
        )
    return Path(out_dir)
