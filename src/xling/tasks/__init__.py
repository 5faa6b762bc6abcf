"""Multiple-choice tasks: items, loaders, prompt formats, built-in suites."""

from xling.tasks.items import MCItem, check_aligned

__all__ = ["MCItem", "check_aligned"]
