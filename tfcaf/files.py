"""One safe reader for the store's files: JSON, JSON lines and text.

Everything in a store may have been written (or edited) by someone else: a hostile candidate's
worker, a cloned repository, a torn write. Every read goes through here and ends in a value of the
expected type or in one error line that names the file:

- `UsageError` (exit 2): the file is missing, not a regular file, or unreadable (the user pointed at
  the wrong place);
- `RejectedError` (exit 1): the file is there but its content is not acceptable: binary / not UTF-8,
  larger than the limit, not valid JSON, a `NaN` / `Infinity` literal, nested deeper than
  `MAX_DEPTH`, or a JSON value of the wrong type (e.g. a list where an object belongs).

    manifest = read_json(folder / "manifest.json", "manifest")          # -> dict
    events = read_jsonl(run / "events.jsonl", "event log")              # -> list[dict]
    source = read_text(folder / "source.py", "approved source")         # -> str
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from tfcaf.errors import RejectedError, UsageError

MAX_JSON_BYTES = 64 * 1024 * 1024
"""Largest JSON / JSON-lines file read (a compiled graph with its constants is the largest: ~MBs)."""
MAX_TEXT_BYTES = 1024 * 1024
"""Largest text file read (a candidate's source is capped at 20 kB by the text gate)."""
MAX_DEPTH = 64
"""Deepest nesting of JSON arrays/objects accepted (store files nest < 10 deep)."""

_TYPE_NAMES = {dict: "a JSON object", list: "a JSON array", str: "a string", int: "an integer",
               float: "a number", bool: "true/false"}


def _shown(path: Path) -> str:
    from tfcaf.display import inert

    return inert(str(path))


def read_bytes(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of regular file `path`; UsageError when missing/unreadable, RejectedError when too big
    (or a symlink, with `follow_symlinks=False`)."""
    path = Path(path)
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        raise UsageError(f"{what} {_shown(path)} does not exist.") from None
    except OSError as err:
        raise UsageError(f"cannot read {what} {_shown(path)}: {err.strerror or err}.") from None
    if stat.S_ISLNK(st.st_mode):
        raise RejectedError(f"{what} {_shown(path)} is a symbolic link; refusing to follow it.")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{what} {_shown(path)} is not a regular file.")
    if st.st_size > max_bytes:
        raise RejectedError(f"{what} {_shown(path)} is {st.st_size} bytes, larger than the limit of {max_bytes}.")
    try:
        flags = os.O_RDONLY | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as err:
        raise UsageError(f"cannot read {what} {_shown(path)}: {err.strerror or err}.") from None
    if len(data) > max_bytes:
        raise RejectedError(f"{what} {_shown(path)} is larger than the limit of {max_bytes} bytes.")
    return data


def decode_text(data: bytes, path: Path, what: str) -> str:
    """UTF-8 text of `data`; RejectedError naming the file for binary content (invalid UTF-8 or NUL)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RejectedError(f"{what} {_shown(path)} is not UTF-8 text (byte {err.start}).") from None
    if "\x00" in text:
        raise RejectedError(f"{what} {_shown(path)} is binary (contains NUL bytes).")
    return text


def read_text(path: Path, what: str, max_bytes: int = MAX_TEXT_BYTES, **kwargs: Any) -> str:
    """UTF-8 text of `path` (see the module docstring for the errors)."""
    return decode_text(read_bytes(path, what, max_bytes, **kwargs), Path(path), what)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"the literal {name} is not valid JSON")


def _finite_float(text: str) -> float:
    import math

    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is not finite")
    return value


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return False
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def _nesting_ok(text: str, limit: int) -> bool:
    """Bracket depth outside strings, before parsing (a 200k-deep file must not reach the parser)."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def parse_json(text: str, path: Path, what: str, expect: type | tuple[type, ...] | None = dict,
               max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text strictly (no NaN/Infinity, depth <= max_depth, top-level type `expect`)."""
    if (text.count("[") + text.count("{")) > max_depth and not _nesting_ok(text, max_depth):
        raise RejectedError(f"{what} {_shown(path)} is nested deeper than {max_depth} levels.")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as err:
        raise RejectedError(f"{what} {_shown(path)} is not valid JSON ({err.msg} at line {err.lineno}).") from None
    except ValueError as err:
        raise RejectedError(f"{what} {_shown(path)} is not valid JSON ({err}).") from None
    except RecursionError:
        raise RejectedError(f"{what} {_shown(path)} is nested too deeply.") from None
    if not _depth_ok(value, max_depth):
        raise RejectedError(f"{what} {_shown(path)} is nested deeper than {max_depth} levels.")
    if expect is not None and not isinstance(value, expect):
        wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in (expect if isinstance(expect, tuple) else (expect,)))
        raise RejectedError(f"{what} {_shown(path)} must hold {wanted}, not {type_name(value)}.")
    return value


def type_name(value: Any) -> str:
    """The JSON name of a parsed value's type ('a JSON array', 'null', ...)."""
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def read_json(path: Path, what: str, expect: type | tuple[type, ...] | None = dict, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """The JSON value in `path`, of type `expect` (default: an object)."""
    path = Path(path)
    return parse_json(decode_text(read_bytes(path, what, max_bytes, **kwargs), path, what), path, what, expect, max_depth)


def read_jsonl(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH,
               strict: bool = False) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one per line.

    A line that is not a JSON object is skipped (a torn last line after a kill, garbage written by
    someone else) unless `strict`, where it is a RejectedError naming the line. Binary content, an
    oversized file or an unreadable one are errors either way."""
    path = Path(path)
    text = decode_text(read_bytes(path, what, max_bytes), path, what)
    out = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(parse_json(line, path, what, dict, max_depth))
        except RejectedError as err:
            if strict:
                raise RejectedError(f"{err} (line {lineno})") from None
    return out


def finite_number(value: Any) -> bool:
    """True for an int/float that is finite (bools excluded)."""
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plain(value: Any) -> Any:
    """`value` with every non-finite float written as the string 'nan' / 'inf' / '-inf' (the card's
    convention), so what the store writes is strict JSON that `parse_json` reads back (a NaN in a
    counterexample or a metric would otherwise make its whole line unreadable)."""
    import dataclasses
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps of `plain(value)`: strict JSON (allow_nan=False) for every file the store writes."""
    return json.dumps(plain(value), allow_nan=False, **kwargs)
