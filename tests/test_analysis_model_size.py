"""Model sizes written as strings or missing (as a grid of small or unnamed models writes them)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from xling.analysis.results import aggregate_seeds, model_size_billions
from xling.report import run_analysis


def test_model_size_strings_are_parsed() -> None:
    got = model_size_billions(pd.Series(["1.5B", "22M", 7, "", None, "big"]))
    np.testing.assert_allclose(got.to_numpy(), [1.5, 0.022, 7.0, np.nan, np.nan, np.nan])


def test_analysis_runs_with_an_unknown_size(tmp_path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    cells = list(itertools.product(["t1", "t2"], ["en", "de", "fr"]))
    for (st, sl), (et, el), seed in itertools.product(cells, cells, [1, 2]):
        base = 0.5
        rows.append(
            {
                "model_name": "tiny-llama",
                "model_size": "",
                "fine_tuned_dataset": st,
                "fine_tuned_language": sl,
                "eval_dataset": et,
                "eval_language": el,
                "seed": seed,
                "score": base + rng.uniform(-0.1, 0.2),
                "score_base": base,
                "score_norm": base + rng.uniform(-0.1, 0.2),
                "score_norm_base": base,
            }
        )
    table = aggregate_seeds(pd.DataFrame(rows))
    assert model_size_billions(table["model_size"]).isna().all()
    analysis = run_analysis(table, tmp_path / "out", mixed_models=False, linguistic_distances=False)
    assert list(analysis.headline["regime"]) == ["MT-ML", "MT-CL", "CT-ML", "CT-CL"]
    assert (tmp_path / "out" / "report.html").is_file()
