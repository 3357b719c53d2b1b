"""The edge runner's one error type: a mistake the user can fix, with a message saying how."""


class EdgeError(ValueError):
    """Bad model file, bad input or a request the model cannot serve.

    The CLI prints ``error: <message>`` and exits 2, with no traceback.
    """
