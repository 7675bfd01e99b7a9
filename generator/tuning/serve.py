"""Tuned generators in use: list them, load one (base checked against its manifest hash + adapter), serve
one through llama.cpp (base GGUF + adapter.gguf, both hash-checked) and sample from it fast.

    items = list_generators(store)                    # manifests, newest first
    model, tokenizer, manifest = load_generator(store / "generators" / "t1", device="cpu")   # transformers + peft
    base_gguf, adapter_gguf, manifest = gguf_serving_files(store / "generators" / "t1")      # llama.cpp
    sampler = llamacpp_sampler(store / "generators" / "t1", context=4096, threads=1, seed=0)
    texts = sampler.sample(messages, n=4, max_tokens=256, temperature=1.0, seed=7); sampler.close()
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tfcaf.errors import UsageError
from tfcaf.generator.tuning.train import MANIFEST_KIND, generators_dir

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a generator folder; UsageError when it is missing, malformed or not ours."""
    path = Path(folder) / "manifest.json"
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise UsageError(f"{path}: manifest larger than {MAX_MANIFEST_BYTES} bytes.")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder}: no manifest.json (not a tuned generator; see `tfcaf generators`).") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise UsageError(f"{path}: not a readable JSON manifest.") from None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND or not isinstance(data.get("base"), dict):
        raise UsageError(f"{path}: not a tfcaf generator manifest.")
    return data


def is_generator_dir(path: Path) -> bool:
    return (Path(path) / "manifest.json").is_file() and ((Path(path) / "adapter").is_dir() or (Path(path) / "model").is_dir())


def generator_path(store: Path, name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"--generator '{name}': expected a generator name (see `tfcaf generators`).")
    path = generators_dir(store) / name
    if not is_generator_dir(path):
        raise UsageError(f"--generator {name}: no tuned generator of that name in {generators_dir(store)} "
                         "(see `tfcaf generators`, train one with `tfcaf tune`).")
    return path


def list_generators(store: Path) -> list[dict[str, Any]]:
    """Manifests of every finished generator in the store (unreadable folders are reported, not fatal)."""
    out = []
    folder = generators_dir(store)
    if not folder.is_dir():
        return out
    for sub in sorted(folder.iterdir()):
        if not sub.is_dir():
            continue
        try:
            m = read_manifest(sub)
        except UsageError as err:
            out.append({"name": sub.name, "status": "unreadable", "error": str(err)})
            continue
        out.append({k: m.get(k) for k in ("name", "method", "mode", "status", "adapter", "base", "data", "seed",
                                           "started_at", "finished_at", "eval_before", "eval_after", "online_samples", "gguf_adapter",
                                           "online_runs")}
                   | {"name": sub.name})
    return out


