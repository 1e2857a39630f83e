"""Chat templates as TRL's `chat_template_path` names them: a Jinja file's text, checked before anything trains by
rendering a one-turn conversation with transformers' own renderer (its sandbox, filters and `raise_exception`). Imports
neither torch nor a model, so that a recipe's template is checked with the recipe.

Example:

```python
>>> from w2s_align.chat_templates import check_chat_template
>>> check_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}", "chat_template_path t.jinja")
>>> check_chat_template("{% for m in messages %}", "chat_template_path t.jinja")  # doctest: +ELLIPSIS
Traceback (most recent call last):
w2s_align.errors.W2SInputError: chat_template_path t.jinja: not a valid Jinja template (line 1: Unexpected end of ...)
```
"""

from __future__ import annotations

from pathlib import Path

from .errors import W2SInputError, first_line

JINJA_SUFFIXES = (".jinja", ".j2")  # what TRL reads as a template file; any other path names a tokenizer to copy

# The conversation a chat template must render: the prompt with its generation prompt, then the whole exchange, as
# TRL renders a pair. The special tokens stand in for the tokenizer's (`apply_chat_template` passes them too).
_EXAMPLE_CHAT = [{"role": "user", "content": "Is the sky blue?"}, {"role": "assistant", "content": "Yes."}]
_SPECIAL_TOKENS = {
    name: f"<{name}>"
    for name in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
}


def check_chat_template(template: str, what: str) -> None:
    """Stop on a chat template that does not compile, or that raises when it renders a one-turn conversation, with
    one line that starts with `what`. Compiled and rendered by transformers' own `render_jinja_template` (its
    sandbox, filters and `raise_exception`), as `apply_chat_template` does; imports neither torch nor a model."""
    from jinja2 import TemplateSyntaxError
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        for messages, prompt in ((_EXAMPLE_CHAT[:1], True), (_EXAMPLE_CHAT, False)):
            render_jinja_template([messages], chat_template=template, add_generation_prompt=prompt, **_SPECIAL_TOKENS)
    except TemplateSyntaxError as error:  # unknown filters and tests included
        raise W2SInputError(f"{what}: not a valid Jinja template (line {error.lineno}: {error.message})") from None
    except Exception as error:  # a template is code: whatever it raises on a plain conversation, it raises in training
        raise W2SInputError(
            f"{what}: the chat template fails on a one-turn conversation ({type(error).__name__}: {first_line(error)})"
        ) from None


def read_chat_template_file(path: str | Path, what: str) -> str:
    """The text of the Jinja chat template file at `path`, checked by [`check_chat_template`]: a missing path, a
    directory, a file that is empty or not UTF-8 text, and a template that does not compile or render stop with one
    line that starts with `what`."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise W2SInputError(f"{what}: a directory, not a Jinja file")
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise W2SInputError(f"{what}: no such file") from None
    except UnicodeDecodeError:
        raise W2SInputError(f"{what}: not UTF-8 text (a binary file?)") from None
    except OSError as error:
        raise W2SInputError(f"{what}: cannot be read ({error.strerror or first_line(error)})") from None
    if "\x00" in text:  # valid UTF-8 that Jinja would copy into every prompt
        raise W2SInputError(f"{what}: not text (it holds NUL bytes: a binary file?)")
    if not text.strip():  # transformers takes an empty template for none
        raise W2SInputError(f"{what}: the file is empty")
    check_chat_template(text, what)
    return text
