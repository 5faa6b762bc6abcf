"""The one exception type users see: a one-line message and exit code 2."""


class XlingError(Exception):
    """A user mistake (bad file, bad config, unknown name) reported as one line.

    The CLI prints ``error: <message>`` and exits with code 2, without a traceback.
    Messages name the file, line or field and what was expected vs found.
    """


class XlingNote(UserWarning):
    """Something a user should know that does not stop the run (a cache skipped, a default applied).

    Raised with ``warnings.warn(..., XlingNote)``; the CLI prints it as one ``note: <message>`` line on stderr.
    """
