"""The downstream models, in torch, over *frozen* word embeddings (the paper's zero-shot transfer setting).

Every model is an estimator: the constructor stores its parameters, ``fit(texts, labels, vectors)`` trains on
token-row arrays of the source language with the source vectors and returns ``self``, ``predict(texts, vectors)``
labels texts of the target language with the target vectors. Only the embedding table changes between the two: the
learned layers never see a target word during training.

- ``CNNClassifier``: the CLDC classifier. The paper's code is not public; its defaults follow the CNN text
  classifier of the first author's own released code (``codogogo/topfish``: ``convolution/cnn.py``, ``trainer.py``,
  ``nlp.py``): one convolution layer with 16, 32 and 16 filters of widths 3, 4 and 5 over the frozen embeddings,
  ReLU, 1-max pooling over time, dropout 0.5 on the pooled features, a softmax layer with L2 0.001 on its weights,
  RMSProp at 1e-4, batches of 50, at most 10 epochs, stopping when the training loss fell by less than 0.001 over
  the last 5 epochs; documents padded to the longest training document.
- ``MeanClassifier``: a fast baseline, L2-regularised multinomial logistic regression on the mean word vector.
- ``ESIMClassifier``: the NLI model, ESIM (Chen et al., 2017) with the embedding layer frozen: BiLSTM encoding,
  soft alignment, enhancement ``[a; ã; a - ã; a * ã]``, a ReLU projection, a BiLSTM composition, average and max
  pooling, a tanh MLP; ESIM's published settings (hidden 300, dropout 0.5, Adam at 4e-4, batches of 32, gradients
  clipped at norm 10); the epoch with the best source-language validation accuracy is kept when validation pairs
  are given.

Runs are deterministic on CPU for a seed: the seed fixes the initialisation, the batch order and dropout (torch's
global generator is forked, so the caller's state is left alone).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from xling.errors import XlingError

#: Called once per epoch with {"model", "epoch", "epochs", "loss", "seconds"} (+ "dev_accuracy" for ESIM).
Progress = Callable[[dict], None]


def _table(texts: Sequence[np.ndarray], vectors: np.ndarray) -> tuple[list[np.ndarray], torch.Tensor]:
    """Rows used by ``texts`` gathered into a small table whose row 0 is the zero padding vector; texts re-indexed."""
    used = np.unique(np.concatenate([np.asarray(t, dtype=np.int64) for t in texts] or [np.zeros(0, np.int64)]))
    table = np.zeros((len(used) + 1, vectors.shape[1]), dtype=np.float32)
    table[1:] = vectors[used]
    local = [np.searchsorted(used, t) + 1 for t in texts]
    return local, torch.from_numpy(table)


def _pad(texts: Sequence[np.ndarray], length: int) -> torch.Tensor:
    """Local ids right-padded with 0 (truncated) to ``length``: a (n, length) long tensor."""
    out = np.zeros((len(texts), length), dtype=np.int64)
    for i, t in enumerate(texts):
        t = t[:length]
        out[i, : len(t)] = t
    return torch.from_numpy(out)


def _check_vectors(vectors: np.ndarray, texts: Sequence[np.ndarray]) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise XlingError(f"vectors must be a (words, dim) matrix, found shape {vectors.shape}")
    top = max((int(t.max()) for t in texts if len(t)), default=-1)
    if top >= len(vectors):
        raise XlingError(f"token row {top} is outside the {len(vectors)} vectors")
    return vectors


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --- CNN (CLDC) ------------------------------------------------------------------------------------------------------


class KimCNN(nn.Module):
    """Convolutions of several widths over a frozen embedding table, ReLU, 1-max pooling, dropout, softmax layer."""

    def __init__(self, table: torch.Tensor, filters: Sequence[tuple[int, int]], n_classes: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(table, freeze=True, padding_idx=0)
        dim = table.shape[1]
        self.convs = nn.ModuleList(nn.Conv1d(dim, n, width) for width, n in filters)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(sum(n for _, n in filters), n_classes)
        for conv in self.convs:  # topfish: truncated normal (sd 0.1) filters, biases 0.1; xavier softmax weights
            nn.init.trunc_normal_(conv.weight, std=0.1, a=-0.2, b=0.2)
            nn.init.constant_(conv.bias, 0.1)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.constant_(self.out.bias, 0.1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids).transpose(1, 2)  # (batch, dim, length)
        pooled = [torch.relu(conv(x)).amax(dim=2) for conv in self.convs]
        return self.out(self.dropout(torch.cat(pooled, dim=1)))


class CNNClassifier:
    """Kim-style CNN over frozen embeddings, with the training defaults of Glavaš's ``topfish`` CNN (see module)."""

    #: What the parameters default to and why (recorded in every result).
    CHOICES = {
        "architecture": (
            "1 conv layer, widths 3/4/5 with 16/32/16 filters, ReLU, 1-max pooling, dropout 0.5, softmax layer (L2 "
            "0.001) -- Glavas's released CNN (codogogo/topfish); the paper's own CLDC code is not public"
        ),
        "training": (
            "RMSProp lr 1e-4, batch 50, <= 10 epochs, stop when the loss fell < 0.001 over 5 epochs (topfish trainer "
            "defaults)"
        ),
        "tokens": (
            "regex words; looked up as written then lowercased; tokens without a vector dropped; zero padding to the "
            "longest training document (topfish: a random <PAD/> vector, ASCII-only cleaning)"
        ),
        "ted_metric": (
            "TED CLDC: one binary classifier per topic; micro_f1 (the paper's metric) pools every topic's positive-"
            "class decisions (multi-label micro-averaged F1); accuracy, macro_f1 and f1_positive are averaged over "
            "topics"
        ),
    }

    def __init__(
        self,
        filters: Sequence[tuple[int, int]] = ((3, 16), (4, 32), (5, 16)),
        dropout: float = 0.5,
        optimizer: str = "rmsprop",
        lr: float = 1e-4,
        l2: float = 1e-3,
        batch_size: int = 50,
        epochs: int = 10,
        stop_window: int = 5,
        stop_delta: float = 1e-3,
        max_len: int | None = None,
        seed: int = 0,
        device: str = "cpu",
        progress: Progress | None = None,
    ):
        self.filters = filters
        self.dropout = dropout
        self.optimizer = optimizer
        self.lr = lr
        self.l2 = l2
        self.batch_size = batch_size
        self.epochs = epochs
        self.stop_window = stop_window
        self.stop_delta = stop_delta
        self.max_len = max_len
        self.seed = seed
        self.device = device
        self.progress = progress

    def fit(self, texts: Sequence[np.ndarray], labels: Sequence[str], vectors: np.ndarray) -> CNNClassifier:
        """Train on token-row arrays of the source language, embedded (frozen) with ``vectors``."""
        vectors = _check_vectors(vectors, texts)
        self.classes_ = sorted(set(labels))
        y = torch.tensor([self.classes_.index(label) for label in labels])
        widest = max(w for w, _ in self.filters)
        longest = max((len(t) for t in texts), default=0)
        self.length_ = max(widest, min(longest, self.max_len) if self.max_len else longest)
        local, table = _table(texts, vectors)
        x = _pad(local, self.length_)
        device = _device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = KimCNN(table, self.filters, len(self.classes_), self.dropout).to(device)
            opt = _optimizer(self.optimizer, model.parameters(), self.lr)
            rng = np.random.default_rng(self.seed)
            self.losses_: list[float] = []
            for epoch in range(1, self.epochs + 1):
                # one pass over the shuffled training set
                start, total = time.perf_counter(), 0.0
                model.train()
                for batch in np.array_split(rng.permutation(len(y)), max(1, -(-len(y) // self.batch_size))):
                    xb, yb = x[batch].to(device), y[batch].to(device)
                    loss = nn.functional.cross_entropy(model(xb), yb)
                    loss = loss + self.l2 * 0.5 * (model.out.weight.square().sum() + model.out.bias.square().sum())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(batch)
                self.losses_.append(total / len(y))
                if self.progress:
                    self.progress(
                        {
                            "model": "cnn",
                            "epoch": epoch,
                            "epochs": self.epochs,
                            "loss": self.losses_[-1],
                            "seconds": time.perf_counter() - start,
                        }
                    )
                # topfish's end condition: the loss fell by less than stop_delta over the last stop_window epochs
                if (
                    len(self.losses_) > self.stop_window
                    and self.losses_[-1 - self.stop_window] - self.losses_[-1] < self.stop_delta
                ):
                    break
        self.module_ = model.cpu().eval()
        self.epochs_run_ = len(self.losses_)
        return self

    def predict(self, texts: Sequence[np.ndarray], vectors: np.ndarray) -> list[str]:
        """Labels of (target-language) texts embedded with ``vectors``; texts longer than the longest training
        document are truncated, as topfish does."""
        vectors = _check_vectors(vectors, texts)
        local, table = _table(texts, vectors)
        x = _pad(local, self.length_)
        saved, self.module_.embed = self.module_.embed, nn.Embedding.from_pretrained(table, freeze=True, padding_idx=0)
        try:
            with torch.no_grad():
                pred = [
                    i
                    for s in range(0, len(x), self.batch_size)
                    for i in self.module_(x[s : s + self.batch_size]).argmax(1).tolist()
                ]
        finally:
            self.module_.embed = saved
        return [self.classes_[i] for i in pred]


def _optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "rmsprop":  # TF1's RMSPropOptimizer defaults: decay 0.9, epsilon 1e-10
        return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-10)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise XlingError(f"unknown optimizer {name!r}; expected rmsprop or adam")


# --- mean-embedding baseline (CLDC) ------------------------------------------------------------------------------


class MeanClassifier:
    """Multinomial logistic regression (L2 ``l2``) on each text's mean word vector; L-BFGS, full batch.

    A fast, convex, seed-free baseline: texts without a known word get the zero vector.
    """

    #: What the parameters default to and why (recorded in every result).
    CHOICES = {
        "model": (
            "L2-regularised (1e-4) multinomial logistic regression on mean word vectors (xling's baseline, not in the "
            "paper)"
        ),
    }

    def __init__(self, l2: float = 1e-4, max_iter: int = 500, progress: Progress | None = None):
        self.l2 = l2
        self.max_iter = max_iter
        self.progress = progress

    @staticmethod
    def _features(texts: Sequence[np.ndarray], vectors: np.ndarray) -> torch.Tensor:
        out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float64)
        for i, t in enumerate(texts):
            if len(t):
                out[i] = vectors[t].mean(axis=0)
        return torch.from_numpy(out)

    def fit(self, texts: Sequence[np.ndarray], labels: Sequence[str], vectors: np.ndarray) -> MeanClassifier:
        """Fit on the mean source vectors of the texts' tokens."""
        vectors = _check_vectors(vectors, texts)
        self.classes_ = sorted(set(labels))
        y = torch.tensor([self.classes_.index(label) for label in labels])
        x = self._features(texts, vectors)
        start = time.perf_counter()
        weight = torch.zeros((x.shape[1], len(self.classes_)), dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(len(self.classes_), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS(
            [weight, bias],
            max_iter=self.max_iter,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
        )

        def closure():
            opt.zero_grad()
            loss = nn.functional.cross_entropy(x @ weight + bias, y) + 0.5 * self.l2 * weight.square().sum()
            loss.backward()
            return loss

        loss = opt.step(closure)
        self.coef_, self.intercept_ = weight.detach(), bias.detach()
        self.loss_ = loss.item()
        if self.progress:
            self.progress(
                {"model": "mean", "epoch": 1, "epochs": 1, "loss": self.loss_, "seconds": time.perf_counter() - start}
            )
        return self

    def predict(self, texts: Sequence[np.ndarray], vectors: np.ndarray) -> list[str]:
        """Labels of texts from their mean (target) vectors."""
        vectors = _check_vectors(vectors, texts)
        scores = self._features(texts, vectors) @ self.coef_ + self.intercept_
        return [self.classes_[i] for i in scores.argmax(1).tolist()]


# --- ESIM (XNLI) -----------------------------------------------------------------------------------------------------


class ESIM(nn.Module):
    """ESIM (Chen et al., 2017) over a frozen embedding table (row 0 = padding)."""

    def __init__(self, table: torch.Tensor, hidden: int, n_classes: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(table, freeze=True, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.encode = nn.LSTM(table.shape[1], hidden, batch_first=True, bidirectional=True)
        self.project = nn.Sequential(nn.Linear(8 * hidden, hidden), nn.ReLU())
        self.compose = nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True)
        self.classify = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(8 * hidden, hidden),
            nn.Tanh(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    @staticmethod
    def _lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = lstm(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def forward(self, a_ids: torch.Tensor, b_ids: torch.Tensor) -> torch.Tensor:
        a_mask, b_mask = a_ids > 0, b_ids > 0
        a_len, b_len = a_mask.sum(1), b_mask.sum(1)
        # input encoding
        a = self._lstm(self.encode, self.dropout(self.embed(a_ids)), a_len)
        b = self._lstm(self.encode, self.dropout(self.embed(b_ids)), b_len)
        # local inference: soft alignment both ways, masked
        e = a @ b.transpose(1, 2)
        a_hat = torch.softmax(e.masked_fill(~b_mask[:, None, :], -1e9), dim=2) @ b
        b_hat = torch.softmax(e.transpose(1, 2).masked_fill(~a_mask[:, None, :], -1e9), dim=2) @ a
        m_a = torch.cat([a, a_hat, a - a_hat, a * a_hat], dim=2)
        m_b = torch.cat([b, b_hat, b - b_hat, b * b_hat], dim=2)
        # inference composition, then average and max pooling over the real positions
        v_a = self._lstm(self.compose, self.project(m_a), a_len)
        v_b = self._lstm(self.compose, self.project(m_b), b_len)
        pooled = [*_pools(v_a, a_mask), *_pools(v_b, b_mask)]
        return self.classify(torch.cat(pooled, dim=1))


def _pools(v: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m = mask[:, :, None].to(v.dtype)
    avg = (v * m).sum(1) / m.sum(1).clamp(min=1)
    top = v.masked_fill(~mask[:, :, None], -1e9).amax(1)
    return avg, torch.where(mask.any(1, keepdim=True), top, torch.zeros_like(top))


class ESIMClassifier:
    """ESIM over frozen embeddings, ESIM's published training settings (see module)."""

    #: What the parameters default to and why (recorded in every result).
    CHOICES = {
        "architecture": (
            "ESIM (Chen et al. 2017), embeddings frozen, hidden 300, dropout 0.5 -- the paper's NLI code is not public;"
            " ESIM's published settings"
        ),
        "training": (
            "Adam lr 4e-4, batch 32, gradient norm clip 10 (ESIM's published settings); 5 epochs (xling's choice: ESIM "
            "trains to early stopping); the best epoch on source-language validation pairs is kept when "
            "DIR/<src>/dev.tsv (or MultiNLI/XNLI dev) exists"
        ),
        "tokens": "regex words, looked up as written then lowercased, at most 100 tokens per sentence",
    }

    def __init__(
        self,
        hidden: int = 300,
        dropout: float = 0.5,
        lr: float = 4e-4,
        batch_size: int = 32,
        epochs: int = 5,
        clip: float = 10.0,
        max_len: int = 100,
        seed: int = 0,
        device: str = "cpu",
        progress: Progress | None = None,
    ):
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.clip = clip
        self.max_len = max_len
        self.seed = seed
        self.device = device
        self.progress = progress

    def _tensors(self, premises, hypotheses, vectors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded local ids of premises and hypotheses (at most ``max_len`` tokens) and their embedding table."""
        vectors = _check_vectors(vectors, list(premises) + list(hypotheses))
        local, table = _table(list(premises) + list(hypotheses), vectors)
        n = len(premises)
        width = [max(1, min(self.max_len, max((len(t) for t in part), default=1))) for part in (local[:n], local[n:])]
        return _pad(local[:n], width[0]), _pad(local[n:], width[1]), table

    def fit(
        self,
        premises: Sequence[np.ndarray],
        hypotheses: Sequence[np.ndarray],
        labels: Sequence[str],
        vectors: np.ndarray,
        dev: tuple[Sequence[np.ndarray], Sequence[np.ndarray], Sequence[str]] | None = None,
    ) -> ESIMClassifier:
        """Train on source-language pairs; ``dev`` = (premises, hypotheses, labels) in the source language."""
        self.classes_ = sorted(set(labels))
        y = torch.tensor([self.classes_.index(label) for label in labels])
        a, b, table = self._tensors(premises, hypotheses, vectors)
        dev_tensors = self._tensors(dev[0], dev[1], vectors) if dev is not None else None
        device = _device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = ESIM(table, self.hidden, len(self.classes_), self.dropout).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=self.lr)
            rng = np.random.default_rng(self.seed)
            self.losses_, self.dev_accuracy_ = [], []
            best, best_state = -1.0, None
            for epoch in range(1, self.epochs + 1):
                # one pass over the shuffled training pairs
                start, total = time.perf_counter(), 0.0
                model.train()
                for batch in np.array_split(rng.permutation(len(y)), max(1, -(-len(y) // self.batch_size))):
                    logits = model(a[batch].to(device), b[batch].to(device))
                    loss = nn.functional.cross_entropy(logits, y[batch].to(device))
                    opt.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), self.clip)
                    opt.step()
                    total += loss.item() * len(batch)
                self.losses_.append(total / len(y))
                log = {"model": "esim", "epoch": epoch, "epochs": self.epochs, "loss": self.losses_[-1]}
                # keep the epoch with the best source-language validation accuracy
                if dev_tensors is not None:
                    pred = _esim_predict(model, *dev_tensors)
                    acc = float(np.mean([self.classes_[i] == g for i, g in zip(pred, dev[2])]))
                    self.dev_accuracy_.append(acc)
                    log["dev_accuracy"] = acc
                    if acc > best:
                        best, best_state = acc, {k: v.detach().clone() for k, v in model.state_dict().items()}
                if self.progress:
                    self.progress({**log, "seconds": time.perf_counter() - start})
            if best_state is not None:
                model.load_state_dict(best_state)
        self.module_ = model.eval()
        self.best_epoch_ = int(np.argmax(self.dev_accuracy_)) + 1 if self.dev_accuracy_ else len(self.losses_)
        return self

    def predict(
        self, premises: Sequence[np.ndarray], hypotheses: Sequence[np.ndarray], vectors: np.ndarray
    ) -> list[str]:
        """Labels of (target-language) pairs, embedded with ``vectors``."""
        return [self.classes_[i] for i in _esim_predict(self.module_, *self._tensors(premises, hypotheses, vectors))]


def _esim_predict(model: ESIM, a: torch.Tensor, b: torch.Tensor, table: torch.Tensor) -> list[int]:
    """Class indices for padded pairs embedded with ``table``; the model's own table and mode are restored."""
    device = next(model.parameters()).device
    saved, was_training = model.embed, model.training
    model.embed = nn.Embedding.from_pretrained(table.to(device), freeze=True, padding_idx=0)
    model.eval()
    try:
        with torch.no_grad():
            return [
                i
                for s in range(0, len(a), 256)
                for i in model(a[s : s + 256].to(device), b[s : s + 256].to(device)).argmax(1).tolist()
            ]
    finally:
        model.embed = saved
        model.train(was_training)
