"""MUSE: adversarial training, unsupervised model selection, Procrustes refinement (Conneau et al., ICLR 2018),
as ``facebookresearch/MUSE``'s ``unsupervised.py`` runs it with its defaults; on current torch, CPU or GPU.

1. Adversarial training (``adversarial_epoch``): a linear map ``W`` (identity at start) and a discriminator
   (``discriminator``: input dropout 0.1, two hidden layers of 2048 with LeakyReLU(0.2), a sigmoid) that tells
   mapped source words from target words, both drawn uniformly from the ``dis_most_frequent`` (75K) most frequent
   words. Per step: ``dis_steps`` (5) discriminator updates on 32 + 32 words (labels smoothed to 0.9 / 0.1), then
   one update of ``W`` to fool it, followed by ``orthogonalize`` (``W <- (1 + b) W - b W W^T W``, b = 0.001).
   SGD with learning rate 0.1 on both; ``epoch_size`` (1M) words per epoch, ``n_epochs`` (5).
2. Model selection (``mean_cosine``): after each epoch, the mean cosine between each of the 10K most frequent
   source words and its CSLS translation, over the pairs whose target is among the 10K most frequent too. The best
   map so far is kept. The map's learning rate decays by 0.98 per epoch and is halved each time the criterion
   falls below its best, from the second such time on; training stops when it drops below ``min_lr``.
3. Refinement (``refinement_dictionary``, then Procrustes), ``n_refinement`` (5) times from the best map: a
   dictionary of CSLS translations of the 15K most frequent source words whose target is among the 15K most
   frequent, then orthogonal Procrustes on it; the criterion keeps choosing the best map, which is the result.

Only what the algorithm needs is computed. MUSE also evaluates, after each epoch and refinement step, word
translation on a test dictionary (monitoring with gold data an unsupervised method must not select on), the
criterion with plain NN and in the T2S direction (unused), and the discriminator over the whole vocabulary; its
CSLS penalties are computed over the whole vocabulary with a brute-force k-NN each time. Here the criterion and the
dictionaries use ``xling.cle.retrieval.nearest`` (exact CSLS, pruned), and the mapping step sends only the 32
mapped source words through the discriminator (the target half of its batch does not depend on ``W``, and the
discriminator is in eval mode there, so its loss gradient is the same), without computing the discriminator's
weight gradients, which MUSE computes and then discards.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from xling.cle.mappers.base import Mapper, check_same_dim
from xling.cle.mappers.iterlog import IterationLog
from xling.cle.mappers.procrustes import procrustes_map
from xling.cle.normalize import check_steps, unit_length
from xling.cle.retrieval import nearest
from xling.errors import XlingError


def discriminator(
    dim: int, hidden: int = 2048, layers: int = 2, dropout: float = 0.0, input_dropout: float = 0.1
) -> Any:
    """MUSE's discriminator: input dropout, ``layers`` x (Linear, LeakyReLU(0.2), Dropout), Linear to 1, sigmoid."""
    from torch import nn

    mods: list[nn.Module] = [nn.Dropout(input_dropout)]
    for i in range(layers + 1):
        n_in = dim if i == 0 else hidden
        n_out = 1 if i == layers else hidden
        mods.append(nn.Linear(n_in, n_out))
        if i < layers:
            mods += [nn.LeakyReLU(0.2), nn.Dropout(dropout)]
    mods.append(nn.Sigmoid())
    return nn.Sequential(*mods)


def orthogonalize(W: Any, beta: float) -> None:
    """STEP 1, after each map update: ``W <- (1 + beta) W - beta W W^T W`` (in place), keeps ``W`` near orthogonal."""
    if beta > 0:
        W.copy_((1 + beta) * W - beta * W.mm(W.t().mm(W)))


