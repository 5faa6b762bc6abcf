"""Unsupervised mappers (MUSE, ICP, GWA): their steps equal independent computations, seeds make them
deterministic, progress reaches logs, failures finish and say so, and on an easy clustered pair each reaches at
least 80 P@1 from the CLI and from Python."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cle_mappers import p_at_1, rows
from threadpoolctl import threadpool_limits

from xling.cle.mappers import gwa, icp, make_mapper, muse
from xling.cle.mappers.procrustes import Procrustes
from xling.cle.normalize import unit_length
from xling.cle.simulate import simulate_pair, write_pair
from xling.cle.vectors import read_vectors
from xling.cli import main
from xling.cli.cle import _parse_params
from xling.errors import XlingError

#: Settings sized for CI on the easy pair (the defaults are sized for 200K x 300 fastText spaces): MUSE with a
#: smaller discriminator, 10K steps and a larger map learning rate, three runs selected by its criterion (whether one
#: run finds the map depends on its seed and on the CPU's arithmetic: on one machine seed 0 did, on another only 2);
#: ICP with 20 restarts of 10 components; GWA on
#: the 500 most frequent words with epsilon 5e-3 (the default 5e-4 underflows on these 20-dimensional distances).
FAST = {
    "muse": {"dis_hidden": 256, "epoch_size": 64000, "map_lr": 1.0, "log_every": 10**6, "n_runs": 3},
    "icp": {"n_restarts": 20, "n_components": 10},
    "gwa": {"n_words": 500, "epsilon": 5e-3, "max_iter": 100},
}


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    with threadpool_limits(limits=1):
        yield


def easy_pair():
    """2000 words x 20 dims in 40 shared clusters with a decaying spectrum (not rotation-symmetric), frequency ranks
    that mostly agree, little noise: PROC from the 500 most frequent pairs reaches ~93 P@1 (checked below)."""
    return simulate_pair(
        2000,
        20,
        0.15,
        0.05,
        seed=7,
        n_train=500,
        n_test=500,
        n_clusters=40,
        lang_clusters=2,
        cluster_spread=0.7,
        rank_noise=0.1,
        overlap=1.0,
        spectrum=1.0,
    )


@pytest.fixture(scope="module")
def easy():
    return easy_pair()


def score(est, pair) -> float:
    return p_at_1(*est.transform(pair.src_vectors, pair.tgt_vectors), rows(pair, pair.test))


def test_easy_pair_is_easy_for_proc(easy):
    proc = Procrustes().fit(easy.src_vectors, easy.tgt_vectors, rows(easy, easy.train))
    assert 0.88 <= score(proc, easy) <= 0.96


@pytest.mark.slow
@pytest.mark.parametrize("method", ["muse", "icp", "gwa"])
def test_unsupervised_methods_reach_80_on_the_easy_pair(easy, method):
    est = make_mapper(method, **FAST[method]).fit(easy.src_vectors, easy.tgt_vectors, None)
    assert score(est, easy) >= 0.80


# --- GWA ---------------------------------------------------------------------------------------------------------


def _otalign_gw(C1: np.ndarray, C2: np.ndarray, eps: float, max_iter: int) -> np.ndarray:
    """otalign's solver loop written out (loss (a - b)^2 / 2, Sinkhorn warm-started from the previous scalings,
    stopping on the squared marginal error): an independent reference for ``gwa.gromov_wasserstein``."""
    n, m = len(C1), len(C2)
    p, q = np.full(n, 1 / n), np.full(m, 1 / m)
    constC = (C1**2 / 2) @ p[:, None] @ np.ones((1, m)) + np.ones((n, 1)) @ (q[None, :] @ (C2**2 / 2).T)
    T, u, v = np.outer(p, q), np.full(n, 1 / n), np.full(m, 1 / m)
    for _ in range(max_iter + 1):
        grad = 2 * (constC - C1 @ T @ C2.T)
        K = np.exp(-grad / eps)
        for it in range(1000):
            v = q / (K.T @ u)
            u = 1 / ((K / p[:, None]) @ v)
            if it % 10 == 0 and np.sum(((u[:, None] * K * v[None, :]).sum(0) - q) ** 2) < 1e-9:
                break
        T = u[:, None] * K * v[None, :]
    return T


def test_gwa_coupling_equals_otalign_loop():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    Z = X @ np.linalg.qr(rng.standard_normal((5, 5)))[0] + 0.05 * rng.standard_normal((40, 5))
    C1, C2 = gwa.distance_matrices(gwa.split_normalize(X, 40), gwa.split_normalize(Z, 40))
    T, history, status = gwa.gromov_wasserstein(
        C1, C2, epsilon=5e-3, max_iter=5, tol=1e-12, sinkhorn_max_iter=1000, sinkhorn_tol=1e-9
    )
    assert np.allclose(T, _otalign_gw(C1, C2, 5e-3, 5), rtol=1e-6, atol=1e-12)
    assert len(history) == 6 and status == "max_iter"  # iterations 0..max_iter, as otalign's loop
    assert history[-1]["gw_loss"] < history[0]["gw_loss"]


def test_gwa_pairs_are_mutual_argmax_and_normalisation_is_split():
    T = np.array([[0.5, 0.1, 0.0], [0.4, 0.1, 0.3], [0.0, 0.4, 0.2]])
    assert gwa.coupling_pairs(T).tolist() == [[0, 0], [2, 1]]  # row 1's best is column 0, whose best is row 0
    X = np.random.default_rng(1).standard_normal((300, 6)).astype(np.float32) + 1.0
    out = gwa.split_normalize(X, 100)  # as otalign: the fitted words and the rest each centred on their own mean
    assert np.allclose(out[:100], unit_length(X[:100] - X[:100].mean(0)), atol=1e-6)
    assert np.allclose(out[100:], unit_length(X[100:] - X[100:].mean(0)), atol=1e-6)


def test_gwa_underflow_finishes_low_and_says_so(easy, capsys):
    est = make_mapper("gwa", verbose=True, n_words=300, max_iter=20).fit(easy.src_vectors, easy.tgt_vectors, None)
    err = capsys.readouterr().err
    assert est.status_ == "numerical failure" and not est.converged_
    assert "Sinkhorn failed numerically" in err and "numerical failure;" in err
    assert score(est, easy) < 0.1


# --- ICP ---------------------------------------------------------------------------------------------------------


def test_icp_gradients_equal_autograd():
    import torch

    rng = np.random.default_rng(2)
    x, target = rng.standard_normal((3, 16, 4)), rng.standard_normal((3, 16, 4))
    T1, T2 = rng.standard_normal((3, 4, 4)), rng.standard_normal((3, 4, 4))
    t1, t2 = torch.tensor(T1, requires_grad=True), torch.tensor(T2, requires_grad=True)
    xt = torch.tensor(x)
    match = 0.5 * ((torch.tensor(target) - xt @ t1.transpose(1, 2)) ** 2).sum(dim=(1, 2)) / 16
    cycle = 0.5 * ((xt @ t1.transpose(1, 2) @ t2.transpose(1, 2) - xt) ** 2).sum(dim=(1, 2)) / 16
    (g_match,) = torch.autograd.grad(match.sum(), t1)
    g1, g2 = torch.autograd.grad(cycle.sum(), (t1, t2))
    grad, loss = icp._match_grad(x, target, T1)
    assert np.allclose(grad, g_match.numpy()) and np.allclose(loss, match.detach().numpy())
    c1, c2 = icp._cycle_grads(x, T1, T2)
    assert np.allclose(c1, g1.numpy()) and np.allclose(c2, g2.numpy())


def test_icp_nearest_rows_is_brute_force(monkeypatch):
    monkeypatch.setattr(icp, "BLOCK_BYTES", 4 * 37 * 7)  # several blocks, uneven last one
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((100, 5)).astype(np.float32), rng.standard_normal((37, 5)).astype(np.float32)
    brute = ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1).argmin(axis=1)
    assert np.array_equal(icp.nearest_rows(A, B), brute)


def test_icp_restarts_do_not_depend_on_their_grouping(easy, monkeypatch):
    kw = dict(
        n_restarts=5,
        init_epochs=3,
        train_epochs=2,
        refine_epochs=2,
        n_components=5,
        n_words=600,
        n_refine_words=700,
        seed=4,
    )
    together = make_mapper("icp", **kw).fit(easy.src_vectors, easy.tgt_vectors, None)
    monkeypatch.setattr(icp, "RESTART_BYTES", 4 * 600 * 5 * 2)  # groups of two restarts
    grouped = make_mapper("icp", **kw).fit(easy.src_vectors, easy.tgt_vectors, None)
    assert np.allclose(together.restarts_, grouped.restarts_, rtol=1e-5)
    assert np.allclose(together.W_src_, grouped.W_src_, atol=1e-5)
    other = make_mapper("icp", **{**kw, "seed": 5}).fit(easy.src_vectors, easy.tgt_vectors, None)
    again = make_mapper("icp", **kw).fit(easy.src_vectors, easy.tgt_vectors, None)
    assert np.array_equal(again.W_src_, together.W_src_) and not np.allclose(other.restarts_, together.restarts_)


# --- MUSE --------------------------------------------------------------------------------------------------------


def test_muse_criterion_equals_its_definition():
    rng = np.random.default_rng(5)
    Xm, Zu = unit_length(rng.standard_normal((300, 6))), unit_length(rng.standard_normal((250, 6)))
    S = Xm @ Zu.T
    r_tgt = np.sort(S, axis=0)[-10:].mean(axis=0)  # each target's mean similarity to its 10 nearest sources
    best = (2 * S[:100] - r_tgt).argmax(axis=1)  # CSLS translations of the 100 most frequent sources
    keep = best <= 100  # ... whose target is among the 100 most frequent (MUSE compares ranks with <=)
    expected = S[np.arange(100)[keep], best[keep]].mean()
    assert muse.mean_cosine(Xm, Zu, n_words=100, csls_k=10) == pytest.approx(expected, abs=1e-6)
    pairs = muse.refinement_dictionary(Xm, Zu, max_rank=100, csls_k=10)
    assert np.array_equal(pairs, np.c_[np.flatnonzero(keep), best[keep]])


def test_muse_map_step_gradient_equals_the_full_batch_one():
    """The map step sends only the mapped sources through the discriminator: same gradient as MUSE's full batch."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(0)
    dis = muse.discriminator(6, hidden=32).eval()
    src, tgt = torch.randn(8, 6), torch.randn(8, 6)
    W = torch.linalg.qr(torch.randn(6, 6))[0].requires_grad_(True)
    y = torch.cat([torch.full((8,), 0.9), torch.full((8,), 0.1)])
    full = F.binary_cross_entropy(dis(torch.cat([src @ W.t(), tgt])).view(-1), 1 - y)
    (g_full,) = torch.autograd.grad(full, W)
    half = F.binary_cross_entropy(dis(src @ W.t()).view(-1), 1 - y[:8], reduction="sum") / 16
    (g_half,) = torch.autograd.grad(half, W)
    assert torch.allclose(g_full, g_half, atol=1e-7)


