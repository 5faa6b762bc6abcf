"""ICP: non-adversarial unsupervised word translation (Hoshen & Wolf, EMNLP 2018), as
``facebookresearch/Non-adversarialTranslation`` runs it (``run_icp.py``, ``icp.py``, ``params.py``).

Two maps are learned, ``TX`` (source → target) and ``TY`` (target → source), acting on column vectors as in the
reference (``y ≈ TX x``). The steps, one function each:

1. ``pca_start``: the ``n_words`` (5000) most frequent words of each language, each vector centred and scaled
   across its dimensions, projected on the top ``n_components`` (25) principal components, divided by the global
   standard deviation.
2. Random restarts (``n_restarts``, 100): ICP from ``TX = TY = I`` for ``init_epochs`` (100) epochs in PCA space;
   the restart with the lowest reconstruction error wins. The reference's restarts differ by the signs its
   randomised PCA (``fbpca``) happens to give each component, and by the batch order; here the PCA is exact and
   each restart draws the signs explicitly (every component of each language flipped with probability 1/2).
3. ``icp_epoch``: one epoch of cycle-consistent ICP: every word is matched to its nearest mapped word of the other
   language (squared Euclidean), then Adam (beta1 0.5, a fresh optimiser each epoch, lr 0.01, batches of 128)
   minimises the squared distance of each mapped word to its match plus ``cycle_weight`` (0.01) times the
   cycle losses ``||TY TX x - x||^2`` and ``||TX TY y - y||^2``. As the reference, the optimiser adds the constant
   ``weight_decay`` (1e-5) to every gradient entry.
4. Full-dimension refinement: ``TX = TY = I`` on the raw vectors of the same words, ``train_epochs`` (50), the first
   epoch with the best restart's matches.
5. Fine-tuning on the ``n_refine_words`` (7500) most frequent words, ``refine_epochs`` (50), batches drawn from
   mutual nearest-neighbour pairs only.

Vectors are used raw (the reference does not normalise them); ``W_src_ = TX^T`` (rows map as ``x @ TX^T``) and
``W_tgt_`` is the identity, as the reference evaluates ``src @ T^T`` against the target space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xling.cle.mappers.base import Mapper, check_same_dim
from xling.cle.mappers.iterlog import IterationLog
from xling.errors import XlingError

#: Bytes of one block of scores in the nearest-neighbour search (1 MB: the block stays in cache; 2x faster than 16 MB).
BLOCK_BYTES = 2**20
#: Bytes of one group's stack of PCA vectors (restart x word x component): restarts run in groups of this size.
RESTART_BYTES = 32 * 2**20
SIGNS = np.array([-1.0, 1.0], dtype=np.float32)


def pca_start(X: np.ndarray, n_components: int) -> np.ndarray:
    """STEP 1: each row centred and scaled across its dimensions, projected on the top principal axes, / global std."""
    f = X.astype(np.float64)
    f = f - f.mean(axis=1, keepdims=True)
    f /= f.std(axis=1, keepdims=True)
    _, _, Vt = np.linalg.svd(f, full_matrices=False)
    f = f @ Vt[:n_components].T
    return (f / f.std()).astype(np.float32)


def nearest_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """For each row of ``A``, the index of its nearest row of ``B`` (squared Euclidean; ties: the lowest index)."""
    half_norms = 0.5 * np.einsum("ij,ij->i", B, B)
    out = np.empty(len(A), dtype=np.int64)
    step = max(1, BLOCK_BYTES // (4 * len(B)))
    for i in range(0, len(A), step):
        scores = A[i : i + step] @ B.T  # argmin |a - b|^2 = argmax <a, b> - |b|^2 / 2
        scores -= half_norms
        out[i : i + step] = scores.argmax(axis=1)
    return out


@dataclass
class Adam:
    """The reference's Adam (``icp.ADAM``): the constant ``weight_decay`` is added to every gradient entry."""

    lr: float
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 1e-5
    eps: float = 1e-8
    t: int = 0
    m: np.ndarray | None = None
    v: np.ndarray | None = None

    def step(self, g: np.ndarray) -> np.ndarray:
        """The update to subtract from the parameters."""
        self.t += 1
        g = g + self.weight_decay
        if self.m is None:
            self.m, self.v = np.zeros_like(g), np.zeros_like(g)
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * g**2
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def _t(A: np.ndarray) -> np.ndarray:
    """Transpose of each matrix of a stack."""
    return A.transpose(0, 2, 1)


