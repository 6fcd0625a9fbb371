"""The one exception type that users see as a single line instead of a traceback."""


class GantoolError(Exception):
    """An error caused by input the user can fix: bad path, unknown name, incompatible file.

    The CLI prints ``Error: <message>`` and exits non-zero; library callers can catch it.
    """


class PluginError(GantoolError):
    """A plugin misbehaved; the message names the plugin."""


class MissingExtra(GantoolError):
    """An optional part is not installed (e.g. ``gantool[faces]``); the message says how to
    get it. Evaluate skips a figure that raises it, with that one line."""
