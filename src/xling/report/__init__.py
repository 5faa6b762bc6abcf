"""Figures, HTML and LaTeX for both protocols: ``run_analysis`` writes a transfer analysis (``write``), ``cle``
a CLE grid's report, into the same self-contained page (``html``)."""

from xling.report.write import run_analysis

__all__ = ["run_analysis"]
