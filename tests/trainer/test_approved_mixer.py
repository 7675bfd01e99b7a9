"""`--mixer tfcaf:NAME`: training through an approved function's rebuilt graph, and tamper refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tfcaf.errors import RejectedError, UsageError
from tfcaf.provenance import sha256_bytes, sha256_text
from tfcaf.tasks.registry import get_card
from tfcaf.trainer.config import TrainConfig, resolve_config
from tfcaf.trainer.mixers import build_mixer
from tfcaf.trainer.run import Run

SOURCE = '''def QLLMNetwork(agents_q, global_state):
    w = torch.softmax(agents_q, dim=-1)
    return (agents_q * (1.0 + w)).sum(dim=-1, keepdim=True)
'''


def trusted_fn(agents_q, global_state):
    w = torch.softmax(agents_q, dim=-1)
    return (agents_q * (1.0 + w)).sum(dim=-1, keepdim=True)


def approve_fixture(store: Path, name: str = "soft_focus", task: str = "matrix_penalty", source: str = SOURCE) -> Path:
    """Write an approved-function folder the way `tfcaf approve` does (source, graph, manifest with hashes)."""
    from tfcaf.sandbox.export import export_graph
    from tfcaf.sandbox.graph import graph_digest

    card = get_card(task)
    graph = export_graph(trusted_fn, card.n_agents, card.state_dim)
    folder = store / "approved" / name
    folder.mkdir(parents=True)
    (folder / "source.py").write_text(source)
    (folder / "graph.json").write_text(json.dumps(graph, sort_keys=True))
    (folder / "manifest.json").write_text(json.dumps({"format": "tfcaf-approved/1", "name": name, "task": task,
                                                      "source_sha256": sha256_text(source),
                                                      "graph_sha256": graph_digest(graph)}))
    return folder


def test_approved_graph_mixer_matches_the_function_and_has_no_parameters(tmp_path):
    approve_fixture(tmp_path)
    card = get_card("matrix_penalty")
    mixer = build_mixer("tfcaf:soft_focus", card, TrainConfig(), store=tmp_path)
    assert mixer.n_params == 0 and mixer.name == "tfcaf:soft_focus"
    assert set(mixer.hashes) == {"source_sha256", "graph_sha256", "manifest_sha256"}
    assert mixer.hashes["manifest_sha256"] == sha256_bytes((tmp_path / "approved" / "soft_focus" / "manifest.json").read_bytes())
    q, s = torch.randn(3, 4, 2), torch.ones(3, 4, 1)
    expected = trusted_fn(q.reshape(12, 2), s.reshape(12, 1)).reshape(3, 4, 1)
    assert torch.allclose(mixer.module(q, s), expected, atol=1e-6)
    q.requires_grad_(True)
    mixer.module(q, s).sum().backward()  # gradients flow to the agents through the graph
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_training_with_an_approved_function_records_its_hashes(tmp_path):
    folder = approve_fixture(tmp_path)
    cfg, _ = resolve_config("matrix", flags={"steps": 512, "tensorboard": False, "test_interval": 256})
    run = Run.start("matrix_penalty", "tfcaf:soft_focus", cfg, store=tmp_path)
    summary = run.train()
    prov = json.loads((run.path / "provenance.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert prov["mixer_hashes"]["graph_sha256"] == manifest["graph_sha256"]
    assert summary["mixer_params"] == 0 and summary["updates"] > 0


def test_tampered_graph_or_source_is_refused(tmp_path):
    folder = approve_fixture(tmp_path)
    card = get_card("matrix_penalty")
    graph = json.loads((folder / "graph.json").read_text())
    (folder / "graph.json").write_text(json.dumps(graph) + " ")
    build_mixer("tfcaf:soft_focus", card, TrainConfig(), store=tmp_path)  # whitespace is not a change of the graph
    graph["nodes"].append(dict(graph["nodes"][-1], name="extra"))
    (folder / "graph.json").write_text(json.dumps(graph))
    with pytest.raises(RejectedError, match="graph.json changed"):
        build_mixer("tfcaf:soft_focus", card, TrainConfig(), store=tmp_path)
    folder2 = approve_fixture(tmp_path, "other")
    (folder2 / "source.py").write_text(SOURCE + "# edited\n")
    with pytest.raises(RejectedError, match="source.py changed"):
        build_mixer("tfcaf:other", card, TrainConfig(), store=tmp_path)


def test_resume_refuses_a_function_reapproved_with_other_hashes(tmp_path):
    folder = approve_fixture(tmp_path)
    cfg, _ = resolve_config("matrix", flags={"steps": 256, "tensorboard": False})
    run = Run.start("matrix_penalty", "tfcaf:soft_focus", cfg, store=tmp_path)
    run.train()
    # A new approval under the same name: consistent hashes, but not what this run trained with.
    import shutil

    shutil.rmtree(folder)
    approve_fixture(tmp_path, source=SOURCE + "# v2\n")
    with pytest.raises(RejectedError, match="no longer matches"):
        Run.resume(str(run.path), store=tmp_path)


def test_function_for_another_task_is_refused(tmp_path):
    approve_fixture(tmp_path, task="matrix_climbing")
    with pytest.raises(UsageError, match="approved for task 'matrix_climbing'"):
        build_mixer("tfcaf:soft_focus", get_card("matrix_penalty"), TrainConfig(), store=tmp_path)
