"""Synthetic transfer grids with planted structure: for tests, demos and study planning.

delta(model, source, target) in pp = regime effect + family effect + size effect
    + donor(source language) + recipient(target language)      [cross-language regimes]
    + donor(source task) + recipient(target task)              [cross-task regimes]
    + model x source + model x target + cell noise
    [+ a low-rank source x target interaction shared by all models]          (``interaction_rank`` > 0)
    [+ relatedness x closeness(source language, target language)]           (``relatedness`` != 0),
and every seed adds its own noise to the fine-tuned score. Chosen hub donor languages get a donor
bonus and brittle recipients a penalty; every effect vector is centred, so the mean delta of a
regime is its planted regime effect (up to noise). The two optional terms make an additive model the
wrong answer (what ``xling predict`` is tested on); they draw from their own random stream, so a spec
without them gives the same table, byte for byte, as before they existed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from xling.config import Spec, parse_family, parse_size
from xling.contracts import LONG_COLUMNS, aggregate_seeds

DEFAULT_MODELS = [
    "Llama-3.2-1B-Instruct",
    "Llama-3.2-3B-Instruct",
    "Llama-3.1-8B-Instruct",
    "Qwen2.5-1.5B-Instruct",
    "Qwen2.5-3B-Instruct",
    "Qwen2.5-7B-Instruct",
    "gemma-3-1b-it",
    "gemma-3-4b-it",
    "gemma-3-12b-it",
]
DEFAULT_TASKS = ["arc_challenge", "global_mmlu", "hellaswag", "truthfulqa"]
DEFAULT_LANGUAGES = ["en", "de", "fr", "es", "it", "pt", "ru", "zh", "ja", "ar", "hi"]


class SimulationSpec(Spec):
    """What to plant. Effects are in percentage points; ``seed_sd`` is in score units (proportions)."""

    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    tasks: list[str] = Field(default_factory=lambda: list(DEFAULT_TASKS))
    languages: list[str] = Field(default_factory=lambda: list(DEFAULT_LANGUAGES))
    n_seeds: int = Field(3, ge=1)
    seed: int = 0
    hubs: list[str] = Field(default_factory=lambda: ["en"])
    brittle: list[str] = Field(default_factory=lambda: ["hi"])
    hub_bonus: float = 4.0
    brittle_penalty: float = 4.0
    regime_effects: dict[str, float] = Field(
        default_factory=lambda: {"MT-ML": 12.0, "MT-CL": 3.0, "CT-ML": 1.0, "CT-CL": -0.5}
    )
    family_effects: dict[str, float] = Field(default_factory=lambda: {"Llama": 0.6, "Qwen": 0.0, "Gemma": -0.6})
    size_effect_per_doubling: float = 0.4
    language_sd: float = 1.0
    task_sd: float = 1.0
    model_source_sd: float = 1.0
    model_target_sd: float = 1.0
    cell_sd: float = 1.5
    seed_sd: float = Field(0.01, ge=0)
    interaction_rank: int = Field(0, ge=0)
    interaction_sd: float = Field(2.0, ge=0)
    relatedness: float = 0.0


def planted_interaction(spec: SimulationSpec, n_cells: int) -> np.ndarray:
    """The (source cell x target cell) matrix U V^T of rank ``interaction_rank``, scaled to sd ``interaction_sd`` pp
    (zeros when the rank is 0). Drawn from its own stream (``seed``, 1) so the other effects do not move."""
    if spec.interaction_rank == 0:
        return np.zeros((n_cells, n_cells))
    rng = np.random.default_rng([spec.seed, 1])
    u = rng.normal(size=(n_cells, spec.interaction_rank))
    v = rng.normal(size=(n_cells, spec.interaction_rank))
    inter = u @ v.T
    return inter * (spec.interaction_sd / inter.std()) if inter.std() > 0 else inter


def language_closeness(languages: list[str]) -> np.ndarray:
    """Closeness of every ordered language pair: minus the URIEL ``syntax_knn`` cosine distance, standardised over the
    pairs of different languages (mean 0, sd 1; the diagonal is 0). Every language must be known to URIEL."""
    from xling.analysis.linguistic import language_distances
    from xling.errors import XlingError

    notes: list[str] = []
    dist = language_distances(languages, notes)
    index = {lang: i for i, lang in enumerate(languages)}
    out = np.full((len(languages), len(languages)), np.nan)
    out[dist["lang_a"].map(index), dist["lang_b"].map(index)] = dist["syntax_knn"].to_numpy()
    np.fill_diagonal(out, 0.0)
    if np.isnan(out).any() or len(languages) < 3:
        unknown = [lang for i, lang in enumerate(languages) if np.isnan(np.delete(out[i], i)).all()]
        raise XlingError(
            "relatedness needs URIEL syntax vectors of at least 3 languages; "
            + (f"unknown: {', '.join(unknown)}" if unknown else f"found {len(languages)}")
        )
    off = ~np.eye(len(languages), dtype=bool)
    sd = out[off].std()
    close = -(out - out[off].mean()) / (sd if sd > 0 else 1.0)
    close[~off] = 0.0
    return close


def _centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean()


def simulate_long(spec: SimulationSpec | None = None) -> pd.DataFrame:
    """The per-seed long table (interfaces.md schema) of a simulated grid (default spec: the paper's 9 x 44 x 44)."""
    spec = spec or SimulationSpec()
    rng = np.random.default_rng(spec.seed)
    nm, nt, nl = len(spec.models), len(spec.tasks), len(spec.languages)
    nc = nt * nl
    cell_task = np.repeat(np.arange(nt), nl)
    cell_lang = np.tile(np.arange(nl), nt)

    lang_donor = rng.normal(0, spec.language_sd, nl)
    lang_recip = rng.normal(0, spec.language_sd, nl)
    for i, lang in enumerate(spec.languages):
        lang_donor[i] += spec.hub_bonus if lang in spec.hubs else 0.0
        lang_recip[i] -= spec.brittle_penalty if lang in spec.brittle else 0.0
    lang_donor, lang_recip = _centred(lang_donor), _centred(lang_recip)
    task_donor, task_recip = _centred(rng.normal(0, spec.task_sd, nt)), _centred(rng.normal(0, spec.task_sd, nt))

    families = [parse_family(m) for m in spec.models]
    sizes = np.array([parse_size(m) for m in spec.models])
    log_size = np.log2(np.where(np.isfinite(sizes), sizes, 1.0))
    model_eff = np.array([spec.family_effects.get(f, 0.0) for f in families])
    model_eff = _centred(model_eff) + spec.size_effect_per_doubling * _centred(log_size)

    m, s, t = np.meshgrid(np.arange(nm), np.arange(nc), np.arange(nc), indexing="ij")
    m, s, t = m.ravel(), s.ravel(), t.ravel()
    same_task = cell_task[s] == cell_task[t]
    same_lang = cell_lang[s] == cell_lang[t]
    delta = np.array([spec.regime_effects.get(r, 0.0) for r in ("CT-CL", "CT-ML", "MT-CL", "MT-ML")])[
        same_task * 2 + same_lang
    ]
    delta = delta + model_eff[m]
    delta += np.where(same_lang, 0.0, lang_donor[cell_lang[s]] + lang_recip[cell_lang[t]])
    delta += np.where(same_task, 0.0, task_donor[cell_task[s]] + task_recip[cell_task[t]])
    delta += rng.normal(0, spec.model_source_sd, (nm, nc))[m, s] + rng.normal(0, spec.model_target_sd, (nm, nc))[m, t]
    delta += rng.normal(0, spec.cell_sd, len(delta))
    if spec.interaction_rank > 0:
        delta += planted_interaction(spec, nc)[s, t]
    if spec.relatedness != 0:
        closeness = language_closeness(spec.languages)[cell_lang[s], cell_lang[t]]
        delta += np.where(same_lang, 0.0, spec.relatedness * closeness)

    base_norm = rng.uniform(0.3, 0.7, (nm, nc))[m, t]
    base_raw = np.clip(base_norm - rng.uniform(0.0, 0.04, (nm, nc))[m, t], 0, 1)
    raw_shift = rng.normal(0, 0.5, len(delta))  # acc and acc_norm move slightly differently
    rows = []
    for k in range(spec.n_seeds):
        noise = rng.normal(0, spec.seed_sd, len(delta))
        rows.append(
            pd.DataFrame(
                {
                    "model_name": np.array(spec.models)[m],
                    "model_size": sizes[m],
                    "fine_tuned_dataset": np.array(spec.tasks)[cell_task[s]],
                    "fine_tuned_language": np.array(spec.languages)[cell_lang[s]],
                    "eval_dataset": np.array(spec.tasks)[cell_task[t]],
                    "eval_language": np.array(spec.languages)[cell_lang[t]],
                    "seed": k,
                    "score": np.clip(base_raw + (delta + raw_shift) / 100 + noise, 0, 1),
                    "score_base": base_raw,
                    "score_norm": np.clip(base_norm + delta / 100 + noise, 0, 1),
                    "score_norm_base": base_norm,
                }
            )
        )
    out = pd.concat(rows, ignore_index=True)[LONG_COLUMNS]
    return out


def simulate_grid(spec: SimulationSpec | None = None) -> pd.DataFrame:
    """The simulated grid in the release schema (seed statistics aggregated)."""
    return aggregate_seeds(simulate_long(spec))
