"""Predict a transfer grid from a fraction of its training runs (pure: tables in, tables out).

``TransferPredictor(...).fit(table).predict()`` fills every unrun (model, source cell) pair with a delta and a
conformal interval; ``evaluate_predictors`` cross-validates it against an additive and a gradient-boosted baseline on
the same folds; ``initial_design`` and ``choose_next`` plan which pairs to run (the adaptive grid calls them).
"""

from xling.analysis.prediction.acquire import choose_next, initial_design
from xling.analysis.prediction.evaluate import evaluate_predictors
from xling.analysis.prediction.predictor import TransferPredictor

__all__ = ["TransferPredictor", "choose_next", "evaluate_predictors", "initial_design"]
