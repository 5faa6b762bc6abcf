"""The exceptions users see: a one-line message and exit code 2; Ctrl-C with what was kept and exit code 130."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class XlingError(Exception):
    """A user mistake (bad file, bad config, unknown name) reported as one line.

    The CLI prints ``error: <message>`` and exits with code 2, without a traceback.
    Messages name the file, line or field and what was expected vs found.
    """


class XlingNote(UserWarning):
    """Something a user should know that does not stop the run (a cache skipped, a default applied).

    Raised with ``warnings.warn(..., XlingNote)``; the CLI prints it as one ``note: <message>`` line on stderr.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was kept and how to resume (``kept``): the CLI prints ``interrupted: <kept>``, exit 130."""

    def __init__(self, kept: str) -> None:
        super().__init__(kept)
        self.kept = kept


@contextmanager
def on_interrupt(describe: Callable[[], str]) -> Iterator[None]:
    """Turn a Ctrl-C inside the block into ``Interrupted(describe())``; an inner block's sentence is kept."""
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt:
        try:
            kept = describe()
        except Exception:  # the sentence is a courtesy: never hide the interrupt behind another error
            kept = "rerun the same command to resume or start again"
        raise Interrupted(kept) from None
