"""The report: every file written, self-contained HTML, atomic output; and a real headless browser check."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from xling.analysis.meta import AnalysisSpec
from xling.analysis.simulate import SimulationSpec, simulate_grid
from xling.report import run_analysis

pytestmark = pytest.mark.slow  # one analysis with mixed models and a browser run: ~10 s in all

SMALL = SimulationSpec(
    models=["Llama-3.2-1B", "Qwen2.5-1.5B", "gemma-3-4b", "Llama-3.1-8B"],
    tasks=["arc_challenge", "global_mmlu", "hellaswag"],
    languages=["en", "de", "ja", "hi", "ru"],
    n_seeds=2,
    seed=2,
)
MAIN = [
    "global_uplift",
    "regime_summary",
    "mtcl_harm_breakdown",
    "mtcl_by_construction_type",
    "language_donor_recipient",
    "task_donor_recipient",
    "task_transfer_matrix",
    "language_transfer_matrix",
    "pareto_profiles",
    "task_on_off_summary",
    "linguistic_correlations",
    "variance_crossed",
    "variance_mixedlm",
    "consistency_by_model",
    "consistency_by_family",
    "consistency_by_size",
    "consistency_by_size_bucket",
    "interval_methods",
    "language_roles_by_task_subset",
    "task_subset_agreement",
    "language_group_roles",
    "cell_significance",
    "significance_by_regime",
    "language_asymmetry",
    "cell_asymmetry",
    "named_roles",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rep") / "OUT"
    spec = AnalysisSpec(n_boot=200, language_groups={"european": ["en", "de", "ru"], "asian": ["ja", "hi"]})
    run_analysis(simulate_grid(SMALL), out, spec, mixed_models=True)
    return out


def test_every_table_figure_and_file_is_written(report):
    for name in MAIN:
        assert (report / "tables" / f"{name}.csv").is_file(), name
    assert (report / "tables" / "regime_summary.tex").read_text().lstrip().startswith("\\begin{tabular}")
    pngs = sorted(p.stem for p in (report / "figures").glob("*.png"))
    assert pngs == sorted(p.stem for p in (report / "figures").glob("*.svg")) and len(pngs) == 11
    assert (report / "summary.md").read_text().startswith("# Transfer analysis summary")
    record = json.loads((report / "run.json").read_text())
    assert record["config"]["n_boot"] == 200 and "statsmodels" in record["versions"] and record["coverage"]["complete"]
    header = (report / "tables" / "linguistic_correlations.csv").read_text().splitlines()[0]
    assert header.startswith("feature,spearman_rho,spearman_p,pearson_r,pearson_p,n")


def test_html_is_self_contained_with_all_figures_embedded(report):
    page = (report / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "<link" not in page and page.count('src="data:image/png;base64,') == 11
    assert page.count('class="heat"') == 2 and 'data-mean="' in page and 'data-lo="' in page and 'data-n="' in page
    assert page.count('class="data"') >= 20  # sortable tables


def test_failure_leaves_no_output(tmp_path, monkeypatch):
    import xling.report.write as write

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(write, "write_figures", boom)
    with pytest.raises(RuntimeError):
        run_analysis(simulate_grid(SMALL), tmp_path / "OUT", AnalysisSpec(n_boot=50), mixed_models=False)
    assert list(tmp_path.iterdir()) == []


def open_in_chromium(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless chromium; return the DOM after scripts ran and the console messages."""
    cmd = [
        shutil.which("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


def _body(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(1))) if tag else {}


@pytest.mark.browser
@pytest.mark.slow
def test_report_opens_in_headless_chromium(report, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed")
    # negative control: the check sees a script error and a broken figure
    bad = tmp_path / "bad.html"
    bad.write_text(
        (report / "report.html")
        .read_text()
        .replace("data:image/png;base64,", "data:image/png;base64,AA", 1)
        .replace("</body>", "<script>notDefined();</script></body>")
    )
    dom, console = open_in_chromium(bad, tmp_path / "bad")
    assert any("notDefined" in line for line in console)
    body = _body(dom)
    assert body.get("data-ready") == "1" and body["data-figures-loaded"] == "10" and body["data-figures-total"] == "11"

    dom, console = open_in_chromium(report / "report.html", tmp_path / "good")
    assert console == []
    body = _body(dom)
    n_figures = len(list((report / "figures").glob("*.png")))
    assert body.get("data-ready") == "1"
    assert body["data-figures-total"] == body["data-figures-loaded"] == str(n_figures)


# Clicks the "mean" header of regime_summary (ascending sort) and hovers a heatmap cell, then records the results.
_INTERACT = """<script>window.addEventListener("load", function () {
  document.querySelector("#t-regime_summary th:nth-child(3)").click();
  var first = document.querySelector("#t-regime_summary tbody tr td").textContent;
  var cell = document.querySelector("table.heat td[data-n]");
  cell.dispatchEvent(new MouseEvent("mousemove", {clientX: 5, clientY: 5, bubbles: true}));
  document.body.setAttribute("data-test-first", first);
  document.body.setAttribute("data-test-tip", document.getElementById("tip").textContent.replace(/\\n/g, " | "));
});</script></body>"""


@pytest.mark.browser
def test_report_tables_sort_and_heatmaps_hover_in_chromium(report, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed")
    page = tmp_path / "interact.html"
    page.write_text((report / "report.html").read_text().replace("</body>", _INTERACT))
    dom, console = open_in_chromium(page, tmp_path / "interact")
    assert console == []
    body = _body(dom)
    assert body["data-test-first"] == "CT-CL"  # lowest mean first after one click
    tip = body["data-test-tip"]
    assert "mean" in tip and "95% CI [" in tip and "n = " in tip and "pp" in tip
