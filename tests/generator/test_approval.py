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
