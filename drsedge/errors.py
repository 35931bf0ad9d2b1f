"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class DrsedgeError(Exception):
    """Bad user input (file, folder, checkpoint, config). ``str(err)`` is the whole message: what and what to do."""
