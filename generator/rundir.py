"""The LLM response cache and request keys of the generator; the run directory itself lives in the core
(`tfcaf.rundir`, re-exported here so old imports keep working).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tfcaf.generator.backends import Completion, Message
from tfcaf.rundir import RunDir
from tfcaf.store import write_atomic

__all__ = ["RunDir", "ResponseCache", "request_key"]


def request_key(backend: str, model: str, messages: list[Message], sampling: dict[str, Any]) -> str:
    """Cache key of one LLM request: sha256 over backend, model, messages and sampling (seed included)."""
    blob = json.dumps({"backend": backend, "model": model, "messages": messages, "sampling": sampling},
                      sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """`<store>/cache/llm/<key[:2]>/<key>.json`: one file per answered request, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Completion | None:
        path = self._path(key)
        try:
            return Completion.from_json(json.loads(path.read_text(encoding="utf-8")), cached=True)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, completion: Completion) -> None:
        write_atomic(self._path(key), json.dumps(completion.to_json()))
