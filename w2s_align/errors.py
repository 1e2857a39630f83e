r"""The one exception type for user mistakes, and how a library's error is quoted in its message.

Example:

```python
>>> from w2s_align.errors import first_line
>>> first_line(ValueError("no such file\nTraceback details"))
'no such file'
>>> first_line(KeyError())
'KeyError'
```
"""


class W2SInputError(Exception):
    """Bad input from the user: a recipe key, a value's type, a dataset column, a data line, a model path.

    The command line prints the message alone (no traceback) and exits with code 2, before any training starts. The
    message names the file, key or line at fault.
    """


def first_line(error: BaseException) -> str:
    """The first line of `error`'s message (a library's message can run to a page), or its type's name without one."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
