"""Results tables -> statistics: the donor-recipient transfer analysis with uncertainty.

Entry points: ``run_analysis(results_df, out_dir, ...)`` (what ``xling analyze`` calls) and
``headline_table(results_df)``; ``results.read_results`` and ``results.aggregate_seeds`` read tables.
"""

from xling.analysis.pipeline import Analysis, analyze, headline_table, prepare, run_analysis

__all__ = ["Analysis", "analyze", "headline_table", "prepare", "run_analysis"]