def test_muse_orthogonalisation_keeps_orthogonal_maps_and_pulls_others_back():
    import torch

    Q = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))[0]
    W = Q.clone()
    muse.orthogonalize(W, 0.001)
    assert torch.allclose(W, Q)
    W = Q * 1.01  # W^T W = 1.0201 I: each step scales W by 1 + beta (1 - s^2), towards s = 1
    for _ in range(200):
        muse.orthogonalize(W, 0.05)
    assert torch.allclose(W, Q, atol=1e-6)


def test_muse_is_seeded_and_deterministic(easy):
    kw = dict(dis_hidden=32, n_epochs=2, epoch_size=3200, n_refinement=1, log_every=10**6)
    a = make_mapper("muse", seed=3, **kw).fit(easy.src_vectors, easy.tgt_vectors, None)
    b = make_mapper("muse", seed=3, **kw).fit(easy.src_vectors, easy.tgt_vectors, None)
    c = make_mapper("muse", seed=4, **kw).fit(easy.src_vectors, easy.tgt_vectors, None)
    assert np.array_equal(a.W_src_, b.W_src_) and a.criterion_ == b.criterion_
    assert [h["criterion"] for h in a.history_] != [h["criterion"] for h in c.history_]
    assert [h["stage"] for h in a.history_] == ["adversarial", "adversarial", "refinement"]