def load_generator(folder: Path, device: str = "cpu") -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, manifest) of a tuned generator. The base is rebuilt from the manifest's spec and
    must hash to the recorded sha256 (a different GGUF or directory is refused)."""
    from tfcaf.generator.tuning.model import load_base

    manifest = read_manifest(folder)
    if manifest.get("status") != "finished":
        raise UsageError(f"generator {folder.name} did not finish training (status {manifest.get('status')!r}).")
    if (Path(folder) / "model").is_dir():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(str(Path(folder) / "model"), local_files_only=True)
        tok = AutoTokenizer.from_pretrained(str(Path(folder) / "model"), local_files_only=True)
        return model.to(device).eval(), tok, manifest
    spec = str(manifest["base"].get("spec") or "")
    base = load_base(spec, device)
    if base.identity.get("sha256") != manifest["base"].get("sha256"):
        raise UsageError(f"generator {folder.name} was trained on base {spec} with sha256 "
                         f"{str(manifest['base'].get('sha256'))[:12]}..., but that base now hashes to "
                         f"{str(base.identity.get('sha256'))[:12]}...; retrain it or restore the base.")
    from peft import PeftModel

    model = PeftModel.from_pretrained(base.model, str(Path(folder) / "adapter"), is_trainable=False)
    return model.to(device).eval(), base.tokenizer, manifest


def serving_backend(folder: Path, requested: str = "local") -> str:
    """Which backend serves a tuned generator: 'local' (llama.cpp: base GGUF + LoRA adapter GGUF) when its
    base came from a GGUF and it has a LoRA adapter, else 'transformers' (a directory base, full fine-tuning,
    or `--backend transformers` asked for)."""
    if requested == "transformers":
        return "transformers"
    manifest = read_manifest(folder)
    kind = (manifest.get("base") or {}).get("kind")
    return "local" if kind == "gguf" and manifest.get("adapter") == "lora" and (Path(folder) / "adapter").is_dir() \
        else "transformers"


def gguf_serving_files(folder: Path, sha256_cache: str | None = None) -> tuple[Path, Path, dict[str, Any]]:
    """(base GGUF, adapter.gguf, manifest) of a finished LoRA generator tuned on a GGUF base.

    The base must hash to the manifest's base sha256 and adapter.gguf to the sha256 the manifest recorded
    when it was written; a folder from before the export existed gets adapter.gguf written now (see
    `export.export_generator`). UsageError on any mismatch: a changed file is never served."""
    from tfcaf.generator.tuning.export import ADAPTER_GGUF, base_gguf_path, export_generator
    from tfcaf.generator.tuning.model import sha256_file
    from tfcaf.provenance import file_sha256

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("status") != "finished":
        raise UsageError(f"generator {folder.name} did not finish training (status {manifest.get('status')!r}).")
    base = base_gguf_path(manifest.get("base") or {})
    if base is None or manifest.get("adapter") != "lora":
        raise UsageError(f"generator {folder.name} has no LoRA adapter on a GGUF base: llama.cpp cannot serve it "
                         "(use --backend transformers).")
    if not base.is_file():
        raise UsageError(f"generator {folder.name}: its base GGUF {base} is missing.")
    if file_sha256(base, sha256_cache) != manifest["base"].get("sha256"):
        raise UsageError(f"generator {folder.name} was trained on a base with sha256 "
                         f"{str(manifest['base'].get('sha256'))[:12]}..., but {base.name} now hashes to "
                         f"{file_sha256(base, sha256_cache)[:12]}...; retrain it or restore the base.")
    record = manifest.get("gguf_adapter")
    if not isinstance(record, dict) or not (folder / ADAPTER_GGUF).is_file():
        record = export_generator(folder, force=True)
        manifest = read_manifest(folder)
    adapter = folder / ADAPTER_GGUF
    if adapter.is_symlink() or sha256_file(adapter) != record.get("sha256"):
        raise UsageError(f"generator {folder.name}: {ADAPTER_GGUF} does not match the sha256 in its manifest; "
                         f"re-export it with `tfcaf generators export {folder.name} --force`.")
    return base, adapter, manifest


class LlamaCppSampler:
    """Plain, fast sampling from the embedded model (optionally with a tuned LoRA adapter) through llama.cpp.

    `sample(messages, n, max_tokens, temperature, seed)` returns n answers (str) to one chat; sample i uses
    seed `seed + i`, so a call is reproducible. Sampling is pure temperature sampling of the model's
    distribution (llama.cpp's top_k, top_p and min_p filters are switched off), as an on-policy RL sample
    must be. `last` holds the previous call's accounting: {'n', 'prompt_tokens', 'completion_tokens',
    'seconds' (wall time, prompt evaluation included), 'tokens_per_s' (completion tokens / seconds)}. A new
    prompt is first put in llama.cpp's KV cache, so that every sample sees the same logits (the first
    included) and a seed reproduces its answer. One slot, `context` tokens for prompt + answer. Always `close()`
    (or use it as a context manager)."""

    def __init__(self, backend: Any, seed: int) -> None:
        self.backend = backend
        self.seed = int(seed)
        self.calls = 0
        self.last: dict[str, Any] = {}
        self._primed: str | None = None

    def sample(self, messages: list[dict[str, str]], n: int = 1, max_tokens: int = 256, temperature: float = 1.0,
               seed: int | None = None, *, stop_at_fence: bool = False) -> list[str]:
        """n answers; `stop_at_fence` cuts each answer right after the fence that closes its first fenced block
        (the answer a sampler stopping there would give: stopping is a function of the prefix)."""
        import time

        from tfcaf.generator.tuning.policy import cut_at_closing_fence

        if self.backend is None:
            raise UsageError("this sampler is closed.")
        if n < 1 or max_tokens < 1 or not 0.0 <= float(temperature) <= 2.0:
            raise UsageError(f"sample: n and max_tokens must be >= 1 and temperature in [0, 2] (got {n}, {max_tokens}, {temperature}).")
        base_seed = self.seed * 1_000_003 + self.calls * 7919 if seed is None else int(seed)
        self.calls += 1
        out: list[str] = []
        prompt = completion = 0
        t0 = time.perf_counter()
        key = json.dumps(messages, sort_keys=True)
        if key != self._primed:
            # llama.cpp re-evaluates only the last prompt token when the prompt is in its KV cache, and a
            # one-token batch rounds differently from the full prompt's batch: put the prompt in the cache
            # first so every sample (the first included) sees the same logits and a seed reproduces it
            self.backend.complete(list(messages), temperature=0.0, max_tokens=1, seed=0)
            self._primed = key
        for i in range(n):
            done = self.backend.complete(list(messages), temperature=float(temperature), top_p=1.0, top_k=0, min_p=0.0,
                                         max_tokens=int(max_tokens), seed=(base_seed + i) % (1 << 31))
            out.append(cut_at_closing_fence(done.text) if stop_at_fence else done.text)
            prompt += done.prompt_tokens
            completion += done.completion_tokens
        seconds = time.perf_counter() - t0
        self.last = {"n": n, "prompt_tokens": prompt, "completion_tokens": completion, "seconds": round(seconds, 4),
                     "tokens_per_s": round(completion / seconds, 3) if seconds > 0 else None}
        return out

    def identity(self) -> dict[str, Any]:
        return self.backend.identity() if self.backend is not None else {}

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
        self.backend = None

    def __enter__(self) -> "LlamaCppSampler":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def llamacpp_sampler(generator: "str | Path | None" = None, *, context: int = 4096, threads: int = 1,
                     seed: int = 0, device: str = "cpu") -> LlamaCppSampler:
    """A `LlamaCppSampler` over the embedded SmolLM2 GGUF (`generator=None`: the base model) or a tuned
    generator folder (`<store>/generators/NAME`: its base GGUF + adapter.gguf, both hash-checked against
    the manifest; exported first when missing). UsageError when llama.cpp cannot serve that generator.

        with llamacpp_sampler(store / "generators" / "t1", context=4096, threads=1, seed=0) as s:
            texts = s.sample([{"role": "user", "content": "hi"}], n=2, max_tokens=32, temperature=1.0, seed=3)
            s.last["tokens_per_s"]
    """
    from tfcaf.generator.backend_local import LocalBackend
    from tfcaf.generator.backends import BackendSettings

    if not 256 <= int(context) <= 1 << 20 or int(threads) < 1:
        raise UsageError(f"llamacpp_sampler: context must be in [256, 1048576] and threads >= 1 (got {context}, {threads}).")
    model = None
    if generator is not None:
        folder = Path(generator)
        if not is_generator_dir(folder):
            raise UsageError(f"{folder}: not a tuned generator folder (see `tfcaf generators`).")
        model = str(folder)
    backend = LocalBackend(BackendSettings(name="local", model=model, threads=int(threads), context=int(context),
                                           device=device), slots=1)
    return LlamaCppSampler(backend, seed)
