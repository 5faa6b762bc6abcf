"""An interrupted `xling eval` resumes for every model kind: finished cells are loaded, never scored again, and the
result equals an uninterrupted run."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]


def _eval(monkeypatch, args) -> int:
    from xling.cli import main

    monkeypatch.setattr(sys, "argv", ["xling", "eval", *map(str, args)])
    with pytest.raises(SystemExit) as done:
        main()
    return done.value.code or 0


@pytest.mark.parametrize("kind", ["causal", "encoder"])
def test_interrupted_eval_resumes_without_rescoring(kind, tmp_path, monkeypatch, capsys, grid_assets):
    from xling.models.causal import CausalScorer
    from xling.models.encoder import EncoderScorer, default_model_path

    if kind == "causal":
        model_dir, tasks = grid_assets
        scorer_cls, args = CausalScorer, ["--model", model_dir, "--task", tasks[0]]
    else:
        scorer_cls, args = (
            EncoderScorer,
            [
                "--model",
                default_model_path(),
                "--kind",
                "encoder",
                "--task",
                "mini:numbers",
                "--lang",
                "en",
                "--lang",
                "de",
            ],
        )
    (tmp_path / "score.yaml").write_text("score: {max_items: 4}\n")
    args += ["--config", tmp_path / "score.yaml"]
    original, scored = scorer_cls.score, []

    def counting(self, items):
        scored.append((items[0].task, items[0].language))
        return original(self, items)

    def interrupted(self, items):
        if scored:  # the second cell: Ctrl-C
            raise KeyboardInterrupt
        return counting(self, items)

    monkeypatch.setattr(scorer_cls, "score", interrupted)
    assert _eval(monkeypatch, [*args, "-o", tmp_path / "out"]) == 130
    assert len(scored) == 1 and not (tmp_path / "out").exists()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("interrupted: 1 of 2 scored cell(s) are kept in ") and err.endswith("to resume"), err
    first = scored[0]
    monkeypatch.setattr(scorer_cls, "score", counting)
    assert _eval(monkeypatch, [*args, "-o", tmp_path / "out"]) == 0
    assert first not in scored[1:] and len(scored) == 2  # the finished cell was loaded, the other one scored
    assert _eval(monkeypatch, [*args, "-o", tmp_path / "fresh"]) == 0  # uninterrupted
    resumed, fresh = (pd.read_parquet(tmp_path / d / "loglikelihoods.parquet") for d in ("out", "fresh"))
    keys = ["adapter", "task", "language", "item_id", "choice"]
    pd.testing.assert_frame_equal(
        resumed.sort_values(keys).reset_index(drop=True),
        fresh.sort_values(keys).reset_index(drop=True),
        check_exact=False,
        atol=1e-5,
    )
