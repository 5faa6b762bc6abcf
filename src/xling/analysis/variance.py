"""Where does the variance of transfer come from? Two decompositions, overall and per regime.

Scope as the release (``analysis/analysis.py``): fitted on the transfer cells (MT-ML excluded;
``variance_cells: all`` keeps them), overall and within each transfer regime with at least 50 cells, on all
of them (subset ``all``) and again on the release's two subsets: cells whose source or target task is
``variance_subset_task`` (``global_mmlu``: the paper's Global-MMLU fit) and the others (its translated-only fit).

1. The paper's model (``mixedlm``): statsmodels MixedLM, delta ~ 1 with a random intercept per model
   and variance components for the source cell and the target cell *nested in the model* (REML).
   Shares = each variance / the sum of variances, in %. Fitted as the release fits it (``mixedlm_optimizer:
   lbfgs``: REML by L-BFGS, at most 1000 iterations), or with ``powell`` (derivative-free, L-BFGS as its
   fallback). Where a component's likelihood is flat the two stop at different points (simulated paper grid:
   shares within 1.1 pp, REML log-likelihoods within 0.04, either one higher), so the release's optimiser is the
   default. Each fit's REML log-likelihood and convergence are in the table.
2. A crossed decomposition (``crossed``): sequential (Type I) sums of squares of a fixed-effects
   factorial fit with the five crossed factors (model, source task, source language, target task,
   target language) and their two-way interactions, higher orders pooled with the residual. On a
   complete grid the design is balanced, so the terms are orthogonal and the shares do not depend on
   the order; on an incomplete grid (or within a regime, where e.g. target task = source task) terms
   enter in the listed order and an aliased term gets 0. Sums of squares rather than crossed random
   effects because they are exact, fast (one 600-column Gram matrix) and never fail to converge, and
   they show the interactions the nested model cannot separate.
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import sparse

from xling.analysis.meta import AnalysisSpec, MixedLMOptimizer

FACTORS = {
    "model": "model_name",
    "source_task": "fine_tuned_dataset",
    "source_language": "fine_tuned_language",
    "target_task": "eval_dataset",
    "target_language": "eval_language",
}
SCOPES = ("overall", "MT-CL", "CT-ML", "CT-CL")
MIN_ROWS = 50


def subsets(cells: pd.DataFrame, spec: AnalysisSpec, notes: list[str] | None = None) -> list[tuple[str, pd.DataFrame]]:
    """The cells of each fit family: ``all``, then ``involving TASK`` and ``excluding TASK`` (the release's split).

    ``cells`` are restricted to transfer cells unless ``spec.variance_cells == "all"``; the subset pair is left
    out (with a note) when no cell involves the task or every cell does.
    """
    if spec.variance_cells == "transfer":
        cells = cells[cells["regime"] != "MT-ML"]
    out = [("all", cells)]
    task = spec.variance_subset_task
    if task is not None:
        involving = (cells["fine_tuned_dataset"] == task) | (cells["eval_dataset"] == task)
        if involving.any() and not involving.all():
            out += [(f"involving {task}", cells[involving]), (f"excluding {task}", cells[~involving])]
        elif notes is not None:
            notes.append(f"variance subsets: skipped ({'every' if involving.all() else 'no'} cell involves {task})")
    return out


def _scopes(
    cells: pd.DataFrame, spec: AnalysisSpec, notes: list[str] | None = None
) -> list[tuple[str, str, pd.DataFrame]]:
    """(subset, scope, cells) of every fit: each subset overall and per transfer regime, >= MIN_ROWS cells each."""
    out = []
    for subset, df in subsets(cells, spec, notes):
        out.append((subset, "overall", df))
        out += [(subset, r, df[df["regime"] == r]) for r in SCOPES[1:]]
    return [(sub, s, d) for sub, s, d in out if len(d) >= MIN_ROWS]


def fit_mixedlm(df: pd.DataFrame, optimizer: MixedLMOptimizer = "lbfgs") -> dict[str, float]:
    """Variances of the nested model (``model``, ``source (in model)``, ``target (in model)``, ``residual``),
    the REML log-likelihood ``llf`` and ``converged`` (1.0/0.0) of one fit."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    work = pd.DataFrame(
        {
            "delta": df["delta"].to_numpy(),
            "model": df["model_name"].to_numpy(),
            "source": (df["fine_tuned_dataset"] + "|" + df["fine_tuned_language"]).to_numpy(),
            "target": (df["eval_dataset"] + "|" + df["eval_language"]).to_numpy(),
        }
    )
    model = MixedLM.from_formula(
        "delta ~ 1",
        groups="model",
        re_formula="1",
        vc_formula={"source": "0 + C(source)", "target": "0 + C(target)"},
        data=work,
        use_sparse=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if optimizer == "lbfgs":
            fit = model.fit(reml=True, method="lbfgs", maxiter=1000)
        else:
            fit = model.fit(reml=True, method=["powell", "lbfgs"], maxiter=2000)
    vcomp = np.asarray(fit.vcomp, dtype=float)
    names = list(model.exog_vc.names)
    return {
        "model": float(fit.cov_re.iloc[0, 0]),
        "source (in model)": float(vcomp[names.index("source")]),
        "target (in model)": float(vcomp[names.index("target")]),
        "residual": float(fit.scale),
        "llf": float(fit.llf),
        "converged": float(bool(fit.converged)),
    }


def mixedlm_decomposition(cells: pd.DataFrame, spec: AnalysisSpec, notes: list[str] | None = None) -> pd.DataFrame:
    """``subset,scope,n,component,variance,share,reml_llf,converged`` from the paper's nested MixedLM, per subset,
    overall and per regime.

    A fit that fails (e.g. a singular design on a tiny grid) is left out and named in ``notes``; one that does not
    converge is kept (as the release keeps it) and named in ``notes``.
    """
    rows = []
    for subset, scope, df in _scopes(cells, spec):
        try:
            comps = fit_mixedlm(df, spec.mixedlm_optimizer)
        except (np.linalg.LinAlgError, ValueError) as err:
            if notes is not None:
                notes.append(f"variance_mixedlm: {subset}/{scope} fit failed ({str(err).splitlines()[0]}); left out")
            continue
        llf, converged = comps.pop("llf"), bool(comps.pop("converged"))
        if not converged and notes is not None:
            notes.append(f"variance_mixedlm: {subset}/{scope} fit did not converge ({spec.mixedlm_optimizer})")
        total = sum(max(v, 0.0) for v in comps.values())
        for name, var in comps.items():
            rows.append(
                {
                    "subset": subset,
                    "scope": scope,
                    "n": len(df),
                    "component": name,
                    "variance": var,
                    "share": 100.0 * max(var, 0.0) / total if total > 0 else np.nan,
                    "reml_llf": llf,
                    "converged": converged,
                }
            )
    cols = ["subset", "scope", "n", "component", "variance", "share", "reml_llf", "converged"]
    return pd.DataFrame(rows, columns=cols)


def _terms() -> list[tuple[str, tuple[str, ...]]]:
    names = list(FACTORS)
    terms = [(n, (n,)) for n in names]
    terms += [(f"{a} x {b}", (a, b)) for a, b in combinations(names, 2)]
    return terms


def _onehot(codes: np.ndarray, n_levels: int) -> sparse.csr_matrix:
    return sparse.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), n_levels))


