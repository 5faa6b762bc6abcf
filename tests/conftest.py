"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BLI_DATA = SHARED / "data" / "xling-eval-bli"


@pytest.fixture
def bli_data() -> Path:
    """The real xling-eval BLI dictionaries in ../shared, or skip when they are not there."""
    if not BLI_DATA.is_dir():
        pytest.skip("../shared/data/xling-eval-bli is not present")
    return BLI_DATA
