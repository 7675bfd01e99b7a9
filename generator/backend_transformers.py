"""A local Hugging Face model directory through `transformers` (no downloads: local_files_only).

For users with a downloaded instruction model (and ideally a GPU). JSON-schema constraints are not
applied here; spec mode still works because the spec parser validates and clamps every answer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tfcaf.errors import InfrastructureError, UsageError
from tfcaf.generator.backends import BackendSettings, Completion, Message


class TransformersBackend:
    """`AutoModelForCausalLM` + its tokenizer's chat template (or a plain role-prefixed prompt)."""

    name = "transformers"

    def __init__(self, settings: BackendSettings) -> None:
        if not settings.model:
            raise UsageError("--backend transformers needs --model DIR (a local Hugging Face model directory).")
        path = Path(settings.model)
        if not path.is_dir():
            raise UsageError(f"--model {path}: not a directory (the transformers backend takes a local model directory).")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from tfcaf.generator.tuning.model import check_device

        check_device(settings.device)
        if settings.device == "cpu":
            torch.set_num_threads(max(1, settings.threads))
        self.generator: dict | None = None
        from tfcaf.generator.tuning.serve import is_generator_dir, load_generator

        if is_generator_dir(path):  # a tuned generator (`tfcaf tune`): base checked by hash + adapter
            self._model, self._tokenizer, manifest = load_generator(path, settings.device)
            self.generator = {"name": path.name, "method": manifest.get("method"),
                              "base_sha256": (manifest.get("base") or {}).get("sha256")}
            self._device = settings.device
            self.model = f"tuned:{path.name}"
            return
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self._model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).to(settings.device)
        except (OSError, ValueError) as err:
            raise InfrastructureError(f"cannot load the model in {path}: {str(err).splitlines()[0]}") from err
        self._model.eval()
        self._device = settings.device
        self.model = path.name

    def _prompt_ids(self, messages: list[Message]) -> Any:
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(list(messages), add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)["input_ids"]
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
            ids = tok(text, return_tensors="pt")["input_ids"]
        return ids.to(self._device)

    def complete(self, messages: list[Message], **sampling: Any) -> Completion:
        import torch

        start = time.perf_counter()
        ids = self._prompt_ids(messages)  # [1, P]
        temperature = float(sampling.get("temperature") or 0.0)
        kwargs: dict[str, Any] = {"max_new_tokens": int(sampling.get("max_tokens") or 256)}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=float(sampling.get("top_p") or 1.0))
        else:
            kwargs.update(do_sample=False)
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else self._tokenizer.eos_token_id
        if sampling.get("seed") is not None:
            torch.manual_seed(int(sampling["seed"]))
        try:
            with torch.no_grad():
                out = self._model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=pad, **kwargs)  # [1, P+G]
        except RuntimeError as err:
            raise InfrastructureError(f"the transformers model failed: {str(err).splitlines()[0]}") from err
        new = out[0, ids.shape[1]:]
        text = self._tokenizer.decode(new, skip_special_tokens=True)
        return Completion(text=text, prompt_tokens=int(ids.shape[1]), completion_tokens=int(new.shape[0]),
                          latency_s=time.perf_counter() - start, model=self.model,
                          raw={"finish_reason": "length" if new.shape[0] >= kwargs["max_new_tokens"] else "stop"})

    def close(self) -> None:
        self._model = None