def crossed_decomposition(
    cells: pd.DataFrame, spec: AnalysisSpec | None = None, notes: list[str] | None = None
) -> pd.DataFrame:
    """``subset,scope,n,term,df,ss,share`` from sequential sums of squares of the crossed factorial model."""
    rows = []
    for subset, scope, df in _scopes(cells, spec or AnalysisSpec(), notes):
        y = df["delta"].to_numpy(dtype=float)
        y = y - y.mean()
        total = float(y @ y)
        codes = {f: pd.factorize(df[col])[0] for f, col in FACTORS.items()}
        names, blocks = [], []
        for name, factors in _terms():
            joint = codes[factors[0]].astype(np.int64)
            for f in factors[1:]:
                joint = joint * (codes[f].max() + 1) + codes[f]
            joint = pd.factorize(joint)[0]
            names.append(name)
            blocks.append(_onehot(joint, joint.max() + 1))
        x = sparse.hstack([sparse.csr_matrix(np.ones((len(y), 1)))] + blocks, format="csr")
        used = 1
        for name, (ss, dof) in zip(names, _sequential_ss(x, y, [b.shape[1] for b in blocks])):
            used += dof
            rows.append(
                {
                    "subset": subset,
                    "scope": scope,
                    "n": len(y),
                    "term": name,
                    "df": dof,
                    "ss": ss,
                    "share": 100.0 * ss / total if total > 0 else np.nan,
                }
            )
        explained = sum(r["ss"] for r in rows if r["subset"] == subset and r["scope"] == scope)
        resid = max(total - explained, 0.0)
        rows.append(
            {
                "subset": subset,
                "scope": scope,
                "n": len(y),
                "term": "higher-order + residual",
                "df": int(len(y) - used),
                "ss": resid,
                "share": 100.0 * resid / total if total > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["subset", "scope", "n", "term", "df", "ss", "share"])


def _sequential_ss(x: sparse.csr_matrix, y: np.ndarray, widths: list[int]) -> list[tuple[float, int]]:
    """Type I sums of squares (and df) of column blocks after the intercept column, from one Cholesky factor.

    With G = X'X = LL' (a tiny ridge keeps aliased columns harmless), z = L^-1 X'y and the fitted sum of
    squares of the first k columns is ||z[:k]||^2, so a block's SS is the sum of its z^2: the Gram-Schmidt
    view of sequential ANOVA. Aliased columns (pivots ~ 0) add neither SS nor df.
    """
    from scipy.linalg import cholesky, solve_triangular

    gram = (x.T @ x).toarray()
    diag = np.diag(gram).copy()
    gram[np.diag_indices_from(gram)] += 1e-10 * diag.mean()
    chol = cholesky(gram, lower=True)
    z = solve_triangular(chol, x.T @ y, lower=True)
    kept = np.diag(chol) ** 2 > 1e-6 * np.maximum(diag, 1e-300)
    out, start = [], 1
    for width in widths:
        block = slice(start, start + width)
        out.append((float(np.sum(z[block][kept[block]] ** 2)), int(kept[block].sum())))
        start += width
    return out
