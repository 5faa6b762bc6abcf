"""Features of a (model, source cell, target cell): URIEL distances between the languages, base scores, model family
and size. Shared by xling's predictor (as regressors beside its effects) and the gradient-boosted baseline (as its
whole input)."""

from __future__ import annotations

import numpy as np

from xling.analysis.linguistic import FEATURE_SETS, language_distances
from xling.analysis.prediction.data import TransferTensor


def language_distance_features(languages: list[str], notes: list[str]) -> np.ndarray:
    """(languages, languages, 5) URIEL cosine distances (``FEATURE_SETS`` order), each standardised over the pairs of
    different languages; 0 on the diagonal and for a language URIEL does not know (named in ``notes``)."""
    nl = len(languages)
    out = np.zeros((nl, nl, len(FEATURE_SETS)))
    if nl < 2:
        return out
    found: list[str] = []
    dist = language_distances(languages, found)
    notes.extend(n.replace("linguistic_correlations", "predict") for n in found)
    index = {lang: i for i, lang in enumerate(languages)}
    a, b = dist["lang_a"].map(index).to_numpy(), dist["lang_b"].map(index).to_numpy()
    for f, name in enumerate(FEATURE_SETS):
        values = dist[name].to_numpy(dtype=float)
        ok = np.isfinite(values)
        if ok.sum() < 2 or values[ok].std() == 0:
            continue
        z = (values - values[ok].mean()) / values[ok].std()
        out[a[ok], b[ok], f] = z[ok]
    return out


def pair_distances(tensor: TransferTensor, lang_dist: np.ndarray) -> np.ndarray:
    """(cells, cells, 5): the distances between each source cell's and each target cell's language."""
    return lang_dist[tensor.cell_lang[:, None], tensor.cell_lang[None, :]]


def centred_base(tensor: TransferTensor) -> np.ndarray:
    """(models, cells): each model's base score on a cell minus the mean over models (pp), a cell's headroom for a
    model relative to the others."""
    base = 100.0 * tensor.base
    return base - base.mean(axis=0, keepdims=True)


def boosted_features(tensor: TransferTensor, lang_dist: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The gradient-boosted baseline's input for every (model, source, target) cell, flattened in that order, and the
    indices of its categorical columns: regime, model, family, source task, source language, target task, target
    language (categorical), log2 size, base score on the source and on the target, five URIEL distances."""
    nm, nc = tensor.shape
    m, s, t = (g.ravel() for g in np.meshgrid(np.arange(nm), np.arange(nc), np.arange(nc), indexing="ij"))
    families = sorted(set(tensor.families))
    family = np.array([families.index(f) for f in tensor.families])
    dist = pair_distances(tensor, lang_dist)[s, t]
    columns = [
        tensor.regime[s, t],
        m,
        family[m],
        tensor.cell_task[s],
        tensor.cell_lang[s],
        tensor.cell_task[t],
        tensor.cell_lang[t],
        np.nan_to_num(tensor.log_size[m], nan=0.0),
        tensor.base[m, s],
        tensor.base[m, t],
    ]
    x = np.column_stack([*columns, dist]).astype(float)
    return x, list(range(7))
