"""Where tfcaf keeps its data: one store directory (default `./.tfcaf`).

Layout (each stage owns its sub-folder, everything append-only):

    <store>/runs/<task>/<run-id>/        generate runs (prompts, exchanges, candidates, verdicts)
    <store>/approved/<name>/             approved functions: source.py, graph.json, manifest.json
    <store>/train/<task>/<run-id>/       training runs (config, metrics, checkpoints)
    <store>/states/<task>.npz            recorded real states for property tests
    <store>/cache/                       LLM response cache

Precedence: an explicit `--store DIR` > `$TFCAF_STORE` > `./.tfcaf`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

DEFAULT_STORE = ".tfcaf"


def store_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The store directory (not created); UsageError when the path exists and is not a directory."""
    if explicit:
        path, origin = Path(explicit), "--store"
    elif os.environ.get("TFCAF_STORE"):
        path, origin = Path(os.environ["TFCAF_STORE"]), "$TFCAF_STORE"
    else:
        path, origin = Path(DEFAULT_STORE), "the default store"
    try:
        bad = path.exists() and not path.is_dir()
    except (OSError, ValueError):
        bad = True
    if bad:
        from tfcaf.display import inert
        from tfcaf.errors import UsageError

        raise UsageError(f"{origin} {inert(path)} is not a directory; point it at a store folder (it is created when missing).")
    return path


def new_run_id(prefix: str = "") -> str:
    """A sortable, unique run id: UTC time plus 6 random hex digits."""
    import datetime
    import secrets

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}{stamp}-{secrets.token_hex(3)}"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` so that readers see the old file or the whole new one, never a torn one
    (temp file in the same folder, fsync, rename); creates the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # threads write concurrently too
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
