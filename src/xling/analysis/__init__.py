"""Results tables -> statistics: the donor-recipient transfer analysis with uncertainty (pure: tables in, tables
out; ``xling.report.run_analysis`` writes them).

Entry points: ``analyze_results(results_df)`` and ``headline_table(results_df)``; ``results.read_results`` reads
tables; ``cle`` relates BLI to downstream scores.
"""

from xling.analysis.pipeline import Analysis, analyze, analyze_results, headline_table, prepare

__all__ = ["Analysis", "analyze", "analyze_results", "headline_table", "prepare"]
