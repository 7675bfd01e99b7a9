"""The policy being tuned: a (peft) causal LM + tokenizer, with the few tensor operations the losses need.

    policy = Policy.build(load_base("tiny"), lora=True)
    lp, mask, first = policy.score([(prompt_ids, response_ids)])   # [B, T], [B, T], [B, V]
    ref = policy.ref_logprobs([(prompt_ids, response_ids)])         # [B, T], adapters off, no grad
    samples = policy.sample(prompt_ids, n=4, max_new_tokens=64, temperature=1.0, seed=0, stop_at_fence=True)
    cut_at_closing_fence("```python\nx = 1\n```\nmore")   # '```python\nx = 1\n```'
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from tfcaf.generator.tuning.losses import token_logprobs
from tfcaf.generator.tuning.model import Base, chat_ids, with_lora

Pair = tuple[list[int], list[int]]
"""(prompt token ids, response token ids)."""

FENCE = "```"


def cut_at_closing_fence(text: str) -> str:
    """The answer up to and including the fence that closes its first fenced block (unchanged when it has
    no complete block): what a stop sequence at the closing fence returns. The vetter reads exactly one
    block, so text after the closing fence can only turn an answer into a two-block rejection."""
    start = text.find(FENCE)
    if start < 0:
        return text
    end = text.find(FENCE, start + len(FENCE))
    return text if end < 0 else text[: end + len(FENCE)]


class _FenceStop:
    """A transformers stopping criterion: a row is done once its generated text closes a fenced block."""

    def __init__(self, tokenizer: Any, prompt_len: int) -> None:
        self.tokenizer, self.prompt_len = tokenizer, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        done = [self.tokenizer.decode(row[self.prompt_len:], skip_special_tokens=True).count(FENCE) >= 2
                for row in input_ids.tolist()]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


@dataclass
class Policy:
    model: Any
    """A peft model (LoRA) or the bare base model (full fine-tuning)."""
    tokenizer: Any
    lora: bool
    ref_model: Any = None
    """Frozen copy of the base (full fine-tuning only; LoRA disables its adapters instead)."""
    device: str = "cpu"

    @classmethod
    def build(cls, base: Base, lora: bool = True, rank: int = 8, alpha: int = 16, adapter: str = "default",
              layers: list[int] | None = None) -> "Policy":
        """LoRA (on every decoder layer, or on `layers`) or full fine-tuning with a frozen reference copy."""
        device = str(next(base.model.parameters()).device)
        if lora:
            return cls(with_lora(base.model, rank, alpha, adapter=adapter, layers=layers), base.tokenizer, True, None,
                       device)
        ref = copy.deepcopy(base.model).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return cls(base.model, base.tokenizer, False, ref, device)

    # -- tokens ----------------------------------------------------------------------------------
    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return chat_ids(self.tokenizer, messages)

    def response_ids(self, text: str) -> list[int]:
        """The answer's tokens plus the end-of-turn token (the model must learn to stop)."""
        return [int(i) for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]] + [self.eos_id]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i != self.eos_id], skip_special_tokens=True)

    # -- scoring ---------------------------------------------------------------------------------
    def _batch(self, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_id
        length = max(len(p) + len(r) for p, r in pairs)
        ids = torch.full((len(pairs), length), pad, dtype=torch.long)  # [B, L] right-padded
        attn = torch.zeros((len(pairs), length), dtype=torch.long)
        for b, (p, r) in enumerate(pairs):
            seq = p + r
            ids[b, : len(seq)] = torch.tensor(seq)
            attn[b, : len(seq)] = 1
        return ids.to(self.device), attn.to(self.device), torch.tensor([len(p) for p, _ in pairs]), [len(r) for _, r in pairs]

    def _score_with(self, model: Any, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, attn, plen, rlen = self._batch(pairs)
        logits = model(input_ids=ids, attention_mask=attn).logits  # [B, L, V]
        T = max(rlen)
        B = len(pairs)
        # position t of the response is predicted by the logits at prompt_len - 1 + t
        idx = (plen.to(self.device) - 1).unsqueeze(1) + torch.arange(T, device=self.device).unsqueeze(0)  # [B, T]
        idx = idx.clamp_max(ids.shape[1] - 1)
        resp_logits = logits.gather(1, idx.unsqueeze(-1).expand(B, T, logits.shape[-1]))  # [B, T, V]
        labels = ids.gather(1, (idx + 1).clamp_max(ids.shape[1] - 1))  # [B, T]
        mask = (torch.arange(T, device=self.device).unsqueeze(0) < torch.tensor(rlen, device=self.device).unsqueeze(1)).float()
        lp = token_logprobs(resp_logits, labels) * mask  # [B, T]
        return lp, mask, resp_logits[:, 0, :]  # first response position: V_theta(x)

    def score(self, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logprobs [B, T], mask [B, T], first-position logits [B, V]) under the trainable policy."""
        return self._score_with(self.model, pairs)

    @contextlib.contextmanager
    def reference(self) -> Iterator[Any]:
        """The frozen reference model (the base: LoRA adapters disabled, or the frozen copy)."""
        if self.lora:
            with self.model.disable_adapter():
                yield self.model
        else:
            yield self.ref_model

    @torch.no_grad()
    def ref_logprobs(self, pairs: list[Pair]) -> torch.Tensor:
        """log pi_ref of each response token [B, T] (no gradient)."""
        with self.reference() as ref:
            return self._score_with(ref, pairs)[0]

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, prompt: list[int], n: int = 1, max_new_tokens: int = 256, temperature: float = 1.0,
               top_p: float = 1.0, seed: int = 0, stop_at_fence: bool = False) -> list[list[int]]:
        """n sampled responses (token ids, ending with eos when the model stopped) from the current policy.
        `stop_at_fence`: a response also ends (with eos appended) once its text closes a fenced block."""
        was_training = self.model.training
        self.model.eval()
        torch.manual_seed(seed)
        ids = torch.tensor([prompt] * n, device=self.device)  # [n, P]
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": self.eos_id,
                                  "eos_token_id": self.eos_id}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(do_sample=False)
        if stop_at_fence:
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([_FenceStop(self.tokenizer, len(prompt))])
        out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)  # [n, P+G]
        if was_training:
            self.model.train()
        result = []
        for row in out[:, len(prompt):].tolist():
            if self.eos_id in row:
                row = row[: row.index(self.eos_id) + 1]
            elif stop_at_fence and self.tokenizer.decode(row, skip_special_tokens=True).count(FENCE) >= 2:
                row = row + [self.eos_id]  # the last row to stop: nothing was padded after it
            result.append(row)
        return result

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]
