"""What the analysis knows beyond the table: model family and size, task metadata, language groups.

Family and size are parsed from model names (``Llama-3.2-1B`` -> Llama, 1.0) unless the optional
analysis YAML overrides them; task construction types (human- vs machine-translated) and language
groups come from the same YAML. The defaults are the paper's release (``kdymkiewicz/Donors-and-Recipients``,
``analysis/``): its construction types, its language-family table, its variance-decomposition scope and its
ISO 639-3 codes for URIEL, each one field away from an alternative.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from xling.config import ModelSpec, Spec, load_spec, parse_family, parse_size
from xling.errors import XlingError

# The paper's benchmarks: Global-MMLU is human-translated, the others machine-translated.
DEFAULT_CONSTRUCTION = {
    "global_mmlu": "human-translated",
    "arc_challenge": "machine-translated",
    "hellaswag": "machine-translated",
    "truthfulqa": "machine-translated",
}
# The release's language families (``LANG_TO_FAMILY`` in analysis/chapters/donor_recipient_roles.py), the
# groups of its ``language_roles_by_family`` table.
PAPER_LANGUAGE_GROUPS = {
    "Arabic": ["ar"],
    "Chinese": ["zh"],
    "Germanic": ["de", "en"],
    "Indic": ["bn", "hi"],
    "Indonesian": ["id"],
    "Romance": ["es", "fr", "it", "pt"],
}


MixedLMOptimizer = Literal["lbfgs", "powell"]


class ModelMeta(Spec):
    """Override of a model's family and/or size (billions of parameters)."""

    family: str | None = None
    size: float | None = Field(None, gt=0)


class TaskMeta(Spec):
    """Task metadata: how the benchmark's translations were made."""

    construction: str | None = None


class AnalysisSpec(Spec):
    """Options of ``xling analyze`` (all optional; the YAML file holds any subset)."""

    metric: str = "delta_score_norm_mean"
    positive_threshold: float = 0.0
    harm_threshold: float = Field(1.0, ge=0)
    alpha: float = Field(0.05, gt=0, lt=1)
    n_boot: int = Field(1000, ge=50)
    seed: int = 0
    models: dict[str, ModelMeta] = {}
    tasks: dict[str, TaskMeta] = {}
    # The paper's family table by default; ``{}`` turns the group roles off.
    language_groups: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in PAPER_LANGUAGE_GROUPS.items()}
    )
    # Cells the variance decompositions are fitted on: transfer cells (MT-ML excluded, as the release) or all.
    variance_cells: Literal["transfer", "all"] = "transfer"
    # The release's two subset fits: cells whose source or target task is this one, and all others
    # (for the paper: Global-MMLU-involving and translated-only). None: no subset fits.
    variance_subset_task: str | None = "global_mmlu"
    # ISO 639-1 -> 639-3 for URIEL: ``release`` (the release's table, ar -> ara, zh -> cmn; lang2vec's own
    # table for other codes) or ``individual`` (every macrolanguage -> its main individual language, ar -> arb).
    uriel_codes: Literal["release", "individual"] = "release"
    # REML optimiser of the MixedLM variance decomposition: the release's L-BFGS, or Powell (derivative-free).
    mixedlm_optimizer: MixedLMOptimizer = "lbfgs"
    mixed_models: bool = True
    linguistic: bool = True


def load_analysis_spec(path: str | Path | None) -> AnalysisSpec:
    """Read the optional analysis YAML (``None`` -> defaults)."""
    return AnalysisSpec() if path is None else load_spec(AnalysisSpec, path)


def spec_for_models(models: Sequence[ModelSpec], **options) -> AnalysisSpec:
    """Analysis options carrying the family and size a grid spec gives for each model (``options``: other fields)."""
    metas = {}
    for m in models:
        size = parse_size(m.size) if m.size else float("nan")
        if m.family or np.isfinite(size):
            metas[m.name] = ModelMeta(family=m.family, size=size if np.isfinite(size) else None)
    return AnalysisSpec(models=metas, **options)


def size_bucket(size: float) -> str:
    """The paper's buckets: S <= 1.5B < M < 7B <= L."""
    if not np.isfinite(size):
        return "unknown"
    if size <= 1.5:
        return "S"
    return "M" if size < 7 else "L"


def annotate(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """Add ``family``, ``size`` (billions), ``size_bucket`` and ``construction`` columns to the cells."""
    unknown = sorted(set(spec.models) - set(cells["model_name"]))
    if unknown:
        raise XlingError(f"analysis config: models.{unknown[0]}: no such model in the results table")
    out = cells.copy()
    models = pd.DataFrame({"model_name": sorted(cells["model_name"].unique())})
    sizes = cells.groupby("model_name")["model_size"].first()
    fam, size = [], []
    for name in models["model_name"]:
        meta = spec.models.get(name, ModelMeta())
        fam.append(meta.family or parse_family(name))
        given = float(sizes.get(name, np.nan))
        size.append(
            meta.size if meta.size is not None else (given if np.isfinite(given) and given > 0 else parse_size(name))
        )
    models["family"] = fam
    models["size"] = size
    models["size_bucket"] = [size_bucket(s) for s in size]
    out = out.merge(models, on="model_name", how="left")
    construction = {**DEFAULT_CONSTRUCTION, **{t: m.construction for t, m in spec.tasks.items() if m.construction}}
    out["construction"] = out["eval_dataset"].map(construction).fillna("unspecified")
    return out
