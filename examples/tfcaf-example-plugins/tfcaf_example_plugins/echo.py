"""A backend plugin: an "LLM" that answers with the last user message (simonw/llm's llm-echo idea).

Offline and instant: useful to test a pipeline's plumbing (prompts, logging, extraction, vetting) with
no model at all. Its answers are prompts, so the generate loop rejects them as candidates, as it should.
"""

from __future__ import annotations

import time
from typing import Any

from tfcaf.generator.backends import BackendSpec, Completion


class EchoBackend:
    """Backend protocol: `name`, `model`, `complete(messages, **sampling) -> Completion`, `close()`."""

    name = "echo"

    def __init__(self, settings) -> None:
        self.model = settings.model or "echo"

    def complete(self, messages: list[dict[str, str]], **sampling: Any) -> Completion:
        start = time.perf_counter()
        users = [m.get("content", "") for m in messages if m.get("role") == "user"]
        text = users[-1] if users else ""
        limit = sampling.get("max_tokens")
        words = text.split()
        if isinstance(limit, int) and limit > 0:
            words = words[:limit]
        prompt_tokens = sum(len(m.get("content", "").split()) for m in messages)
        return Completion(text=" ".join(words), prompt_tokens=prompt_tokens, completion_tokens=len(words),
                          latency_s=time.perf_counter() - start, model=self.model, raw={"finish_reason": "stop"})

    def close(self) -> None:
        pass


def register_backends(register) -> None:
    """The `tfcaf.backends` hook: call register(BackendSpec) once per backend."""
    register(BackendSpec("echo", "tfcaf_example_plugins.echo:EchoBackend",
                         "example plugin: answers with the last user message (offline, no model)",
                         default_mode="code", offline=True))