def csls_translations(Xm: np.ndarray, Zu: np.ndarray, n_queries: int, max_rank: int, csls_k: int) -> np.ndarray:
    """CSLS translation of each of the ``n_queries`` first rows of ``Xm``, kept when the target's row is at most
    ``max_rank`` (MUSE's ``get_candidates``, S2T, ``dico_max_rank``); unit rows; the CSLS penalty of every target
    is taken over all rows of ``Xm``. Returns ``(source row, target row)`` pairs."""
    n = min(n_queries, len(Xm))
    top = nearest(Xm[:n], Zu, 1, "csls", sources=Xm, csls_k=csls_k)[0][:, 0]
    keep = top <= max_rank
    return np.c_[np.flatnonzero(keep), top[keep]].astype(np.int64)


def mean_cosine(Xm: np.ndarray, Zu: np.ndarray, n_words: int = 10000, csls_k: int = 10) -> float:
    """STEP 2: MUSE's validation criterion ``mean_cosine-csls_knn_10-S2T-10000`` (unit rows of both spaces)."""
    pairs = csls_translations(Xm, Zu, n_words, n_words, csls_k)
    if len(pairs) == 0:
        return float("-inf")
    return float(np.einsum("ij,ij->i", Xm[pairs[:, 0]], Zu[pairs[:, 1]]).mean(dtype=np.float64))


def refinement_dictionary(Xm: np.ndarray, Zu: np.ndarray, max_rank: int = 15000, csls_k: int = 10) -> np.ndarray:
    """STEP 3: MUSE's ``build_dictionary`` with its defaults (``csls_knn_10``, ``S2T``, ``dico_max_rank`` 15000)."""
    return csls_translations(Xm, Zu, max_rank, max_rank, csls_k)