def test_muse_n_runs_keeps_the_run_with_the_best_criterion(easy):
    kw = dict(dis_hidden=32, n_epochs=2, epoch_size=3200, n_refinement=1, log_every=10**6)
    runs = [make_mapper("muse", seed=s, **kw).fit(easy.src_vectors, easy.tgt_vectors, None) for s in (3, 4)]
    both = make_mapper("muse", seed=3, n_runs=2, **kw).fit(easy.src_vectors, easy.tgt_vectors, None)
    winner = max(runs, key=lambda est: est.criterion_)
    assert both.criterion_ == winner.criterion_ and np.array_equal(both.W_src_, winner.W_src_)
    assert both.selected_ == f"run {runs.index(winner) + 1}, {winner.selected_}"
    assert [h["run"] for h in both.history_] == [1, 1, 1, 2, 2, 2]
    assert [h["criterion"] for h in both.history_] == [h["criterion"] for r in runs for h in r.history_]
    with pytest.raises(XlingError, match="n_runs"):
        make_mapper("muse", n_runs=0).fit(easy.src_vectors, easy.tgt_vectors, None)


def test_muse_reports_its_expected_time_after_the_first_steps(easy, capsys):
    """After ``eta_steps`` steps MUSE prints the time per step and the adversarial training's expected total (at
    MUSE's defaults on a CPU, hours), and records both."""
    kw = dict(dis_hidden=16, n_epochs=2, epoch_size=32 * 60, n_refinement=0, log_every=10**6, eta_steps=50)
    est = make_mapper("muse", verbose=True, n_runs=2, **kw).fit(easy.src_vectors, easy.tgt_vectors, None)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if " steps in " in ln]
    assert len(lines) == 1 and lines[0].startswith("muse: 50 steps in ")
    assert "ms a step on cpu): adversarial training (2 run(s) x 2 epoch(s) x 60 steps) takes about " in lines[0]
    assert est.device_ == "cpu" and est.step_seconds_ > 0
    assert est.expected_seconds_ == pytest.approx(est.step_seconds_ * 2 * 2 * 60)
    quiet = make_mapper("muse", **{**kw, "eta_steps": 0, "n_epochs": 1}).fit(easy.src_vectors, easy.tgt_vectors, None)
    assert quiet.step_seconds_ is None
    assert muse.duration(7500) == "2 h 05 min" and muse.duration(840) == "14 min" and muse.duration(45) == "45 s"


