"""One seam for every LLM: the `Backend` protocol, the `Completion` it returns, and the `BACKENDS` registry.

A backend turns chat messages into text::

    backend = make_backend(BackendSettings(name="local"))
    done = backend.complete([{"role": "user", "content": "Say hi"}], max_tokens=8, seed=1)
    done.text, done.prompt_tokens, done.completion_tokens, done.latency_s

Sampling keywords every backend understands: `temperature`, `top_p`, `max_tokens`, `seed` and
`json_schema` (a JSON schema dict the answer must follow: a grammar for llama.cpp, `response_format`
for OpenAI-compatible servers; backends that cannot constrain decoding ignore it and the caller's
parser decides). Failures outside the model's answer raise `InfrastructureError` (exit code 3).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tfcaf.errors import UsageError
from tfcaf.plugins import load, register_into

Message = dict[str, str]
"""One chat message: {"role": "system"|"user"|"assistant", "content": str}."""


@dataclass(frozen=True)
class Completion:
    """One answer of an LLM, with its accounting."""

    text: str
    """The assistant message's text (may be empty)."""
    prompt_tokens: int
    """Tokens the prompt cost (as the backend counted them)."""
    completion_tokens: int
    """Tokens generated."""
    latency_s: float
    """Wall time of the call, retries included."""
    model: str
    """The model that answered."""
    raw: dict[str, Any] = field(default_factory=dict)
    """Backend-specific extras (finish reason, timings), JSON-serialisable."""
    cached: bool = False
    """True when the answer came from the response cache (no call was made)."""

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "latency_s": self.latency_s, "model": self.model, "raw": self.raw}

    @classmethod
    def from_json(cls, data: dict[str, Any], cached: bool = False) -> "Completion":
        return cls(text=str(data["text"]), prompt_tokens=int(data["prompt_tokens"]),
                   completion_tokens=int(data["completion_tokens"]), latency_s=float(data["latency_s"]),
                   model=str(data["model"]), raw=dict(data.get("raw") or {}), cached=cached)


@runtime_checkable
class Backend(Protocol):
    """What the generate loop and the critic need from an LLM."""

    name: str
    model: str

    def complete(self, messages: list[Message], **sampling: Any) -> Completion:
        """Answer `messages`; raise InfrastructureError when the LLM cannot be reached."""
        ...

    def close(self) -> None:
        """Release the model or the connection."""
        ...


@dataclass(frozen=True)
class BackendSettings:
    """How to reach one LLM (a slice of the generate config)."""

    name: str = "local"
    """Registry key: 'local', 'openai' or 'transformers'."""
    model: str | None = None
    """Model name (openai), GGUF path (local, default: the SmolLM2 GGUF) or model directory (transformers)."""
    base_url: str | None = None
    """OpenAI-compatible endpoint (openai backend)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (openai backend)."""
    timeout_s: float = 60.0
    """Per-request timeout in seconds (openai backend)."""
    max_retries: int = 3
    """Retries after a 429, a 5xx or a connection error (openai backend)."""
    threads: int = 1
    """CPU threads (local and transformers backends)."""
    context: int = 8192
    """Context window in tokens (local backend), shared by its two slots (coder and evaluator)."""
    device: str = "cpu"
    """torch device (transformers backend)."""


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend: where its class lives and what suits it."""

    name: str
    factory: str
    """'module:Class', constructed as Class(settings)."""
    description: str
    default_mode: str
    """'code' or 'spec': what the loop uses when the user does not say."""
    offline: bool
    """True when it runs with no network at all."""


BACKENDS: dict[str, BackendSpec] = {}


def register_builtin_backends(register) -> None:
    """The built-in backends, through the same hook a `tfcaf.backends` plugin offers (see `tfcaf.plugins`)."""
    for spec in _BUILTIN_BACKENDS:
        register(spec)


_BUILTIN_BACKENDS = (
    BackendSpec( "local", "tfcaf.generator.backend_local:LocalBackend",
                         "embedded llama.cpp (xllamacpp) with the SmolLM2-135M-Instruct GGUF, in process, offline",
                         default_mode="spec", offline=True),
    BackendSpec("openai", "tfcaf.generator.backend_openai:OpenAIBackend",
                          "any OpenAI-compatible endpoint through the official openai SDK",
                          default_mode="code", offline=False),
    BackendSpec("transformers", "tfcaf.generator.backend_transformers:TransformersBackend",
                                "a local Hugging Face model directory (transformers, no downloads)",
                                default_mode="code", offline=True),
)
register_backend = register_into(BACKENDS, "backend", lambda spec: spec.name)
load("backends", register_builtin_backends, register_backend, lambda spec: spec.name, BackendSpec, BACKENDS)


def get_backend_spec(name: str) -> BackendSpec:
    if name not in BACKENDS:
        raise UsageError(f"unknown backend '{name}'. Known backends: {', '.join(sorted(BACKENDS))}.")
    return BACKENDS[name]


def make_backend(settings: BackendSettings) -> Backend:
    """Construct the backend `settings.name` names (imports its module only now)."""
    spec = get_backend_spec(settings.name)
    module_name, _, attr = spec.factory.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls(settings)


def schema_response_format(schema: dict[str, Any], name: str = "answer") -> dict[str, Any]:
    """The OpenAI `response_format` for a JSON schema."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