def _match_grad(x: np.ndarray, target: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per restart, gradient in ``T`` of ``mean |target - T x|^2 / 2`` and the loss (stacks: restart x word x dim)."""
    r = target - x @ _t(T)
    return -(_t(r) @ x) / x.shape[1], 0.5 * (r**2).sum(axis=(1, 2)) / x.shape[1]


def _cycle_grads(x: np.ndarray, T1: np.ndarray, T2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per restart, gradients in ``T1`` and ``T2`` of ``mean |T2 T1 x - x|^2 / 2``."""
    xxt = (_t(x) @ x) / x.shape[1]
    M = T2 @ T1 - np.eye(T1.shape[1], dtype=T1.dtype)
    return _t(T2) @ M @ xxt, M @ xxt @ _t(T1)


@dataclass
class EpochResult:
    """Per restart, what one ICP epoch saw before its updates (stacks over restarts)."""

    match_x: np.ndarray  # for each source word, its matched target word
    match_y: np.ndarray  # for each target word, its matched source word
    rec: np.ndarray  # min over the two directions of the mean squared distance to the match
    n_mutual: np.ndarray  # min over the two directions of the number of mutual matches
    loss: np.ndarray  # mean matching loss of the epoch's batches (both directions)


def icp_epoch(
    x: np.ndarray,
    y: np.ndarray,
    TX: np.ndarray,
    TY: np.ndarray,
    rngs: list[np.random.Generator],
    *,
    lr: float,
    batch_size: int,
    cycle_weight: float,
    weight_decay: float,
    reciprocal: bool = False,
    matches: tuple[np.ndarray, np.ndarray] | None = None,
) -> EpochResult:
    """STEP 3: match every word to its nearest mapped word, then one epoch of Adam on ``TX``/``TY`` (in place).

    Runs several restarts at once: ``x``, ``y`` are stacks (restart x word x dim), ``TX``, ``TY`` stacks of maps,
    ``rngs`` one generator per restart (a restart's draws do not depend on the others). ``reciprocal``: batches
    from mutual matches only (one restart).
    """
    R, n, _ = x.shape
    rows = np.arange(R)[:, None]
    x_est, y_est = y @ _t(TY), x @ _t(TX)
    if matches is None:
        match_x = np.stack([nearest_rows(x[r], x_est[r]) for r in range(R)])
        match_y = np.stack([nearest_rows(y[r], y_est[r]) for r in range(R)])
    else:
        match_x, match_y = matches
    rec_x = ((x - x_est[rows, match_x]) ** 2).sum(axis=2).mean(axis=1)
    rec_y = ((y - y_est[rows, match_y]) ** 2).sum(axis=2).mean(axis=1)
    mutual_x = match_y[rows, match_x] == np.arange(n)  # sources whose match matches them back
    mutual_y = match_x[rows, match_y] == np.arange(n)
    if reciprocal:
        if R != 1:
            raise ValueError("reciprocal batches are drawn for one restart at a time")
        mx, my = np.flatnonzero(mutual_x[0]), np.flatnonzero(mutual_y[0])
        order_x, order_y = mx[rngs[0].permutation(len(mx))][None], my[rngs[0].permutation(len(my))][None]
        n_batches = min(len(mx), len(my)) // batch_size
    else:
        orders = [(g.permutation(n), g.permutation(n)) for g in rngs]
        order_x, order_y = np.stack([o[0] for o in orders]), np.stack([o[1] for o in orders])
        n_batches = n // batch_size
    y_of_x, x_of_y = y[rows, match_x], x[rows, match_y]
    opt_x, opt_y = Adam(lr, weight_decay=weight_decay), Adam(lr, weight_decay=weight_decay)
    loss = np.zeros(R)
    for b in range(n_batches):
        ix, iy = order_x[:, b * batch_size : (b + 1) * batch_size], order_y[:, b * batch_size : (b + 1) * batch_size]
        xb, yb = x[rows, ix], y[rows, iy]
        g_tx, loss_x = _match_grad(xb, y_of_x[rows, ix], TX)
        g_ty, loss_y = _match_grad(yb, x_of_y[rows, iy], TY)
        cx_tx, cx_ty = _cycle_grads(xb, TX, TY)
        cy_ty, cy_tx = _cycle_grads(yb, TY, TX)
        loss += loss_x + loss_y
        TX -= opt_x.step(g_tx + cycle_weight * (cx_tx + cy_tx))
        TY -= opt_y.step(g_ty + cycle_weight * (cx_ty + cy_ty))
    return EpochResult(
        match_x,
        match_y,
        np.minimum(rec_x, rec_y),
        np.minimum(mutual_x.sum(axis=1), mutual_y.sum(axis=1)),
        loss / max(n_batches, 1),
    )


class ICP(Mapper):
    """Cycle-consistent iterative closest point (``icp``), fully unsupervised.

    Parameters
    ----------
    n_words : most frequent words for the restarts and the full-dimension training (``n_init_ex``, 5000).
    n_refine_words : most frequent words for the mutual-pair fine-tuning (``n_ft_ex``, 7500).
    n_components : PCA dimensions of the restarts (``n_pca``, 25).  n_restarts : random restarts (``n_icp_runs``, 100).
    init_epochs, train_epochs, refine_epochs : epochs of the restarts, the full-dimension training and the
        fine-tuning (100, 50, 50).
    lr, batch_size, cycle_weight, weight_decay : Adam's learning rate (0.01), batch size (128), cycle-loss weight
        (``cyc_k``, 0.01) and the constant added to gradients (1e-5), as in ``ICPTrainer.train_icp``.
    seed : random seed of the restarts' signs and batch orders (deterministic for a given seed).
    verbose : report every restart and every refinement epoch on stderr.

    Attributes
    ----------
    W_src_ : ``TX^T``.  W_tgt_ : identity.  TX_, TY_ : the two maps.  restarts_ : (reconstruction error, mutual
    pairs) of every restart.  best_restart_ : the chosen one.  n_mutual_ : mutual pairs at the last epoch.
    history_ : one dict per refinement epoch.

    References
    ----------
    Hoshen, Wolf (2018), Non-Adversarial Unsupervised Word Translation, EMNLP.
    """

    def __init__(
        self,
        n_words: int = 5000,
        n_refine_words: int = 7500,
        n_components: int = 25,
        n_restarts: int = 100,
        init_epochs: int = 100,
        train_epochs: int = 50,
        refine_epochs: int = 50,
        lr: float = 1e-2,
        batch_size: int = 128,
        cycle_weight: float = 1e-2,
        weight_decay: float = 1e-5,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.n_words = n_words
        self.n_refine_words = n_refine_words
        self.n_components = n_components
        self.n_restarts = n_restarts
        self.init_epochs = init_epochs
        self.train_epochs = train_epochs
        self.refine_epochs = refine_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.cycle_weight = cycle_weight
        self.weight_decay = weight_decay
        self.seed = seed
        self.verbose = verbose

    def _check_params(self, n: int, dim: int) -> None:
        for name in ("n_words", "n_refine_words", "n_components", "n_restarts", "batch_size"):
            if getattr(self, name) < 1:
                raise XlingError(f"{name} must be at least 1, found {getattr(self, name)}")
        if self.init_epochs < 1:
            raise XlingError(f"init_epochs must be at least 1, found {self.init_epochs}")
        for name in ("train_epochs", "refine_epochs"):
            if getattr(self, name) < 0:
                raise XlingError(f"{name} must be at least 0, found {getattr(self, name)}")
        if self.n_components > dim:
            raise XlingError(f"n_components must be at most the dimension {dim}, found {self.n_components}")
        if min(self.n_words, n) < self.batch_size:
            raise XlingError(f"ICP needs at least batch_size={self.batch_size} words per language, found {n}")

    def fit(self, X: Any, Z: Any, pairs: Any = None) -> ICP:
        """Restarts in PCA space, then full-dimension training and mutual-pair fine-tuning."""
        Xn, Zn = self._inputs(X, Z)
        check_same_dim(Xn, Zn, "icp")
        self._check_params(min(len(Xn), len(Zn)), Xn.shape[1])
        n = min(self.n_words, len(Xn), len(Zn))
        n_ft = min(self.n_refine_words, len(Xn), len(Zn))
        opt = dict(
            lr=self.lr, batch_size=self.batch_size, cycle_weight=self.cycle_weight, weight_decay=self.weight_decay
        )
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(self.n_restarts + 1)]
        self.history_: list[dict[str, float]] = []
        with IterationLog("icp", self.verbose) as log:
            # STEPS 1-2: restarts in PCA space, each with its own component signs; the lowest reconstruction wins.
            # Restarts run in groups (one stack of arrays) to share the per-batch work of Python and numpy.
            px, py = pca_start(Xn[:n], self.n_components), pca_start(Zn[:n], self.n_components)
            group = max(1, min(self.n_restarts, RESTART_BYTES // (4 * n * self.n_components)))
            rec, mutual, matches = np.empty(self.n_restarts), np.empty(self.n_restarts, dtype=np.int64), {}
            for first in range(0, self.n_restarts, group):
                ids = range(first, min(first + group, self.n_restarts))
                signs = [
                    (rngs[r].choice(SIGNS, size=self.n_components), rngs[r].choice(SIGNS, size=self.n_components))
                    for r in ids
                ]
                result = self._restarts(
                    np.stack([px * sx for sx, _ in signs]),
                    np.stack([py * sy for _, sy in signs]),
                    [rngs[r] for r in ids],
                    opt,
                )
                rec[ids.start : ids.stop], mutual[ids.start : ids.stop] = result.rec, result.n_mutual
                best = int(np.argmin(rec[: ids.stop]))
                if best in ids:
                    keep = slice(best - first, best - first + 1)
                    matches = (result.match_x[keep], result.match_y[keep])
                log.note(
                    f"restarts {ids.stop}/{self.n_restarts}: best reconstruction {rec[best]:.4f} "
                    f"(restart {best + 1}, {mutual[best]} mutual pairs)"
                )
            self.restarts_ = [(float(a), int(b)) for a, b in zip(rec, mutual)]
            self.best_restart_ = int(np.argmin(rec))
            # STEP 4: full dimension from the best restart's matches; STEP 5: fine-tuning on mutual pairs
            TX, TY = np.eye(Xn.shape[1], dtype=np.float32)[None], np.eye(Xn.shape[1], dtype=np.float32)[None]
            for stage, words, epochs, reciprocal in (
                ("train", n, self.train_epochs, False),
                ("refine", n_ft, self.refine_epochs, True),
            ):
                for epoch in range(epochs):
                    result = icp_epoch(
                        Xn[None, :words],
                        Zn[None, :words],
                        TX,
                        TY,
                        rngs[-1:],
                        reciprocal=reciprocal,
                        matches=matches,
                        **opt,
                    )
                    matches = None
                    self.history_.append(
                        {
                            "stage": stage,
                            "epoch": epoch,
                            "rec": float(result.rec[0]),
                            "mutual": int(result.n_mutual[0]),
                            "loss": float(result.loss[0]),
                        }
                    )
                    log.update(
                        len(self.history_),
                        stage=stage,
                        reconstruction=float(result.rec[0]),
                        mutual_pairs=int(result.n_mutual[0]),
                        loss=float(result.loss[0]),
                    )
        self.TX_, self.TY_ = TX[0], TY[0]
        self.W_src_ = np.ascontiguousarray(TX[0].T)
        self.W_tgt_ = np.eye(Zn.shape[1], dtype=np.float32)
        self.n_mutual_ = self.history_[-1]["mutual"] if self.history_ else int(mutual[self.best_restart_])
        self.n_iter_ = len(self.history_)
        return self

    def _restarts(
        self, x: np.ndarray, y: np.ndarray, rngs: list[np.random.Generator], opt: dict[str, float]
    ) -> EpochResult:
        """STEP 2: a group of restarts, ICP from ``TX = TY = I`` for ``init_epochs``; their last epoch's results."""
        TX = np.repeat(np.eye(x.shape[2], dtype=np.float32)[None], len(x), axis=0)
        TY = TX.copy()
        for _ in range(self.init_epochs):
            result = icp_epoch(x, y, TX, TY, rngs, **opt)
        return result
