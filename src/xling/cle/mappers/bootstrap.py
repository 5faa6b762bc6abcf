"""PROC-B: Procrustes with bootstrapping (Glavaš et al., 2019), two named variants.

Both start from PROC on the seed dictionary and add *mutual nearest neighbours* between the mapped source
space and the target space (cosine), ranked by frequency (the sum of the two words' frequency ranks, i.e.
row indices; ties by source rank), then refit PROC:

- ``variant="paper"`` (``proc-b``): the paper's PROC-B, one bootstrap step: the seed dictionary plus the
  best-ranked new mutual pairs, up to ``limit`` (10K) pairs in all, then refit once.
- ``variant="iterative"`` (``proc-b-iterative``): xling-eval's loop: the dictionary is replaced by the
  best-ranked mutual pairs, ``growth`` (1.5) times as many as before, up to ``limit``; it stops when the
  dictionary grows by less than 1% or reaches ``limit``; the map is fitted on the last dictionary.

Seed duplicates, two ways. ``seed_duplicates="drop"`` (default): mutual pairs already in the seed dictionary are not
added again, and ``limit`` counts the distinct pairs fitted. ``seed_duplicates="release"`` (the ``glavas2019``
protocol) does what xling-eval's ``project_proc_bootstrap_reproduce`` (the paper's PROC-B; ``map.py -m r``
computes it, then fails unpacking its result) does: the seed is every in-vocabulary dictionary line as given
(repeated lines included, so they weigh twice in the fit), *every* best-ranked mutual pair is appended, also when it
is already a seed pair, and the number appended is ``limit`` minus the number of lines of the dictionary file, out of
vocabulary ones included (``fit(..., n_seed_lines=...)``). The iterative variant's first growth step then also counts
the file's lines, as ``project_proc_bootstrap`` does.

Finding mutual neighbours is exact but lazy: sources are scanned in frequency order and the scan stops once
the pairs found are enough and no later source can outrank them (a later source ``i`` has rank sum ``>= i``),
so a 200K vocabulary is rarely scanned in full.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from xling.cle.mappers.base import Mapper, check_pairs, check_same_dim
from xling.cle.mappers.procrustes import procrustes_map
from xling.cle.normalize import unit_length
from xling.cle.retrieval import knn
from xling.errors import XlingError

Variant = Literal["paper", "iterative"]
SeedDuplicates = Literal["drop", "release"]


def mutual_neighbours(
    Xm: np.ndarray, Zm: np.ndarray, need: int, exclude: set[tuple[int, int]] = frozenset(), block: int = 4096
) -> np.ndarray:
    """The ``need`` best-ranked mutual nearest-neighbour pairs ``(i, j)`` (fewer if there are not as many).

    ``Xm`` and ``Zm`` are unit-length rows of one shared space. A pair is mutual when ``j`` is the nearest
    target of source ``i`` and ``i`` the nearest source of target ``j``; pairs in ``exclude`` are skipped.
    Ranking: ``i + j`` ascending, then ``i``.
    """
    found: list[tuple[int, int]] = []
    nn_of_target: dict[int, int] = {}
    for start in range(0, len(Xm), block):
        stop = min(start + block, len(Xm))
        s2t = knn(Xm[start:stop], Zm, 1)[0][:, 0]
        new_targets = np.setdiff1d(s2t, np.fromiter(nn_of_target, dtype=np.int64, count=len(nn_of_target)))
        if new_targets.size:
            t2s = knn(Zm[new_targets], Xm, 1)[0][:, 0]
            nn_of_target.update(zip(new_targets.tolist(), t2s.tolist()))
        for i, j in zip(range(start, stop), s2t.tolist()):
            if nn_of_target[j] == i and (i, j) not in exclude:
                found.append((i, j))
        # every later source has rank sum >= stop, and ties go to the lower source rank
        if sum(i + j <= stop for i, j in found) >= need:
            break
    found.sort(key=lambda p: (p[0] + p[1], p[0]))
    return np.array(found[:need], dtype=np.int64).reshape(-1, 2)


class ProcrustesBootstrap(Mapper):
    """PROC-B: Procrustes with bootstrapped mutual-nearest-neighbour pairs.

    Parameters
    ----------
    variant : ``"paper"`` (one bootstrap step, seed + new pairs up to ``limit``) or ``"iterative"``.
    limit : largest dictionary (10000).  growth : iterative growth factor (1.5).
    min_growth : iterative stop when the dictionary grows by less than this fraction (0.01).
    vocab_cutoff : search mutual neighbours among the most frequent words only (None: all words, as the paper).
    seed_duplicates : ``"drop"`` or ``"release"`` (xling-eval's handling; see the module docstring).
    normalize : steps applied to both spaces first (none, as xling-eval).

    Attributes
    ----------
    W_src_ : orthogonal map fitted on the final dictionary.  W_tgt_ : identity.
    pairs_ : the final dictionary (rows).  sizes_ : dictionary size at each fit.
    """

    def __init__(
        self,
        variant: Variant = "paper",
        limit: int = 10000,
        growth: float = 1.5,
        min_growth: float = 0.01,
        vocab_cutoff: int | None = None,
        seed_duplicates: SeedDuplicates = "drop",
        normalize: Sequence[str] = (),
    ) -> None:
        self.variant = variant
        self.limit = limit
        self.growth = growth
        self.min_growth = min_growth
        self.vocab_cutoff = vocab_cutoff
        self.seed_duplicates = seed_duplicates
        self.normalize = normalize

    def fit(self, X: Any, Z: Any, pairs: Any = None, *, n_seed_lines: int | None = None) -> ProcrustesBootstrap:
        """PROC on the seed pairs, then bootstrap (one step or iteratively) and refit.

        ``n_seed_lines``: lines of the seed dictionary file, out-of-vocabulary ones included; used by
        ``seed_duplicates="release"`` (default: the number of pairs given).
        """
        if self.variant not in ("paper", "iterative"):
            raise XlingError(f"proc-b variant: expected 'paper' or 'iterative', found {self.variant!r}")
        if self.seed_duplicates not in ("drop", "release"):
            raise XlingError(f"proc-b seed_duplicates: expected 'drop' or 'release', found {self.seed_duplicates!r}")
        if self.limit < 1 or self.growth <= 1 or self.min_growth < 0:
            raise XlingError(
                f"proc-b: need limit >= 1, growth > 1, min_growth >= 0; found "
                f"{self.limit}, {self.growth}, {self.min_growth}"
            )
        Xn, Zn = self._inputs(X, Z)
        check_same_dim(Xn, Zn, "proc-b")
        pairs = check_pairs(pairs, len(Xn), len(Zn))
        cut = self.vocab_cutoff or max(len(Xn), len(Zn))
        Xu, Zu = unit_length(Xn[:cut]), unit_length(Zn[:cut])
        release = self.seed_duplicates == "release"
        n_lines = len(pairs) if n_seed_lines is None or not release else n_seed_lines
        W = procrustes_map(Xn[pairs[:, 0]], Zn[pairs[:, 1]])
        self.sizes_ = [len(pairs)]
        if self.variant == "paper":
            seed = set() if release else {(int(i), int(j)) for i, j in pairs}
            new = mutual_neighbours(Xu @ W, Zu, max(0, self.limit - n_lines), exclude=seed)
            pairs = np.concatenate([pairs, new]) if len(new) else pairs
            W = procrustes_map(Xn[pairs[:, 0]], Zn[pairs[:, 1]])
            self.sizes_.append(len(pairs))
        else:
            size = 0
            while len(pairs) >= (1 + self.min_growth) * size and len(pairs) < self.limit:
                basis = n_lines if size == 0 else len(pairs)  # release: the first step grows the file's lines
                size = len(pairs)
                grown = mutual_neighbours(Xu @ W, Zu, min(int(self.growth * basis), self.limit))
                if len(grown) == 0:  # no mutual neighbours at all: keep the last map
                    break
                pairs = grown
                W = procrustes_map(Xn[pairs[:, 0]], Zn[pairs[:, 1]])
                self.sizes_.append(len(pairs))
        self.W_src_ = W
        self.W_tgt_ = np.eye(Zn.shape[1], dtype=np.float32)
        self.pairs_ = pairs
        return self
