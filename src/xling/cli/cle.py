"""Commands of the cle area (filled in by its issue)."""
