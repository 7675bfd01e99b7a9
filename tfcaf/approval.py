"""Approval: the only way a generated function becomes trusted. Never implicit.

`tfcaf approve RUN:CANDIDATE [--name NAME]` calls `approve`, which stores

    <store>/approved/<name>/source.py      the candidate's source, as vetted
    <store>/approved/<name>/graph.json     the compiled graph (plain JSON, allow-listed ATen ops)
    <store>/approved/<name>/manifest.json  sha256 of both, task, run, candidate, backend/model,
                                           versions, time and approver

The trainer loads approved functions with `load_approved`, which re-hashes both files and refuses
(RejectedError, exit code 1) anything that changed since approval, then rebuilds the graph with the
sandbox's allow-list (`load_graph`): training never executes candidate Python.

    path = approve(Path(".tfcaf/runs/smac_3m/RUN"), "r0-c1-a0", name="focus_fire", store=None)
    fn = load_approved("focus_fire")
    q_tot = fn.module(agents_q, global_state)   # [B, N], [B, S] -> [B, 1]
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfcaf.errors import RejectedError, TfcafError, UsageError
from tfcaf.provenance import sha256_text, versions
from tfcaf.store import store_dir

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""An approved name; always used with `fullmatch` (`$` would accept a trailing newline)."""
MANIFEST_FORMAT = "tfcaf-approved/1"


@dataclass(frozen=True)
class ApprovedFunction:
    """An approved credit function rebuilt from its graph (hashes verified)."""

    name: str
    task: str
    module: Any
    """torch.nn.Module: module(agents_q [B, N], global_state [B, S]) -> q_tot [B, 1]."""
    manifest: dict
    manifest_sha256: str = ""
    """sha256 of manifest.json's bytes (see `manifest_sha256`): training records it in its provenance."""


def _approved_root(store: Path | None) -> Path:
    return store_dir(store) / "approved"


def _approver() -> str:
    user = os.environ.get("USER") or os.environ.get("USERNAME")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _read_json(path: Path, what: str) -> Any:
    from tfcaf.files import read_json

    return read_json(path, what, dict, follow_symlinks=False)


def manifest_sha256(folder: Path) -> str:
    """sha256 of an approved function's manifest.json bytes, as training records it in its provenance.

    The manifest pins source.py and graph.json; this hash pins the manifest. Whoever can write the
    store can still rewrite all three consistently: the hash recorded at train time shows afterwards
    (and on `train --resume`) that the function is not the one that was trained."""
    from tfcaf.files import read_bytes
    from tfcaf.provenance import sha256_bytes

    return sha256_bytes(read_bytes(Path(folder) / "manifest.json", "manifest", follow_symlinks=False))


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"approved name {name!r} must be 1-64 characters of letters, digits, '_', '.', '-' "
                         "(starting with a letter or digit).")
    return name


