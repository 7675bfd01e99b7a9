"""Layer 1, the text gate: from a raw LLM response to one Python module's source.

Covers: exactly one fenced python block (or a bare module that parses), size caps, control and
bidirectional-override characters (Trojan Source), invisible characters, characters viewers split
lines on and Python does not (form feed, VT, lone CR, NEL, U+2028/2029), and confusable identifiers:
every identifier must be ASCII (a Cyrillic 'а' in 'agents_q', or a Cyrillic 'х' beside a Latin 'x').
Does not cover: what the code does (the AST gate and later layers), confusables inside strings or
comments (harmless to execution; a reviewer still reads them).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import unicodedata

from tfcaf.sandbox.verdict import Rejection

MAX_TEXT_CHARS = 200_000
"""Largest raw response accepted."""
MAX_SOURCE_CHARS = 20_000
"""Largest extracted module accepted."""
MAX_SOURCE_LINES = 400

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+.-]*)[^\n]*$", re.M)
_PY_TAGS = {"", "python", "py", "python3"}
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
         "\u200e", "\u200f", "\u061c"}


def _reject(reason: str) -> Rejection:
    return Rejection("text", "text", reason)


def _fenced_blocks(text: str) -> list[tuple[str, str]] | None:
    """(tag, body) of each fenced block, or None when the text has no fence at all."""
    fences = list(_FENCE.finditer(text))
    if not fences:
        return None
    blocks: list[tuple[str, str]] = []
    i = 0
    while i < len(fences):
        opening = fences[i]
        closer = None
        for j in range(i + 1, len(fences)):
            f = fences[j]
            if f.group(1)[0] == opening.group(1)[0] and len(f.group(1)) >= len(opening.group(1)) and not f.group(2):
                closer = j
                break
        if closer is None:
            raise _reject(f"unclosed code fence at line {text.count(chr(10), 0, opening.start()) + 1}")
        body = text[opening.end() + 1:fences[closer].start()]
        blocks.append((opening.group(2).lower(), body))
        i = closer + 1
    return blocks


_LINE_BREAKS = {"\x0b": "vertical tab", "\x0c": "form feed", "\r": "carriage return", "\x1c": "file separator",
                "\x1d": "group separator", "\x1e": "record separator", "\x85": "next line (NEL)",
                "\u2028": "line separator", "\u2029": "paragraph separator"}
"""Characters that some viewers (and `str.splitlines`) treat as a line break and Python does not (or
the reverse, a lone CR): a reviewer would see different lines than the ones that run."""


def check_characters(source: str) -> None:
    """Reject control, bidi-override and invisible characters anywhere in the source.

    Only `\n` breaks lines and only `\t` is allowed as a control character: a form feed, vertical tab,
    lone CR, NEL or U+2028/2029 is rejected, so every viewer splits the code where Python does."""
    for lineno, line in enumerate(source.split("\n"), 1):
        for ch in line:
            if ch in _BIDI:
                raise _reject(f"bidirectional control character U+{ord(ch):04X} at line {lineno} (Trojan Source)")
            if ch in _LINE_BREAKS:
                raise _reject(f"{_LINE_BREAKS[ch]} U+{ord(ch):04X} at line {lineno}: viewers and Python disagree on "
                              "where lines break around it; use plain newlines")
            cat = unicodedata.category(ch)
            if ch == "\t":
                continue
            if cat in ("Cc", "Cf", "Cs", "Co", "Cn") or ch in "\u2028\u2029":
                raise _reject(f"invisible or control character U+{ord(ch):04X} at line {lineno}")


def _script(ch: str) -> str:
    if ch.isascii():
        return "LATIN" if ch.isalpha() else ""
    if not ch.isalpha():
        return ""
    name = unicodedata.name(ch, "")
    return name.split(" ")[0] if name else "UNKNOWN"


def check_identifiers(source: str) -> None:
    """Reject every non-ASCII identifier.

    Names a person reads must be the names that run: a Cyrillic 'х' next to a Latin 'x' is a second
    variable that looks like the first, within one script as well as across scripts (a TR39 skeleton
    check would catch most such pairs; plain ASCII catches all of them, and credit functions need no
    other names). Comments and strings may hold any printable Unicode."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        tokens = None
    if tokens is None:  # the parser reports it with a line number; still refuse a non-ASCII name first
        for lineno, line in enumerate(source.split("\n"), 1):
            for word in re.findall(r"[^\W\d]\w*", line):
                if not word.isascii():
                    raise _reject(f"non-ASCII identifier {word!r} at line {lineno}: identifiers must be plain ASCII "
                                  "(letters, digits, '_') so that the names a reviewer reads are the names that run")
        return
    for tok in tokens:
        if tok.type != tokenize.NAME or tok.string.isascii():
            continue
        name = tok.string
        detail = ""
        if unicodedata.normalize("NFKC", name) != name:
            detail = f"; NFKC turns it into {unicodedata.normalize('NFKC', name)!r}"
        else:
            scripts = {s for s in (_script(c) for c in name) if s}
            if len(scripts) > 1:
                detail = f"; it mixes scripts ({', '.join(sorted(scripts))})"
        raise _reject(f"non-ASCII identifier {name!r} at line {tok.start[0]}: identifiers must be plain ASCII "
                      f"(letters, digits, '_') so that the names a reviewer reads are the names that run{detail}")


def extract_source(text: str) -> str:
    """The one Python module in an LLM response: exactly one fenced python block, or a bare module.

    Raises `Rejection` (status 'text') with a readable reason otherwise.

    >>> extract_source("Here:\\n```python\\ndef QLLMNetwork(agents_q, global_state):\\n    return agents_q.sum(-1, keepdim=True)\\n```\\n")
    'def QLLMNetwork(agents_q, global_state):\\n    return agents_q.sum(-1, keepdim=True)\\n'
    """
    if not isinstance(text, str):
        raise _reject(f"expected text, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise _reject(f"response too long ({len(text)} characters, limit {MAX_TEXT_CHARS})")
    text = text.replace("\r\n", "\n")
    if "\x00" in text:
        raise _reject("NUL character in the response")
    blocks = _fenced_blocks(text)
    if blocks is None:
        source = text
    else:
        python = [body for tag, body in blocks if tag in _PY_TAGS]
        if len(blocks) != 1 or len(python) != 1:
            tags = ", ".join(tag or "untagged" for tag, _ in blocks)
            raise _reject(f"expected exactly one fenced python code block, found {len(blocks)} ({tags})")
        source = python[0]
    if not source.strip():
        raise _reject("no code: the response is empty")
    if len(source) > MAX_SOURCE_CHARS or source.count("\n") > MAX_SOURCE_LINES:
        raise _reject(f"code too long ({len(source)} characters, {source.count(chr(10))} lines; limits "
                      f"{MAX_SOURCE_CHARS} and {MAX_SOURCE_LINES})")
    check_characters(source)
    check_identifiers(source)
    try:
        ast.parse(source)
    except SyntaxError as err:
        where = f" at line {err.lineno}" if err.lineno else ""
        hint = "" if blocks is not None else " (no fenced ```python block found, so the whole response was read as code)"
        raise _reject(f"syntax error{where}: {err.msg}{hint}") from None
    except (ValueError, RecursionError, MemoryError) as err:
        raise _reject(f"the code does not parse: {type(err).__name__}") from None
    return source
