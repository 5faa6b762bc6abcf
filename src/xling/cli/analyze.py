"""Commands of the analyze area (filled in by its issue)."""
