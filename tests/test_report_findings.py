"""The report leads with its findings (issue 21): the findings as data in the analysis, the same findings first on
the terminal, in summary.md, in --json and at the top of report.html (checked in a real browser: first screen,
regimes spelled out, no empty table drawn as a table, wide tables scroll); a variance component that cannot be
estimated is never a share (item 5); one unit rule for terminal, JSON and report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runner import run_xling

from xling.analysis import analyze_results, variance
from xling.analysis.findings import REGIME_NAMES, UNITS
from xling.analysis.meta import AnalysisSpec
from xling.analysis.pipeline import prepare
from xling.analysis.simulate import SimulationSpec, simulate_grid
from xling.report import run_analysis

# The quickstart's shape: one model, one seed, 4 tasks x 4 languages (256 cells).
ONE_MODEL = SimulationSpec(
    models=["all-MiniLM-L6-v2"],
    tasks=["arc_challenge", "global_mmlu", "hellaswag", "truthfulqa"],
    languages=["en", "de", "fr", "ru"],
    n_seeds=1,
    seed=4,
)
TWO_MODELS = SimulationSpec(
    models=["Llama-3.2-1B", "Qwen2.5-7B"],
    tasks=["arc_challenge", "global_mmlu"],
    languages=["en", "de", "fr"],
    n_seeds=2,
    seed=4,
)


def _no_model_intercept_fit(df: pd.DataFrame) -> dict[str, float]:
    """The reference for one model: the same REML fit with source and target components and no model intercept."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    work = pd.DataFrame(
        {
            "delta": df["delta"].to_numpy(),
            "g": 0,
            "source": (df["fine_tuned_dataset"] + "|" + df["fine_tuned_language"]).to_numpy(),
            "target": (df["eval_dataset"] + "|" + df["eval_language"]).to_numpy(),
        }
    )
    md = MixedLM.from_formula(
        "delta ~ 1",
        groups="g",
        re_formula="0",
        vc_formula={"source": "0 + C(source)", "target": "0 + C(target)"},
        data=work,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = md.fit(reml=True, method="lbfgs", maxiter=1000)
    return {"source (in model)": fit.vcomp[0], "target (in model)": fit.vcomp[1], "residual": fit.scale}


@pytest.mark.slow
def test_one_model_has_no_model_variance_share():
    spec = AnalysisSpec(variance_subset_task=None)
    cells = prepare(simulate_grid(ONE_MODEL), spec)
    table = variance.mixedlm_decomposition(cells, spec).query("scope == 'overall'").set_index("component")
    model = table.loc["model"]
    # before: the model's variance was the optimiser's start (equal to the residual) and took a 35-38 % share
    assert not model["estimable"] and np.isnan(model["share"]) and np.isnan(model["variance"])
    assert model["reason"].startswith("one model")
    ref = _no_model_intercept_fit(cells[cells["regime"] != "MT-ML"])
    for comp, var in ref.items():
        assert table.loc[comp, "variance"] == pytest.approx(var, rel=1e-4), comp
        assert table.loc[comp, "estimable"] and table.loc[comp, "reason"] == ""
    assert table["share"].sum() == pytest.approx(100.0)
    total = sum(ref.values())
    assert table.loc["residual", "share"] == pytest.approx(100 * ref["residual"] / total, rel=1e-4)

    crossed = variance.crossed_decomposition(cells, spec).query("scope == 'overall'").set_index("term")
    model_terms = [t for t in crossed.index if t.startswith("model")]
    assert len(model_terms) == 5 and not crossed.loc[model_terms, "estimable"].any()
    assert crossed.loc[model_terms, "share"].isna().all()
    assert set(crossed.loc[model_terms, "reason"]) == {"one model in this fit"}
    assert crossed["share"].sum() == pytest.approx(100.0) and crossed.drop(model_terms)["estimable"].all()


def test_aliased_and_confounded_components_are_named():
    sim = SimulationSpec(
        models=["Llama-3.2-1B", "Qwen2.5-7B", "gemma-3-4b"],
        tasks=["arc_challenge", "global_mmlu", "hellaswag"],
        languages=["en", "de", "fr", "ru"],
        n_seeds=1,
    )
    cells = prepare(simulate_grid(sim), AnalysisSpec())
    crossed = variance.crossed_decomposition(cells, AnalysisSpec(variance_subset_task=None))
    mtcl = crossed.query("scope == 'MT-CL'").set_index("term")
    # within MT-CL the target task is the source task: no degrees of freedom left, no share
    assert not mtcl.loc["target_task", "estimable"] and mtcl.loc["target_task", "reason"].startswith("aliased")
    assert mtcl["share"].sum() == pytest.approx(100.0)
    # two languages: every MT-CL source has one target, so source and target are the residual again
    one_target = pd.DataFrame(
        {
            "model_name": ["m1"] * 4 + ["m2"] * 4,
            "fine_tuned_dataset": ["t1", "t1", "t2", "t2"] * 2,
            "fine_tuned_language": ["en", "de"] * 4,
            "eval_dataset": ["t1", "t1", "t2", "t2"] * 2,
            "eval_language": ["de", "en"] * 4,
        }
    )
    reasons = variance.mixedlm_identifiability(one_target)
    assert set(reasons) == {"source (in model)", "target (in model)", "residual"} and "model" not in reasons
    assert "residual" in reasons["source (in model)"]


def test_a_variance_at_the_boundary_has_no_share(monkeypatch):
    def fit(df, optimizer="lbfgs"):
        return {"model": 2.0, "source (in model)": 0.0, "target (in model)": 1.0, "residual": 1.0, "llf": -1.0}

    monkeypatch.setattr(variance, "fit_mixedlm", lambda df, opt: {**fit(df), "converged": 1.0})
    cells = prepare(simulate_grid(TWO_MODELS), AnalysisSpec())
    table = variance.mixedlm_decomposition(cells, AnalysisSpec(variance_subset_task=None))
    head = table.query("scope == 'overall'").set_index("component")
    assert not head.loc["source (in model)", "estimable"] and "boundary" in head.loc["source (in model)", "reason"]
    assert head["share"].tolist()[0] == 50.0 and np.isnan(head.loc["source (in model)", "share"])
    assert head["share"].sum() == pytest.approx(100.0)


@pytest.fixture(scope="module")
def one_model() -> tuple[pd.DataFrame, object]:
    table = simulate_grid(ONE_MODEL)
    analysis, _ = analyze_results(table, AnalysisSpec(n_boot=200), mixed_models=False, linguistic_distances=False)
    return table, analysis


def test_findings_say_what_one_model_and_one_seed_cannot_support(one_model):
    _, analysis = one_model
    f = analysis.findings
    assert [r["regime"] for r in f.regimes] == ["MT-ML", "MT-CL", "CT-ML", "CT-CL"]
    mtml = f.regimes[0]
    assert (mtml["name"], mtml["meaning"]) == ("matched task, matched language", "the trained cell itself")
    head = analysis.headline.set_index("regime")
    for r in f.regimes:
        assert r["mean"] == head.loc[r["regime"], "mean"] and r["ci_method"] == "bootstrap over cells"
    whats = [lim["what"] for lim in f.limits]
    assert whats == ["a test of any single cell", "claims about other models"]
    assert "one seed per cell" in f.limits[0]["why"] and "one model" in f.limits[1]["why"]
    assert f.roles_basis.startswith("One model: the two-stage bootstrap has no models to resample")
    assert f.roles == analysis.tables["named_roles"].to_dict(orient="records")
    json.dumps(f.to_dict(), allow_nan=False)  # JSON-able, no NaN
    # with two models and two seeds neither limit applies
    two, _ = analyze_results(simulate_grid(TWO_MODELS), AnalysisSpec(n_boot=100), mixed_models=False)
    assert not {"a test of any single cell", "claims about other models"} & {lim["what"] for lim in two.findings.limits}
    assert two.findings.roles_basis.startswith("Intervals resample models.")


@pytest.mark.slow
def test_terminal_summary_json_and_report_lead_with_the_same_findings_in_one_unit_rule(
    one_model, tmp_path, monkeypatch, capsys
):
    """The findings first everywhere; scores are proportions, deltas pp, rates and shares percent: the same number
    on the terminal, in JSON, summary.md and the report, never rescaled."""
    table, analysis = one_model
    scores = table.filter(regex=r"^score(_norm)?(_base)?_mean$").to_numpy()
    assert scores.shape[1] == 4 and (scores >= 0).all() and (scores <= 1).all()  # release schema: proportions
    for name, df in analysis.tables.items():
        for col in [c for c in df.columns if c.endswith("_rate") or c in ("share", "coverage")]:
            assert df[col].dropna().between(0, 100).all(), (name, col)
    assert analysis.headline["positive_rate"].max() > 1  # percent, not proportions
    table.to_csv(tmp_path / "one.csv", index=False)
    args = ["analyze", tmp_path / "one.csv", "--no-mixed", "--no-linguistic", "--n-boot", "200"]
    monkeypatch.setenv("COLUMNS", "160")
    code, out, err = run_xling(monkeypatch, capsys, *args, "-o", tmp_path / "a")
    assert code == 0, err
    assert out.index("Findings") < out.index("Transfer by regime") < out.index("Named roles")
    assert out.index("What this run cannot support") < out.index("note:")
    for regime, (name, _) in REGIME_NAMES.items():
        assert re.search(rf"{regime}\s+│ {name}", out), regime
    assert "a test of any single cell" in out and "claims about other models" in out
    summary = (tmp_path / "a" / "summary.md").read_text()
    assert summary.splitlines()[2] == "## Findings"
    assert summary.index("### What this run cannot support") < summary.index("## How each interval was made")
    assert "| MT-ML | matched task, matched language |" in summary

    code, js, err = run_xling(monkeypatch, capsys, *args, "-o", tmp_path / "b", "--json")
    result = json.loads(js)
    assert result["findings"]["limits"] == analysis.findings.to_dict()["limits"]
    assert result["findings"]["regimes"][1]["name"] == "matched task, cross language"
    assert json.loads((tmp_path / "b" / "run.json").read_text())["findings"] == result["findings"]
    assert set(result["units"]) == set(UNITS) and "pp (percentage points)" in result["units"]
    # one number, one unit: the MT-CL row in JSON (headline and findings), terminal, summary and report
    mtcl = next(r for r in result["headline"] if r["regime"] == "MT-CL")
    finding = next(r for r in result["findings"]["regimes"] if r["regime"] == "MT-CL")
    assert mtcl["positive_rate"] == finding["positive_rate"] > 1 and mtcl["mean"] == finding["mean"]
    pos, mean = f"{mtcl['positive_rate']:.1f}", f"{mtcl['mean']:+.2f}"
    row = next(line for line in out.splitlines() if line.startswith("│ MT-CL"))
    assert pos in row and mean in row
    assert f"| {mean} |" in summary and f"| {pos} |" in summary
    page = (tmp_path / "a" / "report.html").read_text()
    assert f">{pos}</td>" in page and f">{mtcl['positive_rate']:.3f}</td>" in page
    assert "rates and shares are percent (0–100)" in page and "percentage points (pp)" in page


# Measures the page after load: where the findings are, which tables are empty, wide or overflow the page.
_MEASURE = """<script>window.addEventListener("load", function () {
  var b = document.body, f = document.getElementById("findings");
  var firstH2 = document.querySelector("h2");
  var r = f ? f.getBoundingClientRect() : null;
  var regimes = document.getElementById("t-findings").getBoundingClientRect();
  var empty = 0, wide = 0, unscrollable = 0, squeezed = 0;
  document.querySelectorAll("table.data").forEach(function (t) {
    if (t.tBodies[0].rows.length === 0) { empty += 1; }
    var box = t.parentElement;
    if (box.scrollWidth > box.clientWidth + 1) {
      wide += 1;
      var ox = getComputedStyle(box).overflowX;
      if (ox !== "auto" && ox !== "scroll") { unscrollable += 1; }
    }
    t.querySelectorAll("td, th").forEach(function (c) { if (c.scrollWidth > c.clientWidth + 1) { squeezed += 1; } });
  });
  b.setAttribute("data-t-first-h2", firstH2 ? (firstH2.closest("section") || {}).id || "" : "");
  b.setAttribute("data-t-findings-top", r ? String(Math.round(r.top)) : "-1");
  b.setAttribute("data-t-regimes-bottom", String(Math.round(regimes.bottom)));
  b.setAttribute("data-t-findings-text", f ? f.textContent.replace(/\\s+/g, " ") : "");
  b.setAttribute("data-t-empty-tables", String(empty));
  b.setAttribute("data-t-empty-lines", String(document.querySelectorAll("p.empty").length));
  b.setAttribute("data-t-wide", String(wide));
  b.setAttribute("data-t-unscrollable", String(unscrollable));
  b.setAttribute("data-t-squeezed", String(squeezed));
  b.setAttribute("data-t-page-overflow", String(document.documentElement.scrollWidth - window.innerWidth));
});</script></body>"""


def _chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        shutil.which("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1000,900",
        "--virtual-time-budget=5000",
        *args,
        page.resolve().as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.browser
@pytest.mark.slow
def test_report_opens_with_its_findings_in_chromium(tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed")
    out = tmp_path / "one"
    spec = AnalysisSpec(n_boot=200, variance_subset_task=None)
    run_analysis(simulate_grid(ONE_MODEL), out, spec, mixed_models=True, linguistic_distances=False)
    mixed = pd.read_csv(out / "tables" / "variance_mixedlm.csv")
    assert mixed.loc[mixed["component"] == "model", "share"].isna().all()  # item 5, in the written table
    page = tmp_path / "measure.html"
    page.write_text((out / "report.html").read_text().replace("</body>", _MEASURE))
    proc = _chromium(page, tmp_path / "profile", "--dump-dom")
    tag = re.search(r"<body([^>]*)>", proc.stdout)
    body = dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1)))
    # the findings come first, at the top of the first screen (900 px), with the regime table on it
    assert body["data-t-first-h2"] == "findings"
    assert 0 <= int(body["data-t-findings-top"]) < 150 and int(body["data-t-regimes-bottom"]) < 900
    text = body["data-t-findings-text"]
    for regime, (name, meaning) in REGIME_NAMES.items():
        assert f"{regime} = {name} ({meaning})" in text
    assert "What this run cannot support" in text and "a test of any single cell" in text
    assert "bootstrap over cells" in text and "One model: the two-stage bootstrap" in text
    # no empty table is drawn (one model: the four consistency tables are one line each)
    assert body["data-t-empty-tables"] == "0" and int(body["data-t-empty-lines"]) >= 4
    # wide tables scroll inside their box; nothing runs off the page or is squeezed out of its cell
    assert int(body["data-t-wide"]) >= 3 and body["data-t-unscrollable"] == "0"
    assert int(body["data-t-page-overflow"]) <= 0 and body["data-t-squeezed"] == "0"
    shot = tmp_path / "first-screen.png"
    _chromium(out / "report.html", tmp_path / "profile2", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_cle_terminal_labels_percent_where_json_has_proportions(monkeypatch, capsys, tmp_path):
    """The CLE commands print P@k, MRR and coverage x 100 on the terminal: the header says %, JSON has proportions."""
    from xling.cle.simulate import simulate_pair, write_pair

    write_pair(simulate_pair(300, 8, 0.1, 0.0, seed=5, n_train=100, n_test=100), tmp_path / "pair")
    d = tmp_path / "pair"
    args = ["cle", "run", "-m", "proc", "--src", d / "src.vec", "--tgt", d / "tgt.vec", "--train-dict"]
    args += [d / "train.tsv", "--test-dict", d / "test.tsv"]
    code, out, err = run_xling(monkeypatch, capsys, *args, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert 0 < result["mrr"] <= 1 and 0 < result["coverage"] <= 1
    monkeypatch.setenv("COLUMNS", "160")
    code, out, err = run_xling(monkeypatch, capsys, *args)
    assert code == 0, err
    header = next(line for line in out.splitlines() if "P@1" in line)
    assert all(f"{col} %" in header for col in ("P@1", "P@5", "P@10", "MRR", "coverage"))
    assert f"{100 * result['mrr']:.2f}" in out
