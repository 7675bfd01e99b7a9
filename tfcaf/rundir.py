"""Runs are data: one append-only directory per generate run (in the core: every stage reads runs).

Layout of `<store>/runs/<task>/<run-id>/`::

    config.json            the resolved config and where each setting came from
    card.json              the task card the prompts were rendered from
    versions.json          python / torch / RestrictedPython / ... versions
    events.jsonl           one JSON object per line, append-only (flushed and fsynced per line):
                           run_started, exchange, candidate, critique, selection, round_done, run_finished
    prompts/<id>.txt       each distinct rendered prompt (by sha256), kept once
    candidates/<cid>/      response.txt, source.py, verdict.json (written before the candidate event)
    summary.json           written at the end (a view of the events, never read back as truth)

A run killed with `kill -9` leaves at worst a torn last line in events.jsonl, which `load_events`
skips; `--resume` replays the loop with every LLM answer served from the run's own exchanges (then the
store cache), and candidates already in the log are reused, never vetted or stored twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

from tfcaf.errors import UsageError
from tfcaf.files import dumps
from tfcaf.store import write_atomic


class RunDir:
    """An append-only run directory. Create with `RunDir.create`, reopen with `RunDir.open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.events_path = self.path / "events.jsonl"

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def task(self) -> str:
        return self.path.parent.name

    @classmethod
    def create(cls, store: Path, task: str, run_id: str) -> "RunDir":
        path = Path(store) / "runs" / task / run_id
        if path.exists():
            raise UsageError(f"run directory {path} already exists; use --resume {run_id} to continue it.")
        path.mkdir(parents=True)
        (path / "candidates").mkdir()
        (path / "prompts").mkdir()
        return cls(path)

    @classmethod
    def open(cls, store: Path, ref: str, task: str | None = None) -> "RunDir":
        """Find a run by directory path, `<task>/<run-id>` or a bare run id (searched under every task)."""
        direct = Path(ref)
        if (direct / "events.jsonl").is_file():
            return cls(direct)
        runs = Path(store) / "runs"
        if "/" in ref and (runs / ref / "events.jsonl").is_file():
            return cls(runs / ref)
        tasks = [task] if task else sorted(p.name for p in runs.glob("*") if p.is_dir())
        found = [runs / t / ref for t in tasks if (runs / t / ref / "events.jsonl").is_file()]
        if len(found) == 1:
            return cls(found[0])
        if len(found) > 1:
            raise UsageError(f"run id '{ref}' exists for several tasks; write it as <task>/{ref}.")
        known = [f"{p.parent.name}/{p.name}" for p in sorted(runs.glob("*/*")) if (p / "events.jsonl").is_file()]
        hint = f" Known runs: {', '.join(known[-8:])}." if known else f" There are no runs under {runs}."
        raise UsageError(f"no run '{ref}' in the store {store}.{hint}")

    # -- writing ---------------------------------------------------------------------------------
    def append(self, event: dict[str, Any]) -> None:
        """Append one event (a JSON object with a 'type') as a line, flushed and fsynced."""
        record = {"time": round(time.time(), 3), **event}
        line = dumps(record, sort_keys=True, default=_json_default)
        with open(self.events_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def write_json(self, name: str, data: Any) -> None:
        write_atomic(self.path / name, dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")

    def write_text(self, name: str, text: str) -> None:
        write_atomic(self.path / name, text)

    def save_prompt(self, messages: list[dict[str, str]]) -> str:
        """Store a rendered prompt once, by content hash; returns its id."""
        blob = json.dumps(messages, ensure_ascii=False, indent=1)
        pid = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
        path = self.path / "prompts" / f"{pid}.json"
        if not path.exists():
            write_atomic(path, blob)
        return pid

    def save_schema(self, schema: dict[str, Any]) -> str:
        """Store a JSON schema once under prompts/schema-<sha256>.json; returns its sha256."""
        blob = json.dumps(schema, sort_keys=True, ensure_ascii=True)
        sid = hashlib.sha256(blob.encode("utf-8")).hexdigest()
        path = self.path / "prompts" / f"schema-{sid[:16]}.json"
        if not path.exists():
            write_atomic(path, blob)
        return sid

    def prompt(self, pid: str) -> list[dict[str, str]] | None:
        """The messages of a stored prompt id, or None."""
        path = self.path / "prompts" / f"{pid}.json"
        if not path.is_file():
            return None
        from tfcaf.files import read_json

        data = read_json(path, "stored prompt", expect=None)
        return data if isinstance(data, list) else None

    def candidate_dir(self, cid: str) -> Path:
        return self.path / "candidates" / cid

    # -- reading ---------------------------------------------------------------------------------
    def load_events(self) -> list[dict[str, Any]]:
        """Every complete event, in order; a torn last line (a kill mid-write) or any other line that
        is not a JSON object with a string 'type' is skipped (tfcaf.files: binary or oversized logs
        are a RejectedError naming the file)."""
        from tfcaf.files import read_jsonl

        if not self.events_path.is_file():
            return []
        return [e for e in read_jsonl(self.events_path, "event log") if isinstance(e.get("type"), str)]

    def events(self, kind: str) -> Iterator[dict[str, Any]]:
        return (e for e in self.load_events() if e.get("type") == kind)

    def read_json(self, name: str) -> Any:
        """A JSON object stored in the run (tfcaf.files: malformed content is one RejectedError)."""
        from tfcaf.files import read_json

        return read_json(self.path / name, f"run file {name}")

    def candidates(self) -> dict[str, dict[str, Any]]:
        """Candidate id -> its last candidate event (with critique and score merged in when present)."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.load_events():
            if e.get("type") == "candidate" and isinstance(e.get("cid"), str) and _CID.fullmatch(e["cid"]):
                out[e["cid"]] = dict(e)
            elif e.get("type") == "critique" and e.get("cid") in out:
                out[e["cid"]]["critique"] = e.get("critique")
            elif e.get("type") == "score" and e.get("cid") in out:
                out[e["cid"]]["score"] = e.get("score")
                for key in ("reward", "achieved", "fitness"):
                    if key in e:
                        out[e["cid"]][key] = e[key]
        return out

    def source(self, cid: str) -> str | None:
        from tfcaf.files import read_text

        path = self.candidate_dir(cid) / "source.py"
        return read_text(path, "candidate source") if _CID.fullmatch(cid) and path.is_file() else None

    def verdict(self, cid: str) -> dict[str, Any] | None:
        from tfcaf.files import read_json

        path = self.candidate_dir(cid) / "verdict.json"
        return read_json(path, "verdict") if _CID.fullmatch(cid) and path.is_file() else None

    def selected(self) -> str | None:
        """The id of the run's final selection (the last 'selection' event), if any."""
        chosen = None
        for e in self.load_events():
            if e.get("type") == "selection":
                chosen = e.get("selected") if isinstance(e.get("selected"), str) and _CID.fullmatch(e["selected"]) else None
        return chosen


_CID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A candidate id as the loop writes them (r0-c1-a0); anything else in an event log is ignored."""


def _json_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
