"""Commands of the grid area (filled in by its issue)."""
