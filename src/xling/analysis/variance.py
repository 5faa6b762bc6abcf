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
   enter in the listed order and an aliased term gets no degrees of freedom. Sums of squares rather than
   crossed random effects because they are exact, fast (one 600-column Gram matrix) and never fail to
   converge, and they show the interactions the nested model cannot separate.

A component or term these cells cannot estimate (one model, so no model variance; a term aliased with the ones
before it; a variance at the boundary) gets no share: ``estimable`` is False and ``reason`` says why. With one
model the MixedLM still converges, but its model variance is only the optimiser's starting value (the REML
likelihood does not depend on it), so it is never reported as a share.
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
# A variance component below this fraction of the fit's total is at the boundary (the REML estimate is 0).
BOUNDARY = 1e-4


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


def mixedlm_identifiability(df: pd.DataFrame) -> dict[str, str]:
    """Why a component of the nested model cannot be estimated from these cells (component -> reason).

    The model intercept needs two models (with one, its random intercept is the fixed intercept: the REML
    likelihood is flat in it, and the optimiser returns its starting value); a source (target) component nested in
    the model needs two source (target) cells in some model, and two cells of some source (target), else it is the
    model intercept or the residual again; the residual is then confounded too.
    """
    reasons: dict[str, str] = {}
    if df["model_name"].nunique() < 2:
        reasons["model"] = "one model (its random intercept is the fixed intercept)"
    for comp, role, cols in (
        ("source (in model)", "source", ["fine_tuned_dataset", "fine_tuned_language"]),
        ("target (in model)", "target", ["eval_dataset", "eval_language"]),
    ):
        per_level = df.groupby(["model_name", *cols], observed=True).size()
        if (per_level.groupby(level=0).size() < 2).all():
            reasons[comp] = f"one {role} cell per model (the same as the model intercept)"
        elif (per_level < 2).all():
            reasons[comp] = f"one cell per {role} cell (the same as the residual)"
            reasons.setdefault("residual", f"confounded with {comp}")
    return reasons


def mixedlm_decomposition(cells: pd.DataFrame, spec: AnalysisSpec, notes: list[str] | None = None) -> pd.DataFrame:
    """``subset,scope,n,component,variance,share,estimable,reason,reml_llf,converged`` from the paper's nested
    MixedLM, per subset, overall and per regime.

    A component that cannot be estimated (``mixedlm_identifiability``: its variance is NaN) or that the fit put at
    the boundary (variance below ``BOUNDARY`` of the total) has no share (NaN), ``estimable`` False and the
    reason; the shares of the others are of their total. A fit that fails (e.g. a singular design on a tiny grid)
    is left out and named in ``notes``; one that does not converge is kept (as the release keeps it) and named in
    ``notes``.
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
        reasons = mixedlm_identifiability(df)
        comps = {k: np.nan if k in reasons else max(v, 0.0) for k, v in comps.items()}
        total = float(np.nansum(list(comps.values())))
        for name, var in comps.items():
            if name not in reasons and total > 0 and var <= BOUNDARY * total:
                reasons[name] = "at the boundary (estimated as 0, which the data cannot tell from a small variance)"
        for name, var in comps.items():
            rows.append(
                {
                    "subset": subset,
                    "scope": scope,
                    "n": len(df),
                    "component": name,
                    "variance": var,
                    "share": 100.0 * var / total if total > 0 and name not in reasons else np.nan,
                    "estimable": name not in reasons,
                    "reason": reasons.get(name, ""),
                    "reml_llf": llf,
                    "converged": converged,
                }
            )
    cols = ["subset", "scope", "n", "component", "variance", "share", "estimable", "reason", "reml_llf", "converged"]
    return pd.DataFrame(rows, columns=cols)


def _terms() -> list[tuple[str, tuple[str, ...]]]:
    names = list(FACTORS)
    terms = [(n, (n,)) for n in names]
    terms += [(f"{a} x {b}", (a, b)) for a, b in combinations(names, 2)]
    return terms


def _onehot(codes: np.ndarray, n_levels: int) -> sparse.csr_matrix:
    return sparse.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), n_levels))


def _crossed_reason(factors: tuple[str, ...], levels: dict[str, int], dof: int) -> str:
    """Why a crossed term has no degrees of freedom left ("" when it has some)."""
    if dof > 0:
        return ""
    single = [f for f in factors if levels[f] < 2]
    if single:
        return f"one {single[0].replace('_', ' ')} in this fit"
    return "aliased (the terms before it already determine it in this fit)"


def crossed_decomposition(
    cells: pd.DataFrame, spec: AnalysisSpec | None = None, notes: list[str] | None = None
) -> pd.DataFrame:
    """``subset,scope,n,term,df,ss,share,estimable,reason`` from sequential sums of squares of the crossed
    factorial model.

    A term with no degrees of freedom left (a factor with one level in the fit, e.g. one model; or aliased with the
    terms before it, e.g. the target task within MT-CL) cannot be estimated: no share (NaN), ``estimable`` False
    and the reason.
    """
    rows = []
    for subset, scope, df in _scopes(cells, spec or AnalysisSpec(), notes):
        y = df["delta"].to_numpy(dtype=float)
        y = y - y.mean()
        total = float(y @ y)
        codes = {f: pd.factorize(df[col])[0] for f, col in FACTORS.items()}
        levels = {f: int(c.max()) + 1 for f, c in codes.items()}
        names, blocks, term_factors = [], [], []
        for name, factors in _terms():
            joint = codes[factors[0]].astype(np.int64)
            for f in factors[1:]:
                joint = joint * (codes[f].max() + 1) + codes[f]
            joint = pd.factorize(joint)[0]
            names.append(name)
            term_factors.append(factors)
            blocks.append(_onehot(joint, joint.max() + 1))
        x = sparse.hstack([sparse.csr_matrix(np.ones((len(y), 1)))] + blocks, format="csr")
        used, explained = 1, 0.0
        for name, factors, (ss, dof) in zip(names, term_factors, _sequential_ss(x, y, [b.shape[1] for b in blocks])):
            used += dof
            explained += ss
            reason = _crossed_reason(factors, levels, dof)
            rows.append(
                {
                    "subset": subset,
                    "scope": scope,
                    "n": len(y),
                    "term": name,
                    "df": dof,
                    "ss": ss,
                    "share": 100.0 * ss / total if total > 0 and not reason else np.nan,
                    "estimable": not reason,
                    "reason": reason,
                }
            )
        resid, resid_df = max(total - explained, 0.0), int(len(y) - used)
        reason = "" if resid_df > 0 else "no residual degrees of freedom left"
        rows.append(
            {
                "subset": subset,
                "scope": scope,
                "n": len(y),
                "term": "higher-order + residual",
                "df": resid_df,
                "ss": resid,
                "share": 100.0 * resid / total if total > 0 and not reason else np.nan,
                "estimable": not reason,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=["subset", "scope", "n", "term", "df", "ss", "share", "estimable", "reason"])


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