def _write_folder(root: Path, name: str, files: dict[str, str], force: bool) -> Path:
    """Write `files` into <root>/<name> atomically: a temp folder renamed into place; an existing one
    (with `force`) is moved aside first and removed last, and restored if the swap fails. Nothing is
    left behind on failure. A symlink at the name is removed itself, never followed."""
    root.mkdir(parents=True, exist_ok=True)
    if root.is_symlink():
        raise RejectedError(f"{root} is a symbolic link; approved functions must live in the store itself.")
    target = root / name
    exists = target.is_symlink() or target.exists()
    if exists and not force:
        raise UsageError(f"an approved function named '{name}' exists already; pick another --name or pass --force to replace it.")
    tmp = root / f".{name}.tmp-{os.getpid()}-{os.urandom(3).hex()}"
    old = root / f".{name}.old-{os.getpid()}-{os.urandom(3).hex()}"
    moved = False
    try:
        tmp.mkdir()
        for fname, text in files.items():
            with open(tmp / fname, "x", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        if exists:
            os.rename(target, old)  # renames a symlink itself, never its target
            moved = True
        os.rename(tmp, target)
    except OSError as err:
        if moved and not (target.is_symlink() or target.exists()):
            os.rename(old, target)
            moved = False
        raise UsageError(f"cannot write approved function '{name}' under {root}: {err.strerror or err}.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved:
            if old.is_symlink() or not old.is_dir():
                old.unlink(missing_ok=True)
            else:
                shutil.rmtree(old, ignore_errors=True)
    return target


def approve(run_dir: Path, candidate_id: str, name: str | None = None, store: Path | None = None, *,
            force: bool = False) -> Path:
    """Store an accepted candidate of a run as approved function `name`; returns its directory.

    Refuses (RejectedError) a candidate that was not accepted, whose stored source no longer matches
    what was vetted, or whose graph does not rebuild; refuses (UsageError) an existing name unless
    `force`, an unknown candidate, or a bad name.
    """
    from tfcaf.rundir import RunDir
    from tfcaf.sandbox.graph import graph_digest, load_graph

    run = RunDir(Path(run_dir))
    if not run.events_path.is_file():
        raise UsageError(f"{run_dir} is not a generate run directory (no events.jsonl).")
    candidates = run.candidates()
    if candidate_id not in candidates:
        known = ", ".join(c for c, e in candidates.items() if e.get("accepted")) or "none"
        raise UsageError(f"run {run.run_id} has no candidate '{candidate_id}'. Accepted candidates: {known}.")
    verdict = run.verdict(candidate_id) or {}
    if verdict.get("verdict") != "accepted":
        reasons = "; ".join(verdict.get("reasons") or []) or "no reason recorded"
        raise RejectedError(f"candidate {candidate_id} was not accepted ({verdict.get('status')}: {reasons}); only accepted candidates can be approved.")
    source, graph = run.source(candidate_id), verdict.get("graph")
    if source is None or not isinstance(graph, dict):
        raise RejectedError(f"candidate {candidate_id} has no stored source or graph; it cannot be approved.")
    if verdict.get("source") is not None and sha256_text(verdict["source"]) != sha256_text(source):
        raise RejectedError(f"candidate {candidate_id}: source.py differs from the source that was vetted; refusing to approve.")
    load_graph(graph, "cpu")  # the trusted rebuild must work now, not first in the trainer
    name = _check_name(name if name is not None else f"{run.task}-{candidate_id}-{run.run_id[-6:]}")
    root = _approved_root(store)
    target = root / name
    if (target.is_symlink() or target.exists()) and not force:
        raise UsageError(f"an approved function named '{name}' exists already; pick another --name or pass --force to replace it.")
    config: dict = {}
    if (run.path / "config.json").is_file():
        config = _read_json(run.path / "config.json", "run config")
    cfg = config.get("config") if isinstance(config.get("config"), dict) else {}
    manifest = {
        "format": MANIFEST_FORMAT, "name": name, "task": run.task, "run_id": run.run_id, "run_dir": str(run.path),
        "candidate_id": candidate_id, "source_sha256": sha256_text(source), "graph_sha256": graph_digest(graph),
        "backend": cfg.get("backend"), "model": cfg.get("model"), "mode": config.get("mode"),
        "generator": cfg.get("generator"),  # the tuned generator (tfcaf tune) that wrote it, or None
        "verdict": {"status": verdict.get("status"), "metrics": verdict.get("metrics") or {}},
        "versions": versions(), "approved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "approver": _approver(),
    }
    target = _write_folder(root, name, {
        "source.py": source, "graph.json": json.dumps(graph, sort_keys=True),
        "manifest.json": json.dumps(manifest, indent=2, sort_keys=True) + "\n"}, force)
    run.append({"type": "approved", "cid": candidate_id, "name": name, "path": str(target)})
    return target


def list_approved(store: Path | None = None) -> list[dict]:
    """The manifests of every approved function, sorted by name (unreadable, malformed or symlinked
    ones are skipped; `load_approved` says what is wrong with one)."""
    from tfcaf.files import read_json

    root = _approved_root(store)
    out = []
    try:
        folders = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError:
        return []
    for folder in folders:
        if folder.is_symlink() or not folder.is_dir() or not _NAME.fullmatch(folder.name):
            continue
        try:
            manifest = read_json(folder / "manifest.json", "manifest", dict, follow_symlinks=False)
        except TfcafError:
            continue
        if manifest.get("name") == folder.name:
            out.append(manifest)
    return out


_HEX64 = re.compile(r"[0-9a-f]{64}")


def load_approved(name: str, store: Path | None = None, device: str = "cpu", task: str | None = None) -> ApprovedFunction:
    """Rebuild approved function `name` after verifying that it belongs where it was asked for.

    UsageError for an unknown or malformed name (listing the approved ones). RejectedError (exit 1,
    one line) when the folder is a symlink or resolves outside the store, when any file in it is a
    symlink, malformed or oversized, when the manifest's name (or `task`, when given) is not the one
    asked for, or when source.py / graph.json no longer match the manifest's hashes.
    """
    from tfcaf.files import read_text
    from tfcaf.sandbox.graph import graph_digest, load_graph

    root = _approved_root(store)
    folder = root / name if isinstance(name, str) else root
    if not isinstance(name, str) or not _NAME.fullmatch(name) or not (folder.is_symlink() or folder.exists()):
        names = ", ".join(str(m.get("name", "?")) for m in list_approved(store)) or "none yet (use `tfcaf approve RUN:CANDIDATE`)"
        raise UsageError(f"no approved function {name!r}. Approved: {names}.")
    if folder.is_symlink():
        raise RejectedError(f"approved function '{name}': {folder} is a symbolic link; approvals are refused "
                            "unless they are real folders in the store. Re-approve it.")
    try:
        inside = folder.resolve().parent == root.resolve()
    except (OSError, RuntimeError):
        inside = False
    if not inside or not folder.is_dir():
        raise RejectedError(f"approved function '{name}': {folder} is not a folder inside the store's approved/; re-approve it.")
    manifest = _read_json(folder / "manifest.json", "manifest")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise RejectedError(f"approved function '{name}': manifest format {manifest.get('format')!r} is not {MANIFEST_FORMAT}; re-approve it.")
    if manifest.get("name") != name:
        raise RejectedError(f"approved function '{name}': its manifest belongs to {manifest.get('name')!r} "
                            "(folders swapped or renamed); refusing it. Re-approve it under this name.")
    if not isinstance(manifest.get("task"), str) or (task is not None and manifest["task"] != task):
        raise RejectedError(f"approved function '{name}' was approved for task {manifest.get('task')!r}"
                            + (f", not '{task}'" if task is not None else "") + ".")
    for key in ("source_sha256", "graph_sha256"):
        if not isinstance(manifest.get(key), str) or not _HEX64.fullmatch(manifest[key]):
            raise RejectedError(f"approved function '{name}': manifest has no valid {key}; re-approve it.")
    source = read_text(folder / "source.py", f"approved function '{name}': source.py", follow_symlinks=False)
    if sha256_text(source) != manifest["source_sha256"]:
        raise RejectedError(f"approved function '{name}': source.py changed since approval (sha256 mismatch); re-approve it.")
    graph = _read_json(folder / "graph.json", f"approved function '{name}': graph")
    if graph_digest(graph) != manifest["graph_sha256"]:
        raise RejectedError(f"approved function '{name}': graph.json changed since approval (sha256 mismatch); re-approve it.")
    return ApprovedFunction(name=name, task=manifest["task"], module=load_graph(graph, device), manifest=manifest,
                            manifest_sha256=manifest_sha256(folder))
