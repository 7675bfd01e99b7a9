"""Training rows for `tfcaf tune`: `tfcaf dataset` JSONL files (the issue-9 row schema) and their selection.

A row is one JSON object per line with at least `id`, `task`, `messages` (the exact chat messages sent),
`response` (the raw answer) and `reward` (the tiered reward in [0, 1]); `mode`, `relabeled`, `goal`,
`achieved`, `verdict` and `generator` are kept when present. Every store file is hostile: a malformed
line is a UsageError naming the file and the line, and nothing in a row is ever executed.

    rows = read_rows(Path("data.jsonl"))
    best = top_rows(rows, top=0.25)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfcaf.errors import UsageError

MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_LINE_CHARS = 2_000_000


@dataclass(frozen=True)
class Row:
    """One (prompt, response, reward) example."""

    id: str
    task: str
    messages: tuple[tuple[str, str], ...]
    """(role, content) pairs: the prompt exactly as it was sent."""
    response: str
    reward: float
    mode: str = "code"
    relabeled: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def chat(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "task": self.task, "messages": self.chat, "response": self.response,
                "reward": self.reward, "mode": self.mode, "relabeled": self.relabeled, **self.extra}


def _row(obj: Any, where: str) -> Row:
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: expected a JSON object (a dataset row).")
    for key, kind in (("id", str), ("task", str), ("response", str), ("messages", list)):
        if not isinstance(obj.get(key), kind):
            raise UsageError(f"{where}: '{key}' must be a {kind.__name__} (see the dataset row schema).")
    reward = obj.get("reward")
    if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not math.isfinite(reward) or not 0 <= reward <= 1:
        raise UsageError(f"{where}: 'reward' must be a number in [0, 1].")
    messages = []
    for m in obj["messages"]:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise UsageError(f"{where}: every message must be {{'role': system|user|assistant, 'content': str}}.")
        messages.append((m["role"], m["content"]))
    if not messages:
        raise UsageError(f"{where}: 'messages' is empty.")
    extra = {k: obj[k] for k in ("goal", "achieved", "verdict", "generator", "source", "relabeled_from") if k in obj}
    return Row(obj["id"], obj["task"], tuple(messages), obj["response"], float(reward), str(obj.get("mode") or "code"),
               bool(obj.get("relabeled", False)), extra)


def read_rows(path: Path) -> list[Row]:
    """Every row of a dataset JSONL file (blank lines skipped); UsageError on anything malformed."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise UsageError(f"--data {path}: {err.strerror}.") from None
    if size > MAX_FILE_BYTES:
        raise UsageError(f"--data {path}: {size} bytes is over the {MAX_FILE_BYTES} byte limit.")
    rows: list[Row] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                if len(line) > MAX_LINE_CHARS:
                    raise UsageError(f"{path}:{n}: line longer than {MAX_LINE_CHARS} characters.")
                try:
                    obj = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    raise UsageError(f"{path}:{n}: not valid JSON.") from None
                rows.append(_row(obj, f"{path}:{n}"))
    except UnicodeDecodeError:
        raise UsageError(f"--data {path}: not UTF-8 text.") from None
    if not rows:
        raise UsageError(f"--data {path}: no rows.")
    return rows


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def rows_sha256(rows: list[Row]) -> str:
    """Order-independent hash of rows (what the manifest records for online data)."""
    h = hashlib.sha256()
    for line in sorted(json.dumps(r.to_json(), sort_keys=True) for r in rows):
        h.update(line.encode())
    return h.hexdigest()


def top_rows(rows: list[Row], top: float = 0.25, min_reward: float = 0.0) -> list[Row]:
    """RFT's selection: per task, the rows whose reward is in the top `top` fraction and above
    `min_reward` (ties at the cut are kept; relabelled rows compete like any other)."""
    if not 0 < top <= 1:
        raise UsageError(f"--rft-top must be in (0, 1], got {top}.")
    out: list[Row] = []
    for task in sorted({r.task for r in rows}):
        mine = sorted((r for r in rows if r.task == task), key=lambda r: -r.reward)
        cut = mine[max(0, math.ceil(top * len(mine)) - 1)].reward
        out.extend(r for r in mine if r.reward >= cut and r.reward > min_reward)
    return out