def duration(seconds: float) -> str:
    """``2 h 05 min``, ``14 min``, ``45 s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds:.0f} s"


class MUSE(Mapper):
    """MUSE (``muse``): adversarial training, mean-cosine model selection and Procrustes refinement; unsupervised.

    Parameters
    ----------
    n_epochs, epoch_size, batch_size : adversarial epochs (5), words per epoch (1,000,000), batch (32).
    dis_steps : discriminator updates per map update (5).  dis_hidden, dis_layers : 2048, 2.
    dis_dropout, dis_input_dropout : 0.0, 0.1.  dis_smooth : label smoothing (0.1).
    dis_most_frequent : both languages' words the discriminator sees (75000; 0: all).
    map_lr, dis_lr : SGD learning rates (0.1, 0.1).  lr_decay, min_lr, lr_shrink : 0.98, 1e-6, 0.5.
    map_beta : orthogonalisation (0.001).  n_refinement : Procrustes refinement rounds (5).
    dico_max_rank : refinement dictionary from the 15000 most frequent words.  criterion_words : 10000.
    csls_k : CSLS neighbourhood (10).  normalize : steps applied to both spaces first (none, as MUSE's default).
    device : ``"auto"`` (a GPU when torch sees one, else CPU), ``"cpu"`` or ``"cuda"``.
    seed : seeds the discriminator's initialisation, the batches and the dropout (deterministic on CPU).
    n_runs : independent runs (seeds ``seed``, ``seed + 1``, …), each adversarial training and refinement; the map
        with the best criterion over all runs is kept (1, as MUSE). Whether adversarial training finds the map
        depends on the seed; the criterion tells the runs that did apart without a dictionary.
    log_every : report the discriminator loss every this many steps (500, as MUSE).
    eta_steps : after this many steps of the first epoch, report the time per step and the expected time of the
        whole adversarial training (300; 0: never). At MUSE's defaults on a CPU that is hours: the line says so early.
    verbose : report progress on stderr.

    Attributes
    ----------
    W_src_ : the selected map (``x @ W_src_``; the transpose of MUSE's ``W``).  W_tgt_ : identity.
    criterion_ : the best mean cosine.  selected_ : where the selected map comes from (``"epoch 3"``,
    ``"refinement 2"``).  history_ : one dict per epoch and refinement round.  n_iter_ : epochs + rounds run.
    device_ : where it trained (``"cpu"``, ``"cuda"``).  step_seconds_ : seconds per adversarial step, measured over
    the first ``eta_steps`` steps (None when fewer were run).  expected_seconds_ : the adversarial training's
    expected time from that measurement.

    References
    ----------
    Conneau, Lample, Ranzato, Denoyer, Jégou (2018), Word Translation Without Parallel Data, ICLR.
    """

    def __init__(
        self,
        n_epochs: int = 5,
        epoch_size: int = 1_000_000,
        batch_size: int = 32,
        dis_steps: int = 5,
        dis_hidden: int = 2048,
        dis_layers: int = 2,
        dis_dropout: float = 0.0,
        dis_input_dropout: float = 0.1,
        dis_smooth: float = 0.1,
        dis_most_frequent: int = 75000,
        map_lr: float = 0.1,
        dis_lr: float = 0.1,
        lr_decay: float = 0.98,
        min_lr: float = 1e-6,
        lr_shrink: float = 0.5,
        map_beta: float = 0.001,
        n_refinement: int = 5,
        dico_max_rank: int = 15000,
        criterion_words: int = 10000,
        csls_k: int = 10,
        normalize: Sequence[str] = (),
        device: str = "auto",
        seed: int = 0,
        n_runs: int = 1,
        log_every: int = 500,
        eta_steps: int = 300,
        verbose: bool = False,
    ) -> None:
        self.n_epochs = n_epochs
        self.epoch_size = epoch_size
        self.batch_size = batch_size
        self.dis_steps = dis_steps
        self.dis_hidden = dis_hidden
        self.dis_layers = dis_layers
        self.dis_dropout = dis_dropout
        self.dis_input_dropout = dis_input_dropout
        self.dis_smooth = dis_smooth
        self.dis_most_frequent = dis_most_frequent
        self.map_lr = map_lr
        self.dis_lr = dis_lr
        self.lr_decay = lr_decay
        self.min_lr = min_lr
        self.lr_shrink = lr_shrink
        self.map_beta = map_beta
        self.n_refinement = n_refinement
        self.dico_max_rank = dico_max_rank
        self.criterion_words = criterion_words
        self.csls_k = csls_k
        self.normalize = normalize
        self.device = device
        self.seed = seed
        self.n_runs = n_runs
        self.log_every = log_every
        self.eta_steps = eta_steps
        self.verbose = verbose

    def _check_params(self) -> None:
        for name in (
            "epoch_size",
            "batch_size",
            "dis_steps",
            "dis_hidden",
            "dis_layers",
            "dico_max_rank",
            "criterion_words",
            "csls_k",
            "n_runs",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise XlingError(f"{name} must be at least 1, found {getattr(self, name)}")
        for name in ("n_epochs", "n_refinement", "dis_most_frequent", "map_beta", "min_lr", "eta_steps"):
            if getattr(self, name) < 0:
                raise XlingError(f"{name} must be at least 0, found {getattr(self, name)}")
        for name in ("dis_dropout", "dis_input_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise XlingError(f"{name} must be in [0, 1), found {getattr(self, name)}")
        if not 0 <= self.dis_smooth < 0.5:
            raise XlingError(f"dis_smooth must be in [0, 0.5), found {self.dis_smooth}")
        if not 0 < self.lr_shrink <= 1:
            raise XlingError(f"lr_shrink must be in (0, 1], found {self.lr_shrink}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise XlingError(f"device: expected 'auto', 'cpu' or 'cuda', found {self.device!r}")
        check_steps(self.normalize)

    def _device(self) -> Any:
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise XlingError("device='cuda' but torch sees no GPU")
        return torch.device(
            "cuda" if self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available()) else "cpu"
        )

    def fit(self, X: Any, Z: Any, pairs: Any = None) -> MUSE:
        """Adversarial training with model selection, then Procrustes refinement rounds."""
        import torch

        self._check_params()
        Xn, Zn = self._inputs(X, Z)
        check_same_dim(Xn, Zn, "muse")
        dev = self._device()
        self.device_ = dev.type
        self.step_seconds_: float | None = None
        self.expected_seconds_: float | None = None
        Zu = unit_length(Zn)
        self.history_: list[dict[str, Any]] = []
        best = {"criterion": float("-inf"), "W": np.eye(Xn.shape[1], dtype=np.float32), "at": "identity"}
        with (
            IterationLog("muse", self.verbose) as log,
            torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []),
        ):
            for run in range(self.n_runs):
                start = len(self.history_)
                self._run(Xn, Zn, Zu, dev, run, best, log)
                if self.n_runs > 1:
                    for entry in self.history_[start:]:
                        entry["run"] = run + 1
        self.W_src_ = best["W"]
        self.W_tgt_ = np.eye(Zn.shape[1], dtype=np.float32)
        self.criterion_, self.selected_ = float(best["criterion"]), best["at"]
        self.n_iter_ = len(self.history_)
        return self

    def _run(
        self, Xn: np.ndarray, Zn: np.ndarray, Zu: np.ndarray, dev: Any, run: int, best: dict, log: IterationLog
    ) -> None:
        """One run (seed ``seed + run``): STEP 1 and 3 from this run's best map; ``best`` keeps the best of all runs."""
        import torch

        tag = f"run {run + 1}, " if self.n_runs > 1 else ""
        mine = {"criterion": float("-inf"), "W": np.eye(Xn.shape[1], dtype=np.float32)}

        def select(W_rows: np.ndarray, at: str) -> float:
            """STEP 2: the criterion of a map; keep it when it is the best so far (of this run, of all runs)."""
            criterion = mean_cosine(unit_length(Xn @ W_rows), Zu, self.criterion_words, self.csls_k)
            if criterion > mine["criterion"]:
                mine.update(criterion=criterion, W=W_rows.copy())
            if criterion > best["criterion"]:
                best.update(criterion=criterion, W=W_rows.copy(), at=tag + at)
            return criterion

        torch.manual_seed(self.seed + run)
        # STEP 1 (with STEP 2 after each epoch): adversarial training
        if self.n_epochs > 0:
            self._adversarial(Xn, Zn, dev, select, log)
        # STEP 3: refinement rounds, from this run's best map so far, each from the previous round's map
        W_rows = mine["W"]
        for r in range(self.n_refinement):
            dico = refinement_dictionary(unit_length(Xn @ W_rows), Zu, self.dico_max_rank, self.csls_k)
            if len(dico) == 0:
                log.note(f"{tag}refinement {r + 1}: empty dictionary, stopping")
                break
            W_rows = procrustes_map(Xn[dico[:, 0]], Zn[dico[:, 1]])
            criterion = select(W_rows, f"refinement {r + 1}")
            self.history_.append(
                {"stage": "refinement", "round": r + 1, "dictionary": len(dico), "criterion": criterion}
            )
            log.note(
                f"{tag}refinement {r + 1}/{self.n_refinement}: dictionary {len(dico)} pairs, mean cosine "
                f"{criterion:.4f} (best {best['criterion']:.4f}, {best['at']})"
            )

    def _report_eta(self, elapsed: float, n_steps: int, dev: Any, log: IterationLog) -> None:
        """The time per adversarial step so far, and what the whole adversarial training will take at that pace."""
        self.step_seconds_ = elapsed / self.eta_steps
        total = n_steps * self.n_epochs * self.n_runs
        self.expected_seconds_ = self.step_seconds_ * total
        log.note(
            f"{self.eta_steps} steps in {elapsed:.1f} s ({1000 * self.step_seconds_:.0f} ms a step on {dev.type}): "
            f"adversarial training ({self.n_runs} run(s) x {self.n_epochs} epoch(s) x {n_steps} steps) takes about "
            f"{duration(self.expected_seconds_)}, plus the criterion after each epoch and {self.n_refinement} "
            "refinement round(s) per run; epoch_size or n_epochs shorten it"
        )

    def _adversarial(self, Xn: np.ndarray, Zn: np.ndarray, dev: Any, select: Any, log: IterationLog) -> None:
        """STEP 1: adversarial epochs, each followed by model selection and the learning-rate schedule."""
        import torch
        from torch.nn import functional as F

        mf = self.dis_most_frequent or max(len(Xn), len(Zn))
        src = torch.from_numpy(Xn[:mf]).to(dev)
        tgt = torch.from_numpy(Zn[:mf]).to(dev)
        d, bs = Xn.shape[1], self.batch_size
        W = torch.eye(d, device=dev)  # MUSE's nn.Linear weight: mapped = x @ W^T
        dis = discriminator(d, self.dis_hidden, self.dis_layers, self.dis_dropout, self.dis_input_dropout).to(dev)
        dis_opt = torch.optim.SGD(dis.parameters(), lr=self.dis_lr)
        labels = torch.full((2 * bs,), self.dis_smooth, device=dev)
        labels[:bs] = 1 - self.dis_smooth  # mapped sources 0.9, targets 0.1
        fool = 1 - labels[:bs]  # the map wants mapped sources judged as targets
        map_lr, best_so_far, decrease_lr = self.map_lr, float("-inf"), False
        n_steps = len(range(0, self.epoch_size, bs))
        started = time.perf_counter()
        for epoch in range(self.n_epochs):
            losses = []
            for step in range(n_steps):
                if epoch == 0 and step == self.eta_steps and self.step_seconds_ is None and self.eta_steps:
                    self._report_eta(time.perf_counter() - started, n_steps, dev, log)
                # discriminator steps (the map is fixed)
                dis.train()
                for _ in range(self.dis_steps):
                    src_ids = torch.randint(len(src), (bs,), device=dev)
                    tgt_ids = torch.randint(len(tgt), (bs,), device=dev)
                    with torch.no_grad():
                        x = torch.cat([src[src_ids] @ W.t(), tgt[tgt_ids]])
                    loss = F.binary_cross_entropy(dis(x).view(-1), labels)
                    dis_opt.zero_grad(set_to_none=True)
                    loss.backward()
                    dis_opt.step()
                    losses.append(loss.item())
                # map step: only the mapped sources carry a gradient to W; no discriminator weight gradients
                dis.eval()
                dis.requires_grad_(False)
                src_ids = torch.randint(len(src), (bs,), device=dev)
                W.requires_grad_(True)
                preds = dis(src[src_ids] @ W.t()).view(-1)
                fool_loss = F.binary_cross_entropy(preds, fool, reduction="sum") / (2 * bs)
                (grad,) = torch.autograd.grad(fool_loss, W)
                W.requires_grad_(False)
                dis.requires_grad_(True)
                with torch.no_grad():
                    W -= map_lr * grad
                    orthogonalize(W, self.map_beta)
                if (step + 1) % self.log_every == 0 or step + 1 == n_steps:
                    log.note(
                        f"epoch {epoch + 1}/{self.n_epochs}, step {step + 1}/{n_steps}, "
                        f"discriminator loss {np.mean(losses):.4f}"
                    )
                    losses = []
            # STEP 2: model selection, then the learning-rate schedule (MUSE's update_lr)
            criterion = select(W.t().cpu().numpy().copy(), f"epoch {epoch + 1}")
            self.history_.append({"stage": "adversarial", "epoch": epoch + 1, "criterion": criterion, "map_lr": map_lr})
            log.note(f"epoch {epoch + 1}/{self.n_epochs}: mean cosine {criterion:.4f}, map lr {map_lr:.4g}")
            map_lr = max(self.min_lr, map_lr * self.lr_decay)
            if criterion < best_so_far:
                if decrease_lr:
                    map_lr *= self.lr_shrink
                decrease_lr = True
            best_so_far = max(best_so_far, criterion)
            if map_lr < self.min_lr:
                log.note(f"map learning rate {map_lr:.3g} < {self.min_lr:g}: stopping")
                break
