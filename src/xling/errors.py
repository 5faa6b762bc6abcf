"""The one exception type users see: a one-line message and exit code 2."""


class XlingError(Exception):
    """A user mistake (bad file, bad config, unknown name) reported as one line.

    The CLI prints ``error: <message>`` and exits with code 2, without a traceback.
    Messages name the file, line or field and what was expected vs found.
    """
