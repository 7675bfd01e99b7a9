"""Shareable artifacts: approved functions, tuned generators and datasets as self-describing folders.

An exported artifact is a folder::

    <out>/artifact.json     {"format": "tfcaf-artifact/1", "kind", "name", "files": [{"path", "sha256", "bytes"}],
                             "exported_at", "versions"}
    <out>/files/...         the artifact's files, byte for byte (e.g. an approved function's source.py,
                            graph.json, manifest.json; a generator's adapter folder; a dataset's JSONL)

The exporter is generic over "a store folder of files": kind -> <store>/<KINDS[kind]>/<name>/, so a tuned
generator folder (<store>/generators/NAME/) exports the same way as an approved function. `import_artifact`
verifies everything before anything lands in the store: artifact.json is UTF-8 JSON text of bounded size,
the file list matches the folder exactly, no symlinks or special files, no absolute paths or '..', every
sha256 matches. A refused import raises RejectedError with one line and writes nothing.

Note on trust: an imported approved function keeps its exporter's manifest (approver, hashes), and
`load_approved` re-verifies those hashes before training; importing is itself a person's decision.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from tfcaf.errors import RejectedError, UsageError
from tfcaf.store import store_dir, write_atomic

FORMAT = "tfcaf-artifact/1"
KINDS = {"function": "approved", "generator": "generators", "dataset": "datasets"}
"""Artifact kind -> its folder in the store."""
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILES = 10_000


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(f"artifact name {ascii(name)} must be 1-64 letters, digits, '_', '.', '-' (starting with a letter or digit)")
    return name


def _walk(root: Path) -> list[str]:
    """Relative POSIX paths of the regular files under root; refuses symlinks and special files."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for entry in dirnames + filenames:
            full = Path(dirpath) / entry
            mode = os.lstat(full).st_mode
            rel = full.relative_to(root).as_posix()
            if stat.S_ISLNK(mode):
                raise RejectedError(f"artifact refused: {ascii(rel)} is a symlink")
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise RejectedError(f"artifact refused: {ascii(rel)} is not a regular file")
            if stat.S_ISREG(mode):
                out.append(rel)
    return sorted(out)


def export_artifact(kind: str, name: str, out: Path, store: str | os.PathLike | None = None) -> Path:
    """Copy <store>/<kind folder>/<name>/ to `out` with artifact.json; returns `out`."""
    if kind not in KINDS:
        raise UsageError(f"unknown artifact kind '{kind}'. Use one of {', '.join(KINDS)}.")
    src = store_dir(store) / KINDS[kind] / _check_name(name)
    if not src.is_dir():
        raise UsageError(f"no {kind} '{name}' in {src.parent}.")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty; export into a new folder.")
    files = []
    for rel in _walk(src):
        target = out / "files" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)
        files.append({"path": rel, "sha256": sha256_file(target), "bytes": target.stat().st_size})
    if not files:
        raise UsageError(f"{kind} '{name}' has no files to export.")
    from tfcaf.provenance import versions

    doc = {"format": FORMAT, "kind": kind, "name": name, "files": files,
           "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions()}
    write_atomic(out / "artifact.json", json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return out


def read_artifact(folder: Path) -> dict[str, Any]:
    """Parse and verify an artifact folder (no store writes); returns its artifact.json. RejectedError if hostile."""
    folder = Path(folder)
    path = folder / "artifact.json"
    if folder.is_symlink() or not folder.is_dir():
        raise RejectedError(f"artifact refused: {ascii(str(folder))} is not a folder")
    if path.is_symlink() or not path.is_file():
        raise RejectedError(f"artifact refused: {ascii(str(folder))} has no artifact.json (a regular file)")
    raw = path.read_bytes()
    if len(raw) > MAX_MANIFEST_BYTES:
        raise RejectedError(f"artifact refused: artifact.json is larger than {MAX_MANIFEST_BYTES} bytes")
    if b"\x00" in raw:
        raise RejectedError("artifact refused: artifact.json is binary (NUL bytes)")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise RejectedError(f"artifact refused: artifact.json is not UTF-8 JSON ({type(err).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RejectedError(f"artifact refused: artifact.json is not {FORMAT}")
    if doc.get("kind") not in KINDS:
        raise RejectedError(f"artifact refused: unknown kind {ascii(doc.get('kind'))}")
    try:
        _check_name(doc.get("name"))
    except UsageError as err:
        raise RejectedError(f"artifact refused: {err}") from None
    files = doc.get("files")
    if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES:
        raise RejectedError("artifact refused: 'files' must be a non-empty list")
    listed: dict[str, str] = {}
    for entry in files:
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("sha256"), str)):
            raise RejectedError("artifact refused: every file entry needs a string 'path' and 'sha256'")
        rel = entry["path"]
        parts = PurePosixPath(rel).parts
        if (not rel or rel.startswith("/") or "\\" in rel or ".." in parts or "." in parts or rel != PurePosixPath(rel).as_posix()
                or any(not p.isprintable() for p in rel) or ":" in rel):
            raise RejectedError(f"artifact refused: unsafe file path {ascii(rel)}")
        if rel in listed:
            raise RejectedError(f"artifact refused: {ascii(rel)} listed twice")
        if not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
            raise RejectedError(f"artifact refused: {ascii(rel)} has a malformed sha256")
        listed[rel] = entry["sha256"]
    files_dir = folder / "files"
    if files_dir.is_symlink() or not files_dir.is_dir():
        raise RejectedError("artifact refused: files/ is missing or a symlink")
    present = _walk(files_dir)
    if set(present) != set(listed):
        extra, missing = sorted(set(present) - set(listed)), sorted(set(listed) - set(present))
        raise RejectedError(f"artifact refused: files differ from artifact.json (unlisted: {ascii(extra[:3])}, missing: {ascii(missing[:3])})")
    for rel, digest in listed.items():
        if sha256_file(files_dir / rel) != digest:
            raise RejectedError(f"artifact refused: sha256 of {ascii(rel)} does not match artifact.json")
    return doc


def import_artifact(folder: Path, store: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Verify an artifact folder, then copy its files to <store>/<kind folder>/<name>/ (atomically)."""
    doc = read_artifact(Path(folder))
    target = store_dir(store) / KINDS[doc["kind"]] / doc["name"]
    if target.exists() and not force:
        raise UsageError(f"{doc['kind']} '{doc['name']}' exists in the store already ({target}); pass --force to replace it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{doc['name']}.", dir=target.parent))
    try:
        for entry in doc["files"]:
            dest = tmp / entry["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(folder) / "files" / entry["path"], dest)
            if sha256_file(dest) != entry["sha256"]:  # changed between the check and the copy
                raise RejectedError(f"artifact refused: {ascii(entry['path'])} changed while importing")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
