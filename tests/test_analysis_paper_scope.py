"""The analysis scope of the Donors-and-Recipients release (issue 9, item 6), against reference computations.

Each test rebuilds what the release's ``analysis/`` code computes, in a few lines of pandas/scipy/statsmodels,
on a simulated grid in the release schema, and checks xling's table against it.
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xling.analysis import linguistic, roles, variance
from xling.analysis.consistency import consistency_tables
from xling.analysis.meta import PAPER_LANGUAGE_GROUPS, AnalysisSpec
from xling.analysis.pipeline import prepare
from xling.analysis.simulate import SimulationSpec, simulate_grid

RELEASE_MODELS = [
    "Llama-3.2-1B-Instruct",
    "Llama-3.2-3B-Instruct",
    "Llama-3.1-8B-Instruct",
    "Qwen2.5-0.5B-Instruct",
    "Qwen2.5-1.5B-Instruct",
    "Qwen2.5-3B-Instruct",
    "Qwen2.5-7B-Instruct",
    "gemma-3-1b-it",
    "gemma-3-4b-it",
]
RELEASE_LANGUAGES = ["ar", "bn", "de", "en", "es", "fr", "hi", "id", "it", "pt", "zh"]
SOURCE = ["fine_tuned_dataset", "fine_tuned_language"]


def _cells(spec: AnalysisSpec | None = None, **sim) -> pd.DataFrame:
    return prepare(simulate_grid(SimulationSpec(n_seeds=2, **sim)), spec or AnalysisSpec())


@pytest.fixture(scope="module")
def three_tasks() -> pd.DataFrame:
    return _cells(
        models=RELEASE_MODELS[:3],
        tasks=["arc_challenge", "global_mmlu", "hellaswag"],
        languages=["en", "de", "fr"],
        seed=3,
    )


def test_variance_is_fitted_on_transfer_cells_and_the_release_subsets(three_tasks):
    cells = three_tasks
    transfer = cells[cells["regime"] != "MT-ML"]
    gm = (transfer["fine_tuned_dataset"] == "global_mmlu") | (transfer["eval_dataset"] == "global_mmlu")
    out = variance.crossed_decomposition(cells, AnalysisSpec())
    n = out.groupby(["subset", "scope"])["n"].first()
    assert n[("all", "overall")] == len(transfer) == 216
    assert n[("involving global_mmlu", "overall")] == gm.sum() == 126
    assert n[("excluding global_mmlu", "overall")] == (~gm).sum() == 90
    for subset, mask in (("all", slice(None)), ("involving global_mmlu", gm), ("excluding global_mmlu", ~gm)):
        sub = transfer[mask]
        for regime in ("MT-CL", "CT-ML", "CT-CL"):
            size = int((sub["regime"] == regime).sum())
            assert n.get((subset, regime), 0) == (size if size >= 50 else 0)  # the release's min_rows=50
    np.testing.assert_allclose(out.groupby(["subset", "scope"])["share"].sum(), 100.0)
    # one switch away: every cell (MT-ML included) and no subset fits
    alt = variance.crossed_decomposition(cells, AnalysisSpec(variance_cells="all", variance_subset_task=None))
    assert set(alt["subset"]) == {"all"} and alt.query("scope == 'overall'")["n"].iloc[0] == len(cells)
    notes: list[str] = []
    variance.crossed_decomposition(cells, AnalysisSpec(variance_subset_task="truthfulqa"), notes)
    assert notes == ["variance subsets: skipped (no cell involves truthfulqa)"]


def _release_mixedlm(df: pd.DataFrame) -> tuple[dict[str, float], float]:
    """The release's fit: delta ~ 1, model random intercept, source and target VCs, REML by L-BFGS (sparse)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    work = pd.DataFrame(
        {
            "delta": df["delta"].to_numpy(),
            "model_id": df["model_name"].to_numpy(),
            "source_id": (df["fine_tuned_dataset"] + "⟂" + df["fine_tuned_language"]).to_numpy(),
            "target_id": (df["eval_dataset"] + "⟂" + df["eval_language"]).to_numpy(),
        }
    )
    md = MixedLM.from_formula(
        "delta ~ 1",
        groups="model_id",
        re_formula="1",
        data=work,
        use_sparse=True,
        vc_formula={"source": "0 + C(source_id)", "target": "0 + C(target_id)"},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = md.fit(reml=True, method="lbfgs", maxiter=1000)
    comps = {
        "model": float(fit.cov_re.iloc[0, 0]),
        "source (in model)": float(fit.vcomp[0]),
        "target (in model)": float(fit.vcomp[1]),
        "residual": float(fit.scale),
    }
    return comps, float(fit.llf)


@pytest.mark.slow
def test_mixedlm_equals_the_release_fit_on_its_global_mmlu_subset(three_tasks):
    subsets = dict(variance.subsets(three_tasks, AnalysisSpec()))
    gm = subsets["involving global_mmlu"]
    ref, ref_llf = _release_mixedlm(gm)
    ours = variance.fit_mixedlm(gm)  # the default optimiser: the release's L-BFGS
    for comp, var in ref.items():
        assert ours[comp] == pytest.approx(var, rel=1e-6, abs=1e-8), comp
    # Powell, one switch away, stops elsewhere on this grid's flat model component (0.0003 where L-BFGS stops at
    # 0.10), at a REML likelihood at least the release's
    powell = variance.fit_mixedlm(gm, "powell")
    assert powell["llf"] >= ref_llf - 1e-9 and powell["converged"] == 1.0
    # the table: one fit per subset and regime with >= 50 cells, each with its likelihood
    table = variance.mixedlm_decomposition(gm.assign(regime="CT-CL"), AnalysisSpec(variance_subset_task=None))
    assert table["share"].sum() == pytest.approx(200.0)  # overall and CT-CL, each summing to 100
    assert table.query("scope == 'overall' and component == 'model'")["variance"].iloc[0] == pytest.approx(ref["model"])


def _release_consistency_by_size(cells: pd.DataFrame) -> pd.DataFrame:
    """The release's consistency_index_by_size: delta averaged over families per exact model_size, then per
    source the mean Kendall tau-b over pairs of sizes (pairwise complete recipients, >= 3), median/q1/q3."""
    recipients = {"MT-CL": ["eval_language"], "CT-ML": ["eval_dataset"], "CT-CL": ["eval_dataset", "eval_language"]}
    transfer = cells[cells["regime"] != "MT-ML"]
    keys = ["model_size", *SOURCE, "eval_dataset", "eval_language", "regime"]
    by_size = transfer.groupby(keys, as_index=False)["delta"].mean()
    rows = []
    for regime, rec in recipients.items():
        taus = []
        for _, g in by_size[by_size["regime"] == regime].groupby(SOURCE):
            piv = g.pivot_table(index=rec, columns="model_size", values="delta", aggfunc="mean")
            if piv.shape[0] < 3 or piv.shape[1] < 2:
                continue
            pair = [stats.kendalltau(piv[a], piv[b], variant="b").statistic for a, b in combinations(piv.columns, 2)]
            taus.append(np.mean(pair))
        if taus:
            rows.append(
                {
                    "regime": regime,
                    "median": np.median(taus),
                    "q1": np.quantile(taus, 0.25),
                    "q3": np.quantile(taus, 0.75),
                    "n": len(taus),
                }
            )
    return pd.DataFrame(rows)


def test_consistency_by_exact_size_equals_the_release_computation():
    cells = _cells(
        models=RELEASE_MODELS,
        tasks=["arc_challenge", "global_mmlu", "hellaswag"],
        languages=["en", "de", "fr", "zh"],
        seed=5,
    )
    # the release's model_size: the number in the name (Llama-3.2-1B and gemma-3-1b are both 1, Qwen 0.5)
    assert sorted(cells["size"].unique()) == [0.5, 1.0, 1.5, 3.0, 4.0, 7.0, 8.0]
    tables = consistency_tables(cells, AnalysisSpec(n_boot=50), [])
    ours = tables["consistency_by_size"].set_index("regime")
    ref = _release_consistency_by_size(cells).set_index("regime")
    assert list(ours.index) == list(ref.index) == ["MT-CL", "CT-CL"]  # CT-ML: only 2 recipient tasks
    for col in ("median", "q1", "q3", "n"):
        np.testing.assert_allclose(ours[col].to_numpy(dtype=float), ref[col].to_numpy(dtype=float), rtol=1e-12)
    per_source = tables["consistency_sources"]
    assert per_source.loc[per_source["raters"] == "size", "n_raters"].eq(7).all()
    assert per_source.loc[per_source["raters"] == "size_bucket", "n_raters"].eq(3).all()  # S, M, L next to it
    assert not tables["consistency_by_size_bucket"].empty


def test_arabic_reaches_uriel_as_ara_like_the_release():
    letters = linguistic._letter_codes()
    assert linguistic.to_iso3("ar", letters) == "ara" and linguistic.to_iso3("zh", letters) == "cmn"
    assert [linguistic.to_iso3(c, letters) for c in RELEASE_LANGUAGES] == [
        "ara",
        "ben",
        "deu",
        "eng",
        "spa",
        "fra",
        "hin",
        "ind",
        "ita",
        "por",
        "cmn",
    ]
    assert linguistic.to_iso3("ar", letters, "individual") == "arb"
    dist = linguistic.language_distances(["ar", "en"], [])
    row = dist[(dist["lang_a"] == "ar") & (dist["lang_b"] == "en")].iloc[0]
    assert (row["iso_a"], row["iso_b"]) == ("ara", "eng")
    vec = {c: linguistic.uriel_vectors([c, "eng"], "syntax_knn") for c in ("ara", "arb")}
    assert row["syntax_knn"] == pytest.approx(linguistic.cosine_distance(vec["ara"]["ara"], vec["ara"]["eng"]))
    other = linguistic.language_distances(["ar", "en"], [], "individual")
    assert other.loc[0, "syntax_knn"] == pytest.approx(linguistic.cosine_distance(vec["arb"]["arb"], vec["arb"]["eng"]))
    assert other.loc[0, "syntax_knn"] != pytest.approx(row["syntax_knn"])


def test_the_release_language_families_are_the_default_groups_with_the_release_scores():
    assert AnalysisSpec().language_groups == PAPER_LANGUAGE_GROUPS
    assert sorted(lang for langs in PAPER_LANGUAGE_GROUPS.values() for lang in langs) == RELEASE_LANGUAGES
    assert AnalysisSpec(language_groups={}).language_groups == {}  # one switch away
    spec = AnalysisSpec(n_boot=50)
    cells = _cells(
        spec, models=RELEASE_MODELS[:2], tasks=["arc_challenge", "global_mmlu"], languages=RELEASE_LANGUAGES, seed=7
    )
    ours = roles.language_group_roles(cells, spec).set_index("group")
    # the release: per-language two-stage roles on MT-CL, then the mean over each family's languages
    mtcl = cells[cells["regime"] == "MT-CL"]
    family = {lang: fam for fam, langs in PAPER_LANGUAGE_GROUPS.items() for lang in langs}
    ref = {}
    for role, col in (("donor", "fine_tuned_language"), ("recipient", "eval_language")):
        per_lang = mtcl.groupby(["model_name", col])["delta"].mean().groupby(col).mean()
        ref[role] = per_lang.groupby(per_lang.index.map(family)).mean()
    assert sorted(ours.index) == sorted(PAPER_LANGUAGE_GROUPS)
    for role in ("donor", "recipient"):
        np.testing.assert_allclose(ours[role].sort_index().to_numpy(), ref[role].sort_index().to_numpy(), rtol=1e-10)
    assert ours.loc["Romance", "languages"] == "es,fr,it,pt"


def test_construction_types_are_the_releases():
    from xling.analysis.meta import DEFAULT_CONSTRUCTION

    # analysis/chapters/uplift_and_transfer.py, CONSTRUCTION_TYPE_MAP
    assert DEFAULT_CONSTRUCTION == {
        "global_mmlu": "human-translated",
        "arc_challenge": "machine-translated",
        "hellaswag": "machine-translated",
        "truthfulqa": "machine-translated",
    }
