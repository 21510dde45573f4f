"""Errors that the CLI reports to the user as one line rather than as a crash."""


class UserError(Exception):
    """A mistake the user can fix (a bad path, a malformed config, a bad value).

    The CLI prints its message as a single line prefixed with ``error:``, without a traceback, and
    exits with status 2, so keep the message to one line that names what to fix.
    """