def test_muse_uses_a_gpu_when_torch_sees_one(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert make_mapper("muse")._device().type == "cuda"  # device="auto", the default
    assert make_mapper("muse", device="cpu")._device().type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert make_mapper("muse")._device().type == "cpu"
    with pytest.raises(XlingError, match="torch sees no GPU"):
        make_mapper("muse", device="cuda")._device()


# --- progress, bad input, CLI ------------------------------------------------------------------------------------


def test_progress_is_one_plain_line_per_iteration_in_a_log(easy, capsys):
    est = make_mapper("gwa", verbose=True, n_words=200, epsilon=5e-3, max_iter=7).fit(
        easy.src_vectors, easy.tgt_vectors, None
    )
    lines = capsys.readouterr().err.splitlines()
    iterations = [line for line in lines if line.startswith("gwa: iteration ")]
    assert len(iterations) == est.n_iter_ == 8 and "gw loss" in iterations[0] and iterations[0].endswith(" s]")
    make_mapper(
        "icp",
        verbose=True,
        n_restarts=2,
        init_epochs=2,
        train_epochs=2,
        refine_epochs=1,
        n_components=5,
        n_words=300,
        n_refine_words=300,
    ).fit(easy.src_vectors, easy.tgt_vectors, None)
    lines = capsys.readouterr().err.splitlines()
    assert sum(line.startswith("icp: iteration ") for line in lines) == 3
    assert any(line.startswith("icp: restarts 2/2: best reconstruction") for line in lines)


@pytest.mark.parametrize(
    "method, params, message",
    [
        ("gwa", {"epsilon": 0}, "epsilon must be > 0"),
        ("gwa", {"sinkhorn_method": "greenkhorn"}, "sinkhorn_method: expected"),
        ("icp", {"n_components": 50}, "n_components must be at most the dimension 20"),
        ("icp", {"init_epochs": 0}, "init_epochs must be at least 1"),
        ("muse", {"device": "tpu"}, "device: expected"),
        ("muse", {"dis_smooth": 0.5}, "dis_smooth must be in [0, 0.5)"),
    ],
)
def test_bad_parameters_are_one_line_errors(easy, method, params, message):
    with pytest.raises(XlingError, match=re.escape(message)):
        make_mapper(method, **params).fit(easy.src_vectors, easy.tgt_vectors, None)


@pytest.fixture(scope="module")
def easy_files(tmp_path_factory, easy):
    folder = tmp_path_factory.mktemp("unsup") / "pair"
    write_pair(easy, folder)
    return folder


@pytest.mark.parametrize(
    "method, params",
    [
        ("gwa", FAST["gwa"]),
        ("icp", {"n_restarts": 2, "n_components": 10, "init_epochs": 3, "train_epochs": 2, "refine_epochs": 2}),
        ("muse", {"dis_hidden": 32, "n_epochs": 1, "epoch_size": 1600, "n_refinement": 1}),
    ],
)
def test_cle_run_from_the_cli(monkeypatch, capsys, easy_files, tmp_path, method, params):
    args = [
        "xling",
        "cle",
        "run",
        "--method",
        method,
        "--src",
        str(easy_files / "src.vec"),
        "--tgt",
        str(easy_files / "tgt.vec"),
        "--test-dict",
        str(easy_files / "test.tsv"),
        "--json",
        "-o",
        str(tmp_path / "run"),
        "--no-cache",
    ]
    for key, value in params.items():
        args += ["--param", f"{key}={value}"]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    assert (exit_.value.code or 0) == 0, out.err
    result = json.loads(out.out)
    assert result["method"] == method and result["coverage"] == 1.0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["mapping"]["seed"] == "none" and record["mapping"]["params"]
    if method == "gwa":  # the CI settings are enough for the full score
        assert result["p1"] >= 0.8 and record["mapping"]["status"] in ("converged", "max_iter")


def _readme_commands(prefix: str) -> list[list[str]]:
    """The README's shell commands starting with ``prefix`` (continuation lines joined, comments dropped)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n\s*", " ", text)
    return [shlex.split(line.split("#")[0]) for line in joined.splitlines() if line.startswith(prefix)]


def test_readme_easy_pair_commands_are_the_tests_pair_and_settings(monkeypatch, capsys, tmp_path, easy):
    (simulate,) = _readme_commands("xling cle simulate -o easy ")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", simulate)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert (exit_.value.code or 0) == 0, capsys.readouterr().err
    src, tgt = read_vectors(tmp_path / "easy" / "src.vec"), read_vectors(tmp_path / "easy" / "tgt.vec")
    assert src.words == easy.src_words and tgt.words == easy.tgt_words
    assert np.allclose(src.vectors, easy.src_vectors, atol=1e-5)
    assert np.allclose(tgt.vectors, easy.tgt_vectors, atol=1e-5)
    runs = {cmd[cmd.index("-m") + 1]: cmd for cmd in _readme_commands("xling cle run -m ")}
    for method, settings in FAST.items():
        given = [runs[method][i + 1] for i, arg in enumerate(runs[method]) if arg == "--param"]
        assert _parse_params(given) == {k: v for k, v in settings.items() if k != "log_every"}


def test_simulated_spectrum_decays_and_is_off_by_default():
    plain = simulate_pair(600, 12, 0.1, seed=3, n_train=50, n_test=50, n_clusters=30)
    same = simulate_pair(600, 12, 0.1, seed=3, n_train=50, n_test=50, n_clusters=30, spectrum=0.0)
    steep = simulate_pair(600, 12, 0.1, seed=3, n_train=50, n_test=50, n_clusters=30, spectrum=1.0)
    assert np.array_equal(plain.src_vectors, same.src_vectors) and plain.test == steep.test

    def top_share(X: np.ndarray) -> float:
        s = np.linalg.svd(X - X.mean(0), compute_uv=False) ** 2
        return float(s[:3].sum() / s.sum())

    assert top_share(steep.src_vectors) > 1.5 * top_share(plain.src_vectors)
    assert top_share(steep.tgt_vectors) > 1.5 * top_share(plain.tgt_vectors)  # the planted map keeps the spectrum
