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

from tfcaf.errors import RejectedError, UsageError
from tfcaf.provenance import sha256_text, versions
from tfcaf.store import store_dir

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MANIFEST_FORMAT = "tfcaf-approved/1"


@dataclass(frozen=True)
class ApprovedFunction:
    """An approved credit function rebuilt from its graph (hashes verified)."""

    name: str
    task: str
    module: Any
    """torch.nn.Module: module(agents_q [B, N], global_state [B, S]) -> q_tot [B, 1]."""
    manifest: dict


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
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read {what} {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise RejectedError(f"{what} {path} is not valid JSON ({err.msg})") from None


def approve(run_dir: Path, candidate_id: str, name: str | None = None, store: Path | None = None, *,
            force: bool = False) -> Path:
    """Store an accepted candidate of a run as approved function `name`; returns its directory.

    Refuses (RejectedError) a candidate that was not accepted, whose stored source no longer matches
    what was vetted, or whose graph does not rebuild; refuses (UsageError) an existing name unless
    `force`, an unknown candidate, or a bad name.
    """
    from tfcaf.generator.rundir import RunDir
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
    name = name or f"{run.task}-{candidate_id}-{run.run_id[-6:]}"
    if not _NAME.match(name):
        raise UsageError(f"approved name '{name}' must be 1-64 characters of letters, digits, '_', '.', '-' (starting with a letter or digit).")
    root = _approved_root(store)
    target = root / name
    if target.exists() and not force:
        raise UsageError(f"an approved function named '{name}' exists already; pick another --name or pass --force to replace it.")
    config = {}
    if (run.path / "config.json").is_file():
        config = _read_json(run.path / "config.json", "run config")
    cfg = config.get("config", {})
    manifest = {
        "format": MANIFEST_FORMAT, "name": name, "task": run.task, "run_id": run.run_id, "run_dir": str(run.path),
        "candidate_id": candidate_id, "source_sha256": sha256_text(source), "graph_sha256": graph_digest(graph),
        "backend": cfg.get("backend"), "model": cfg.get("model"), "mode": config.get("mode"),
        "generator": cfg.get("generator"),  # the tuned generator (tfcaf tune) that wrote it, or None
        "verdict": {"status": verdict.get("status"), "metrics": verdict.get("metrics") or {}},
        "versions": versions(), "approved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "approver": _approver(),
    }
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    (tmp / "source.py").write_text(source, encoding="utf-8")
    (tmp / "graph.json").write_text(json.dumps(graph, sort_keys=True), encoding="utf-8")
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    run.append({"type": "approved", "cid": candidate_id, "name": name, "path": str(target)})
    return target


def list_approved(store: Path | None = None) -> list[dict]:
    """The manifests of every approved function, sorted by name (unreadable ones are skipped)."""
    root = _approved_root(store)
    out = []
    for manifest in sorted(root.glob("*/manifest.json")):
        try:
            out.append(json.loads(manifest.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue
    return out


def load_approved(name: str, store: Path | None = None, device: str = "cpu") -> ApprovedFunction:
    """Rebuild approved function `name` after verifying both hashes.

    UsageError for an unknown name (listing the approved ones); RejectedError naming what changed when
    source.py or graph.json no longer match the manifest.
    """
    from tfcaf.sandbox.graph import graph_digest, load_graph

    folder = _approved_root(store) / name
    if not _NAME.match(name) or not (folder / "manifest.json").is_file():
        names = ", ".join(m.get("name", "?") for m in list_approved(store)) or "none yet (use `tfcaf approve RUN:CANDIDATE`)"
        raise UsageError(f"no approved function '{name}'. Approved: {names}.")
    manifest = _read_json(folder / "manifest.json", "manifest")
    try:
        source = (folder / "source.py").read_text(encoding="utf-8")
    except OSError:
        raise RejectedError(f"approved function '{name}': source.py is missing; re-approve it.") from None
    if sha256_text(source) != manifest.get("source_sha256"):
        raise RejectedError(f"approved function '{name}': source.py changed since approval (sha256 mismatch); re-approve it.")
    graph = _read_json(folder / "graph.json", "graph")
    if not isinstance(graph, dict) or graph_digest(graph) != manifest.get("graph_sha256"):
        raise RejectedError(f"approved function '{name}': graph.json changed since approval (sha256 mismatch); re-approve it.")
    return ApprovedFunction(name=name, task=str(manifest.get("task")), module=load_graph(graph, device), manifest=manifest)
