"""The self-contained HTML report: figures embedded as base64 PNG, heatmaps and sortable tables in
inline HTML/JS, nothing fetched from the network."""

from __future__ import annotations

import base64
import html
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Template
from matplotlib import colormaps, colors

MAX_ROWS = 60


def fmt(value: object) -> str:
    """Numbers to 3 decimals (integers as is), booleans and text unchanged."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return ""
        return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 1000 else f"{value:.3f}"
    return str(value)


def fmt_ci(lo: float, hi: float, digits: int = 2) -> str:
    """``[+a, +b]``, or ``n/a`` for an interval that cannot vary (NaN ends)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "n/a"
    return f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"


def empty_html(name: str, why: str = "") -> str:
    """One line in place of a table without rows (``why``: the reason, if known)."""
    reason = f" ({html.escape(why)})" if why else ""
    return f'<p class="empty small"><code>{html.escape(name)}</code>: no rows{reason}.</p>'


def table_html(df: pd.DataFrame, name: str, max_rows: int = MAX_ROWS) -> str:
    """A sortable HTML table (first ``max_rows`` rows; the CSV has all) in a container that scrolls when it is
    wider than the page; a table without rows is one line (``empty_html``)."""
    if df.empty:
        return empty_html(name)
    shown = df.head(max_rows)
    numeric = [pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in shown.dtypes]
    text = ' class="text"'
    head = "".join(f"<th{'' if num else text}>{html.escape(str(c))}</th>" for c, num in zip(shown.columns, numeric))
    rows = []
    for rec in shown.itertuples(index=False):
        tds = []
        for v in rec:
            numeric = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            cls = "" if numeric else ' class="text"'
            data = f' data-v="{float(v)!r}"' if numeric and np.isfinite(v) else ""
            tds.append(f"<td{cls}{data}>{html.escape(fmt(v))}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    note = (
        f'<p class="small">first {max_rows} of {len(df)} rows; all in <code>tables/{name}.csv</code></p>'
        if len(df) > max_rows
        else f'<p class="small"><code>tables/{name}.csv</code></p>'
    )
    return (
        f'<div class="scroll"><table class="data" id="t-{html.escape(name)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>{note}"
    )


def figure_html(png: Path, caption: str) -> str:
    """An embedded PNG figure (base64 data URI)."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f'<figcaption class="small">{html.escape(caption)} (also <code>figures/{png.stem}.svg</code>)'
        "</figcaption></figure>"
    )


def heatmap_html(pairs: pd.DataFrame, labels: list[str], title: str) -> str:
    """An interactive heatmap: hover a cell for its mean, 95% CI (and how it was made) and n; diagonal blank."""
    if pairs.empty:
        return ""
    lim = float(np.nanmax(np.abs(pairs["mean"]))) or 1.0
    cmap, norm = colormaps["RdBu"], colors.Normalize(-lim, lim)
    lookup = {(r.source, r.target): r for r in pairs.itertuples(index=False)}
    head = "".join(f'<th class="col">{html.escape(t)}</th>' for t in labels)
    rows = []
    for s in labels:
        tds = []
        for t in labels:
            r = lookup.get((s, t))
            if r is None or s == t:
                tds.append('<td style="background:#f4f4f4"></td>')
                continue
            color = colors.to_hex(cmap(norm(r.mean)))
            varies = np.isfinite(r.ci_low) and np.isfinite(r.ci_high)
            lo, hi = (f"{r.ci_low:.2f}", f"{r.ci_high:.2f}") if varies else ("", "")
            ci = f"95% CI [{lo}, {hi}] ({r.ci_method})" if varies else f"no CI: {r.ci_method}"
            tds.append(
                f'<td style="background:{color}" data-src="{html.escape(s)}" data-tgt="{html.escape(t)}" '
                f'data-n="{int(r.n)}" data-mean="{r.mean:.2f}" data-lo="{lo}" data-hi="{hi}" '
                f'data-ci="{html.escape(ci)}"></td>'
            )
        rows.append(f"<tr><th>{html.escape(s)}</th>{''.join(tds)}</tr>")
    return (
        f'<h3>{html.escape(title)}</h3><p class="small">rows: source, columns: target; blue = gain, red = harm; '
        f'hover a cell for n, mean and 95% CI</p><div class="hscroll"><table class="heat"><thead><tr><th></th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def render(
    title: str, subtitle: str, coverage_html: str, notes: list[str], sections: list[dict], findings_html: str = ""
) -> str:
    """Fill the page template (``template.html``); ``findings_html`` comes first, right under the title."""
    template = Template((resources.files("xling.report") / "template.html").read_text(encoding="utf-8"))
    return template.render(
        title=title,
        subtitle=subtitle,
        findings_html=findings_html,
        coverage_html=coverage_html,
        notes=notes,
        sections=sections,
    )
