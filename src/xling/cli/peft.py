"""Commands of the peft area (filled in by its issue)."""
