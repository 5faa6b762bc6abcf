"""Where does the variance of transfer come from? Two decompositions, overall and per regime.

1. The paper's model (``mixedlm``): statsmodels MixedLM, delta ~ 1 with a random intercept per model
   and variance components for the source cell and the target cell *nested in the model* (REML).
   Shares = each variance / the sum of variances, in %. Fitted with Powell (derivative-free: with three
   variance parameters it needs far fewer costly likelihood evaluations than L-BFGS's analytic score,
   ~3x faster to the same estimates), falling back to L-BFGS if Powell does not converge.
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

FACTORS = {
    "model": "model_name",
    "source_task": "fine_tuned_dataset",
    "source_language": "fine_tuned_language",
    "target_task": "eval_dataset",
    "target_language": "eval_language",
}
SCOPES = ("overall", "MT-CL", "CT-ML", "CT-CL")
MIN_ROWS = 50


def _scopes(cells: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The overall fit uses every cell, like the paper; regimes each get their own fit."""
    out = [("overall", cells)]
    out += [(r, cells[cells["regime"] == r]) for r in SCOPES[1:]]
    return [(s, d) for s, d in out if len(d) >= MIN_ROWS]


def _fit_mixedlm(df: pd.DataFrame) -> dict[str, float]:
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
        fit = model.fit(reml=True, method=["powell", "lbfgs"], maxiter=2000)
    vcomp = np.asarray(fit.vcomp, dtype=float)
    names = list(model.exog_vc.names)
    return {
        "model": float(fit.cov_re.iloc[0, 0]),
        "source (in model)": float(vcomp[names.index("source")]),
        "target (in model)": float(vcomp[names.index("target")]),
        "residual": float(fit.scale),
    }


def mixedlm_decomposition(cells: pd.DataFrame, notes: list[str] | None = None) -> pd.DataFrame:
    """``scope,component,variance,share`` from the paper's nested MixedLM, overall and per transfer regime.

    A scope whose fit fails (e.g. a singular design on a tiny grid) is left out and named in ``notes``.
    """
    rows = []
    for scope, df in _scopes(cells):
        try:
            comps = _fit_mixedlm(df)
        except (np.linalg.LinAlgError, ValueError) as err:
            if notes is not None:
                notes.append(f"variance_mixedlm: {scope} fit failed ({str(err).splitlines()[0]}); left out")
            continue
        total = sum(max(v, 0.0) for v in comps.values())
        for name, var in comps.items():
            rows.append(
                {
                    "scope": scope,
                    "component": name,
                    "variance": var,
                    "share": 100.0 * max(var, 0.0) / total if total > 0 else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=["scope", "component", "variance", "share"])


def _terms() -> list[tuple[str, tuple[str, ...]]]:
    names = list(FACTORS)
    terms = [(n, (n,)) for n in names]
    terms += [(f"{a} x {b}", (a, b)) for a, b in combinations(names, 2)]
    return terms


def _onehot(codes: np.ndarray, n_levels: int) -> sparse.csr_matrix:
    return sparse.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), n_levels))


def crossed_decomposition(cells: pd.DataFrame) -> pd.DataFrame:
    """``scope,term,df,ss,share`` from sequential sums of squares of the crossed factorial model."""
    rows = []
    for scope, df in _scopes(cells):
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
                    "scope": scope,
                    "term": name,
                    "df": dof,
                    "ss": ss,
                    "share": 100.0 * ss / total if total > 0 else np.nan,
                }
            )
        explained = sum(r["ss"] for r in rows if r["scope"] == scope)
        resid = max(total - explained, 0.0)
        rows.append(
            {
                "scope": scope,
                "term": "higher-order + residual",
                "df": int(len(y) - used),
                "ss": resid,
                "share": 100.0 * resid / total if total > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["scope", "term", "df", "ss", "share"])


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
