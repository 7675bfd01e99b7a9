"""Approval: explicit, hash-pinned, refuses rejected candidates and tampered files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tfcaf.approval import approve, list_approved, load_approved
from tfcaf.errors import RejectedError, UsageError


def test_real_run_has_a_rejected_and_accepted_candidates(real_run):
    store, summary = real_run
    assert summary["accepted"] == 2 and summary["selected"] in ("r0-c0-a1", "r0-c1-a0")
    run = Path(summary["run_dir"])
    assert json.loads((run / "candidates" / "r0-c0-a0" / "verdict.json").read_text())["verdict"] == "rejected"


def test_approve_then_load_rebuilds_the_graph(real_run, tmp_path):
    store, summary = real_run
    path = approve(Path(summary["run_dir"]), "r0-c1-a0", "weighted", tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["task"] == "matrix_climbing" and manifest["candidate_id"] == "r0-c1-a0"
    assert len(manifest["source_sha256"]) == 64 and len(manifest["graph_sha256"]) == 64 and manifest["approver"]
    fn = load_approved("weighted", tmp_path)
    q = torch.tensor([[1.0, 2.0], [-1.0, 4.0]])
    assert torch.allclose(fn.module(q, torch.ones(2, 1)), torch.tensor([[3.5], [5.5]]))
    assert [m["name"] for m in list_approved(tmp_path)] == ["weighted"]


def test_rejected_candidates_cannot_be_approved(real_run, tmp_path):
    store, summary = real_run
    with pytest.raises(RejectedError, match="not accepted"):
        approve(Path(summary["run_dir"]), "r0-c0-a0", "nope", tmp_path)
    assert list_approved(tmp_path) == []


def test_existing_name_needs_force_and_unknown_candidate_is_usage(real_run, tmp_path):
    store, summary = real_run
    run = Path(summary["run_dir"])
    approve(run, "r0-c1-a0", "x", tmp_path)
    with pytest.raises(UsageError, match="--force"):
        approve(run, "r0-c0-a1", "x", tmp_path)
    approve(run, "r0-c0-a1", "x", tmp_path, force=True)
    assert load_approved("x", tmp_path).manifest["candidate_id"] == "r0-c0-a1"
    with pytest.raises(UsageError, match="no candidate 'r9-c9-a9'"):
        approve(run, "r9-c9-a9", "y", tmp_path)
    with pytest.raises(UsageError, match="must be"):
        approve(run, "r0-c1-a0", "../escape", tmp_path)


@pytest.mark.parametrize("victim", ["source.py", "graph.json"])
def test_tampering_is_refused_naming_the_file(real_run, tmp_path, victim):
    store, summary = real_run
    path = approve(Path(summary["run_dir"]), "r0-c1-a0", "t", tmp_path)
    target = path / victim
    if victim == "graph.json":
        graph = json.loads(target.read_text())
        graph["nodes"] = graph["nodes"][:-1] + graph["nodes"][-1:]
        graph["n_agents"] = 99
        target.write_text(json.dumps(graph))
    else:
        target.write_text(target.read_text() + "\n# changed\n")
    with pytest.raises(RejectedError, match=victim):
        load_approved("t", tmp_path)


def test_unknown_name_lists_the_approved(real_run, tmp_path):
    store, summary = real_run
    approve(Path(summary["run_dir"]), "r0-c1-a0", "known", tmp_path)
    with pytest.raises(UsageError, match="Approved: known"):
        load_approved("missing", tmp_path)


@pytest.mark.parametrize("bad", ["ok\n", "ok\r", "../x", "a/b", "", ".hidden", "x" * 65, "ok\x1b[2J"])
def test_names_must_match_whole(real_run, tmp_path, bad):
    store, summary = real_run
    with pytest.raises(UsageError):
        approve(Path(summary["run_dir"]), summary["selected"], bad or "\n", tmp_path)
    with pytest.raises(UsageError):
        load_approved(bad, store=tmp_path)


def _two(real_run, tmp_path):
    store, summary = real_run
    run = Path(summary["run_dir"])
    a = approve(run, "r0-c1-a0", "a", tmp_path)
    b = approve(run, "r0-c0-a1", "b", tmp_path)
    return a, b


def test_swapped_folders_are_refused(real_run, tmp_path):
    a, b = _two(real_run, tmp_path)
    a.rename(tmp_path / "approved" / "tmp")
    b.rename(a)
    (tmp_path / "approved" / "tmp").rename(b)
    for name in ("a", "b"):
        with pytest.raises(RejectedError, match="belongs to"):
            load_approved(name, tmp_path)


def test_symlinked_approvals_are_refused(real_run, tmp_path):
    a, b = _two(real_run, tmp_path)
    (tmp_path / "approved" / "c").symlink_to(b, target_is_directory=True)
    with pytest.raises(RejectedError, match="symbolic link"):
        load_approved("c", tmp_path)
    outside = tmp_path / "elsewhere"
    b.rename(outside)
    (tmp_path / "approved" / "b").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RejectedError, match="symbolic link"):
        load_approved("b", tmp_path)
    (a / "source.py").rename(a / "real.py")
    (a / "source.py").symlink_to(a / "real.py")
    with pytest.raises(RejectedError, match="symbolic link"):
        load_approved("a", tmp_path)
    assert [m["name"] for m in list_approved(tmp_path)] == ["a"]


@pytest.mark.parametrize("content", [b"\x00\xff\xfe", b"[1, 2]", b'{"a": NaN}', b'{"name": ', b"[" * 200_000])
def test_corrupted_manifest_is_one_rejection(real_run, tmp_path, content):
    a, _ = _two(real_run, tmp_path)
    (a / "manifest.json").write_bytes(content)
    with pytest.raises(RejectedError, match="manifest"):
        load_approved("a", tmp_path)
    assert "a" not in [m["name"] for m in list_approved(tmp_path)]


def test_task_is_checked_when_asked(real_run, tmp_path):
    _two(real_run, tmp_path)
    assert load_approved("a", tmp_path, task="matrix_climbing").task == "matrix_climbing"
    with pytest.raises(RejectedError, match="approved for task"):
        load_approved("a", tmp_path, task="smac_3m")


def test_force_replaces_atomically_and_leaves_nothing(real_run, tmp_path):
    store, summary = real_run
    run = Path(summary["run_dir"])
    a, b = _two(real_run, tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("x")
    link = tmp_path / "approved" / "link"
    link.symlink_to(victim, target_is_directory=True)
    approve(run, "r0-c1-a0", "link", tmp_path, force=True)  # replaces the link itself, never its target
    assert (victim / "keep.txt").read_text() == "x" and not link.is_symlink()
    assert load_approved("link", tmp_path).manifest_sha256
    approve(run, "r0-c0-a1", "a", tmp_path, force=True)
    assert load_approved("a", tmp_path).manifest["candidate_id"] == "r0-c0-a1"
    leftovers = [p.name for p in (tmp_path / "approved").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_failed_write_leaves_no_temp_folder(real_run, tmp_path, monkeypatch):
    store, summary = real_run
    run = Path(summary["run_dir"])
    _two(real_run, tmp_path)
    import os as _os

    real_rename = _os.rename

    def failing(src, dst):
        if ".a.tmp-" in str(src):
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr("tfcaf.approval.os.rename", failing)
    with pytest.raises(UsageError, match="No space"):
        approve(run, "r0-c0-a1", "a", tmp_path, force=True)
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "approved").iterdir() if p.name.startswith(".")] == []
    assert load_approved("a", tmp_path).manifest["candidate_id"] == "r0-c1-a0"  # the old one is back


def test_manifest_hash_is_exposed(real_run, tmp_path):
    import hashlib

    from tfcaf.approval import manifest_sha256

    a, _ = _two(real_run, tmp_path)
    assert manifest_sha256(a) == hashlib.sha256((a / "manifest.json").read_bytes()).hexdigest()
    assert load_approved("a", tmp_path).manifest_sha256 == manifest_sha256(a)
