"""The one exception type users see.

Anything that is the user's input being wrong (a missing folder, a csv with the wrong columns,
a wav that is not audio) raises :class:`AmtError` with a message that names the file and the
problem. The command line prints it as one line, ``amt: error: <message>``, and exits with 2.
"""


class AmtError(Exception):
    """A user-facing error, reported as one line without a traceback."""
