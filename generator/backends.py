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
    logprobs: list[dict[str, Any]] | None = None
    """Per generated token {"id", "token", "logprob"} when the backend returns them, else None."""

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "latency_s": self.latency_s, "model": self.model, "raw": self.raw, "logprobs": self.logprobs}

    @classmethod
    def from_json(cls, data: dict[str, Any], cached: bool = False) -> "Completion":
        logprobs = data.get("logprobs")
        return cls(text=str(data["text"]), prompt_tokens=int(data["prompt_tokens"]),
                   completion_tokens=int(data["completion_tokens"]), latency_s=float(data["latency_s"]),
                   model=str(data["model"]), raw=dict(data.get("raw") or {}), cached=cached,
                   logprobs=list(logprobs) if isinstance(logprobs, list) else None)


def token_logprobs(choice: Any) -> list[dict[str, Any]] | None:
    """The OpenAI-style `choice.logprobs.content` (llama.cpp returns the same) as [{"id", "token", "logprob"}]."""
    lp = choice.get("logprobs") if isinstance(choice, dict) else getattr(choice, "logprobs", None)
    content = lp.get("content") if isinstance(lp, dict) else getattr(lp, "content", None)
    if not isinstance(content, list):
        return None
    out = []
    for item in content:
        get = item.get if isinstance(item, dict) else (lambda k, d=None, _i=item: getattr(_i, k, d))
        logprob = get("logprob")
        if not isinstance(logprob, (int, float)):
            return None
        out.append({"id": get("id"), "token": str(get("token", "")), "logprob": round(float(logprob), 6)})
    return out


def identity(backend: Any) -> dict[str, Any]:
    """The model identity of a backend: {'backend', 'model', 'model_sha256', 'effective_defaults', ...}.

    Backends may define `identity()`; otherwise only the name and model are known."""
    own = getattr(backend, "identity", None)
    data = dict(own()) if callable(own) else {}
    data.setdefault("backend", getattr(backend, "name", "unknown"))
    data.setdefault("model", getattr(backend, "model", "unknown"))
    data.setdefault("model_sha256", None)
    data.setdefault("effective_defaults", {})
    return data


@runtime_checkable
class Backend(Protocol):
    """What the generate loop and the judge need from an LLM."""

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
    send_api_key: bool = True
    """False: never send the key (the endpoint came from an auto-loaded ./tfcaf.toml; see GenerateConfig)."""
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
    sha256_cache: str | None = None
    """Folder where model-file hashes are cached (by path, size and mtime); None: computed once per process."""


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
