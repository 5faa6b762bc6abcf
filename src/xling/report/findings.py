"""The findings of an analysis (``xling.analysis.findings.Findings``) in words: the same sentences in HTML
(the top of ``report.html``), Markdown (``summary.md``) and on the terminal (``terminal.print_findings``)."""

from __future__ import annotations

import html

from xling.analysis.findings import REGIME_NAMES, Findings
from xling.report.html import fmt_ci

UNITS_LINE = (
    "Units: scores are proportions (0–1); deltas, their means, intervals and role scores are percentage points "
    "(pp); rates and shares are percent (0–100)."
)
REGIME_COLUMNS = ("regime", "what it is", "n", "mean", "95% CI", "interval from", "positive %", "harm %")


REGIMES_CAPTION = "MT-ML is the trained cell itself; MT-CL, CT-ML and CT-CL are transfer."


def regimes_legend() -> str:
    """``MT-ML = matched task, matched language (the trained cell itself); ...``."""
    return "; ".join(f"{r} = {name} ({meaning})" for r, (name, meaning) in REGIME_NAMES.items())


def scope_text(f: Findings) -> str:
    """``1 model (m), 4 tasks × 4 languages, 1 seed per cell; 256 of 256 cells (100.0 %); metric ...``."""
    s = f.scope
    names = s["model_names"]
    models = f"{s['models']} model{'' if s['models'] == 1 else 's'}"
    if names and len(names) <= 3:
        models += f" ({', '.join(names)})"
    seeds = f"{s['seeds_min']}" if s["seeds_min"] == s["seeds_max"] else f"{s['seeds_min']}–{s['seeds_max']}"
    plural = "" if s["seeds_max"] == 1 else "s"
    return (
        f"{models}, {s['tasks']} task{'' if s['tasks'] == 1 else 's'} × {s['languages']} "
        f"language{'' if s['languages'] == 1 else 's'}, {seeds} seed{plural} per cell; {s['cells']} of "
        f"{s['expected']} cells ({s['coverage']:.1f} %); metric {s['metric']} (fine-tuned − base, pp)."
    )


def regime_rows(f: Findings) -> list[tuple[str, ...]]:
    """One row of strings per regime, in ``REGIME_COLUMNS`` order."""
    return [
        (
            r["regime"],
            r["name"],
            str(int(r["n"])),
            f"{r['mean']:+.2f}",
            fmt_ci(r["ci_low"], r["ci_high"]),
            r["ci_method"],
            f"{r['positive_rate']:.1f}",
            f"{r['harm_rate']:.1f}",
        )
        for r in f.regimes
    ]


def role_text(r: dict, name: str) -> str:
    """``language NAME: hub donor, +7.15 pp [+5.71, +8.80]; method``; ``name`` is the (marked-up) name."""
    return (
        f"{r['kind']} {name}: {r['role']}, {r['score']:+.2f} pp {fmt_ci(r['ci_low'], r['ci_high'])}; {r['ci_method']}"
    )


NO_ROLES = "None: no language or task stands out beyond its uncertainty."


def findings_markdown(f: Findings) -> list[str]:
    """The findings as Markdown lines (``summary.md`` starts with them)."""
    lines = [
        "## Findings",
        "",
        scope_text(f),
        "",
        "### Transfer by regime",
        "",
        "| " + " | ".join(REGIME_COLUMNS) + " |",
        "|" + "---|" * len(REGIME_COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in regime_rows(f)]
    lines += ["", REGIMES_CAPTION]
    lines += ["", "### Named roles (CI of the deviation from the average excludes 0)", ""]
    if f.roles_basis:
        lines += [f.roles_basis, ""]
    lines += ["- " + role_text(r, "**" + str(r["name"]) + "**") for r in f.roles] or [NO_ROLES]
    if f.predicted:
        lines += ["", "### Predicted cells", "", f.predicted["text"]]
    lines += ["", "### What this run cannot support", ""]
    lines += [f"- {lim['what']}: {lim['why']}" for lim in f.limits] or ["Nothing: every analysis had what it needs."]
    return [*lines, "", UNITS_LINE]


def findings_html(f: Findings) -> str:
    """The findings section at the top of ``report.html``."""
    e = html.escape
    text = ' class="text"'
    head = "".join(f"<th{text if i in (0, 1, 5) else ''}>{e(c)}</th>" for i, c in enumerate(REGIME_COLUMNS))
    body = "".join(
        "<tr>" + "".join(f"<td{text if i in (0, 1, 5) else ''}>{e(v)}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in regime_rows(f)
    )
    roles = "".join("<li>" + role_text(_escaped(r), "<b>" + e(str(r["name"])) + "</b>") + "</li>" for r in f.roles)
    limits = "".join(f"<li><b>{e(lim['what'])}</b>: {e(lim['why'])}</li>" for lim in f.limits)
    return (
        '<section id="findings" class="findings"><h2>Findings</h2>'
        f'<p class="scope">{e(scope_text(f))}</p>'
        f'<h3>Transfer by regime</h3><div class="scroll"><table class="data" id="t-findings">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        f'<p class="small">{e(regimes_legend())}.</p>'
        '<h3>Named roles <span class="small">(CI of the deviation from the average excludes 0)</span></h3>'
        + (f'<p class="small">{e(f.roles_basis)}</p>' if f.roles_basis else "")
        + (f"<ul>{roles}</ul>" if roles else f"<p>{e(NO_ROLES)}</p>")
        + (f'<h3>Predicted cells</h3><p class="predicted">{e(f.predicted["text"])}</p>' if f.predicted else "")
        + "<h3>What this run cannot support</h3>"
        + (f'<ul class="limits">{limits}</ul>' if limits else "<p>Nothing: every analysis had what it needs.</p>")
        + f'<p class="small">{e(UNITS_LINE)}</p></section>'
    )


def _escaped(r: dict) -> dict:
    """A role row with its text fields HTML-escaped."""
    return {k: html.escape(v) if isinstance(v, str) else v for k, v in r.items()}
