"""The one exception type that CLIs turn into a one-line error and exit status 2."""


class GanEdgeError(Exception):
    """A problem the user can fix; the message says how."""
