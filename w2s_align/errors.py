"""The one exception type for user mistakes."""


class W2SInputError(Exception):
    """Bad input from the user: a recipe key, a value's type, a dataset column, a data line, a model path.

    The command line prints the message alone (no traceback) and exits with code 2, before any training starts. The
    message names the file, key or line at fault.
    """
