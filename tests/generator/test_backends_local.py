"""The in-process backends: llama.cpp (xllamacpp + SmolLM2) and transformers (a tiny random model built
here, no downloads); the backend registry."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from llm_server import require_llm  # noqa: E402

from tfcaf.errors import UsageError  # noqa: E402
from tfcaf.generator.backends import BACKENDS, Backend, BackendSettings, make_backend  # noqa: E402


def test_registry_and_unknown_backend():
    assert set(BACKENDS) == {"local", "openai", "transformers"}
    assert BACKENDS["local"].default_mode == "spec" and BACKENDS["local"].offline
    with pytest.raises(UsageError, match="unknown backend"):
        make_backend(BackendSettings(name="carrier-pigeon"))


@pytest.mark.llm
def test_local_backend_answers_with_schema_constrained_json():
    require_llm()
    backend = make_backend(BackendSettings(name="local"))
    try:
        assert isinstance(backend, Backend)
        schema = {"type": "object", "properties": {"temperature": {"type": "number"}, "mask_dead": {"type": "boolean"}},
                  "required": ["temperature", "mask_dead"], "additionalProperties": False}
        done = backend.complete([{"role": "user", "content": "Give a temperature."}], max_tokens=40, seed=1,
                                temperature=0.7, json_schema=schema)
        data = json.loads(done.text)
        assert set(data) == {"temperature", "mask_dead"} and isinstance(data["mask_dead"], bool)
        assert done.prompt_tokens > 0 and 0 < done.completion_tokens <= 40 and done.latency_s > 0
        again = backend.complete([{"role": "user", "content": "Give a temperature."}], max_tokens=40, seed=1,
                                 temperature=0.7, json_schema=schema)
        assert again.text == done.text  # seeded: a re-run asks and gets the same
        # token log-probs: one per generated token, real log-probabilities
        assert done.logprobs is not None and len(done.logprobs) == done.completion_tokens
        assert all(t["logprob"] <= 0.0 for t in done.logprobs)
        assert "".join(t["token"] for t in done.logprobs) == done.text
    finally:
        backend.close()


@pytest.mark.llm
def test_local_backend_identity_hashes_the_gguf_once(tmp_path):
    import hashlib

    from tfcaf.generator.backends import identity

    require_llm()
    backend = make_backend(BackendSettings(name="local", sha256_cache=str(tmp_path)))
    try:
        ident = identity(backend)
        digest = hashlib.sha256(backend.path.read_bytes()).hexdigest()
        assert ident["model_sha256"] == digest and ident["backend"] == "local"
        assert (tmp_path / "sha256.json").is_file() and digest in (tmp_path / "sha256.json").read_text()
        assert ident["effective_defaults"]["n_ctx"] == 8192 and "top_k" in ident["effective_defaults"]
        assert ident["packages"]["xllamacpp"]
    finally:
        backend.close()


def test_local_backend_bad_model_path_is_usage(tmp_path):
    pytest.importorskip("xllamacpp")
    with pytest.raises(UsageError, match="no such GGUF"):
        make_backend(BackendSettings(name="local", model=str(tmp_path / "missing.gguf")))


def _tiny_model(path: Path, chat_template: bool) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = ["def QLLMNetwork(agents_q, global_state): return torch.sum(agents_q, dim=1, keepdim=True)",
              "user: write a credit function assistant: import torch", "{\"weights\": {}, \"temperature\": 1.0}"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<eos>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")
    if chat_template:
        fast.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    fast.save_pretrained(path)
    config = GPT2Config(vocab_size=len(fast), n_positions=512, n_embd=32, n_layer=1, n_head=2,
                        eos_token_id=fast.eos_token_id, bos_token_id=fast.eos_token_id)
    import torch

    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(path)
    return path


@pytest.mark.parametrize("chat_template", [True, False])
def test_transformers_backend_on_a_tiny_local_model(tmp_path, chat_template):
    path = _tiny_model(tmp_path / "tiny", chat_template)
    backend = make_backend(BackendSettings(name="transformers", model=str(path)))
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "write a credit function"}]
    first = backend.complete(messages, max_tokens=12, temperature=0.8, seed=5)
    second = backend.complete(messages, max_tokens=12, temperature=0.8, seed=5)
    assert first.text == second.text and first.completion_tokens <= 12 and first.prompt_tokens > 5
    assert first.model == "tiny"
    greedy = backend.complete(messages, max_tokens=6, temperature=0.0)
    assert greedy.completion_tokens <= 6
    backend.close()


def test_transformers_backend_needs_a_directory(tmp_path):
    with pytest.raises(UsageError, match="--model"):
        make_backend(BackendSettings(name="transformers"))
    with pytest.raises(UsageError, match="not a directory"):
        make_backend(BackendSettings(name="transformers", model=str(tmp_path / "nope")))
