"""Jinja templates as lm-evaluation-harness renders them, in a sandbox (user YAML is not trusted code)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from xling.errors import XlingError


def _regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, string, count=count)


@lru_cache(maxsize=1)
def _env():
    from jinja2 import BaseLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters["regex_replace"] = _regex_replace
    return env


@lru_cache(maxsize=256)
def _compile(template: str):
    return _env().from_string(template)


def render(template: str, doc: dict[str, Any], where: str) -> str:
    """Render ``template`` with the fields of ``doc``; a missing field or syntax error names ``where``."""
    from jinja2 import TemplateError

    try:
        return _compile(template).render(**doc)
    except TemplateError as err:
        raise XlingError(f"{where}: template {template!r}: {err}") from None
