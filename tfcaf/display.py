"""Inert display of untrusted text: what a person sees is the characters that are there, nothing more.

Every string that came from a candidate, an LLM or a file in the store is hostile: it may carry
terminal control sequences (ESC `\\x1b[2J` clears the screen, OSC 8 writes hyperlinks, SGR 8 conceals
text), bidirectional overrides (Trojan Source), invisible format characters, line separators that a
viewer splits on but Python does not, or Rich markup (`[bold green]accepted[/]`, `[/x]` which makes
Rich raise). This module is the one place that renders such text:

- `inert(text)` -> str: every C0/C1 control, DEL, bidi control, other format (Cf), surrogate,
  private-use, unassigned, line/paragraph separator and NEL is written as a visible escape
  (`\\x1b`, `\\u202e`); `\\n` (and `\\t`) are kept only when asked for.
- `inert_text(text, style)` -> `rich.text.Text`: the same, as a Text, so Rich never parses markup in it.
- `inert_markup(text)` -> str: the same, with Rich markup escaped, for splicing into a markup string.
- `source_lines(text)`: a source split where Python's tokenizer splits it (`\\n` only after the text
  gate), each line made inert: what the review shows line by line is what runs line by line.

    >>> inert("ok\\x1b[2J\\u202e")
    'ok\\\\x1b[2J\\\\u202e'
    >>> inert_markup("[bold]x[/]")
    '\\\\[bold]x\\\\[/]'
"""

from __future__ import annotations

import unicodedata
from typing import Any

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def inert(text: Any, *, keep_newlines: bool = False, keep_tabs: bool | None = None) -> str:
    """`text` (anything: it is str()-ed) with every control / invisible character shown escaped.

    `keep_newlines` keeps `\\n` as a line break (for multi-line sources); `keep_tabs` (default: the
    same as `keep_newlines`) keeps `\\t`. Everything else that a terminal or a viewer could act on is
    written as `\\xNN` / `\\uNNNN`.
    """
    if not isinstance(text, str):
        try:
            text = str(text)
        except Exception:  # a hostile __str__ must not stop an error message
            text = f"<unprintable {type(text).__name__}>"
    if keep_tabs is None:
        keep_tabs = keep_newlines
    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines or ch == "\t" and keep_tabs:
            out.append(ch)
        elif _unsafe(ch):
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    return "".join(out)


def inert_markup(text: Any, **kwargs: Any) -> str:
    """`inert(text)` with Rich markup escaped: safe to splice into a string Rich renders as markup."""
    from rich.markup import escape

    return escape(inert(text, **kwargs))


def inert_text(text: Any, style: str = "", **kwargs: Any) -> "Any":
    """`inert(text)` as a `rich.text.Text` (markup is never parsed in a Text)."""
    from rich.text import Text

    return Text(inert(text, **kwargs), style=style)


def source_lines(text: str) -> list[str]:
    """`text` split on `\\n` only (the one line break the text gate lets into a candidate, the one
    Python breaks lines on), every line inert: form feeds, lone CRs, NEL or U+2028 show as escapes on
    the line where they are instead of starting a new line that Python would not see."""
    return [inert(line, keep_tabs=True) for line in str(text).split("\n")]


def source_text(text: str) -> str:
    """The whole source made inert with line breaks kept (`"\\n".join(source_lines(text))`)."""
    return "\n".join(source_lines(text))


def print_line(text: Any, *, file: Any = None) -> None:
    """print() one inert line (no Rich involved)."""
    import sys

    print(inert(text), file=file if file is not None else sys.stdout)
