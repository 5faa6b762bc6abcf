"""Donor and recipient roles: how much a language (task) gives as a source and gets as a target.

Each score is the paper's two-stage mean: mean delta per model, then mean over models; CIs
resample models (with a single model: the cells of each language or task, see ``stats.two_stage``). A role is
*named* (hub donor, brittle recipient) only when the bootstrap CI of its deviation from the average over
languages (tasks) excludes zero, and both that CI and the score's CI can vary (finite, positive width).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from xling.analysis.meta import AnalysisSpec
from xling.analysis.stats import two_stage


def role_table(sub: pd.DataFrame, source: str, target: str, name: str, spec: AnalysisSpec) -> pd.DataFrame:
    """Donor scores keyed by ``source``, recipient scores by ``target``, merged on the shared name ``name``."""
    rng = np.random.default_rng(spec.seed)
    cols = ["mean", "ci_low", "ci_high", "dev_low", "dev_high", "ci_method"]
    donor = two_stage(sub, source, "delta", rng, spec.n_boot).rename(columns={source: name})
    recip = two_stage(sub, target, "delta", rng, spec.n_boot).rename(columns={target: name})
    donor = donor.rename(columns={c: f"donor_{c}" if c != "mean" else "donor" for c in cols}).drop(columns="n_models")
    recip = recip.rename(columns={c: f"recipient_{c}" if c != "mean" else "recipient" for c in cols})
    out = donor.merge(recip, on=name, how="outer").sort_values(name).reset_index(drop=True)
    order = [
        name,
        "donor",
        "recipient",
        "donor_ci_low",
        "donor_ci_high",
        "recipient_ci_low",
        "recipient_ci_high",
        "donor_dev_low",
        "donor_dev_high",
        "recipient_dev_low",
        "recipient_dev_high",
        "n_models",
        "donor_ci_method",
        "recipient_ci_method",
    ]
    return out[order]


def language_donor_recipient(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """``lang,donor,recipient`` (+ CIs) from MT-CL cells (same task, other language)."""
    mtcl = cells[cells["regime"] == "MT-CL"]
    return role_table(mtcl, "fine_tuned_language", "eval_language", "lang", spec)


def task_donor_recipient(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """``task,donor,recipient`` (+ CIs) from CT-ML cells (other task, same language)."""
    ctml = cells[cells["regime"] == "CT-ML"]
    return role_table(ctml, "fine_tuned_dataset", "eval_dataset", "task", spec)


def language_group_roles(cells: pd.DataFrame, spec: AnalysisSpec) -> pd.DataFrame:
    """``group,donor,recipient`` (+ CIs) from MT-CL cells, languages pooled by the configured groups.

    A group's donor score is the two-stage mean over the MT-CL cells whose source language is in the group
    (recipient: target language); on a complete grid that equals the release's mean of its languages' scores.
    All groups are scored in one bootstrap, so a deviation is from the average over groups; a language may be
    in several groups.
    """
    mtcl = cells[cells["regime"] == "MT-CL"]
    parts = []
    for group, langs in spec.language_groups.items():
        members = set(langs)
        parts.append(mtcl[mtcl["fine_tuned_language"].isin(members)].assign(src=group, tgt=None))
        parts.append(mtcl[mtcl["eval_language"].isin(members)].assign(src=None, tgt=group))
    frame = pd.concat(parts, ignore_index=True) if parts else mtcl.iloc[:0]
    if frame.empty:
        return pd.DataFrame(columns=["group", "donor", "recipient"])
    out = role_table(frame, "src", "tgt", "group", spec)
    present = set(mtcl["fine_tuned_language"]) | set(mtcl["eval_language"])
    out.insert(1, "languages", [",".join(sorted(set(spec.language_groups[g]) & present)) for g in out["group"]])
    return out


def roles_by_task_subset(cells: pd.DataFrame, spec: AnalysisSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Language roles recomputed on each task subset (construction type), and Spearman rho between subsets."""
    mtcl = cells[cells["regime"] == "MT-CL"]
    subsets = sorted(mtcl["construction"].unique())
    tables = {s: language_donor_recipient(mtcl[mtcl["construction"] == s], spec) for s in subsets}
    by_subset = pd.concat([t.assign(subset=s) for s, t in tables.items()], ignore_index=True)
    by_subset = by_subset[["subset", *[c for c in by_subset.columns if c != "subset"]]]
    rows = []
    for a, b in combinations(subsets, 2):
        for role in ("donor", "recipient"):
            merged = tables[a][["lang", role]].merge(tables[b][["lang", role]], on="lang").dropna()
            rho, p = stats.spearmanr(merged[f"{role}_x"], merged[f"{role}_y"]) if len(merged) >= 3 else (np.nan, np.nan)
            rows.append({"subset_a": a, "subset_b": b, "role": role, "spearman_rho": rho, "p": p, "n": len(merged)})
    agreement = pd.DataFrame(rows, columns=["subset_a", "subset_b", "role", "spearman_rho", "p", "n"])
    return by_subset, agreement


def _can_vary(lo: float, hi: float) -> bool:
    """An interval that is evidence: both ends finite and a positive width beyond float round-off.

    Identical cells give bootstrap means that differ only in their last bits; such an interval is zero-width.
    """
    return bool(np.isfinite(lo) and np.isfinite(hi) and hi - lo > 1e-9 * max(1.0, abs(lo), abs(hi)))


def named_roles(language_roles: pd.DataFrame | None, task_roles: pd.DataFrame | None) -> pd.DataFrame:
    """Hub donors, weak donors, generous and brittle recipients whose deviation CI excludes zero."""
    rows = []
    for kind, table, name in (("language", language_roles, "lang"), ("task", task_roles, "task")):
        for _, r in (table if table is not None else pd.DataFrame()).iterrows():
            for col, above, below in (
                ("donor", "hub donor", "weak donor"),
                ("recipient", "generous recipient", "brittle recipient"),
            ):
                lo, hi = r[f"{col}_dev_low"], r[f"{col}_dev_high"]
                if not (_can_vary(lo, hi) and _can_vary(r[f"{col}_ci_low"], r[f"{col}_ci_high"])):
                    continue
                label = above if lo > 0 else below if hi < 0 else None
                if label:
                    rows.append(
                        {
                            "kind": kind,
                            "name": r[name],
                            "role": label,
                            "score": r[col],
                            "ci_low": r[f"{col}_ci_low"],
                            "ci_high": r[f"{col}_ci_high"],
                            "deviation_ci_low": lo,
                            "deviation_ci_high": hi,
                            "ci_method": r[f"{col}_ci_method"],
                        }
                    )
    cols = [
        "kind",
        "name",
        "role",
        "score",
        "ci_low",
        "ci_high",
        "deviation_ci_low",
        "deviation_ci_high",
        "ci_method",
    ]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["kind", "role", "score"], ascending=[True, True, False]).reset_index(drop=True)
