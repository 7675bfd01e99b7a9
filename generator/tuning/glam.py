"""GLAM scoring of textual actions (Carta et al. 2023, "Grounding LLMs in interactive environments with
online RL", sec. 3.2; the scoring SAC-GLAM and MAGELLAN use): the policy's logit of action a in state s is

    logit(a | s) = sum_t log p_LM(a_t | prompt(s), " ", a_<t)          (norm="sum", the paper's)
    logit(a | s) = the same sum / len(a)                               (norm="mean", see below)

and pi(.|s) = softmax over the candidate actions. The same forward gives the final hidden state (after
the last norm) at each action's last token; the frozen base's hidden state at the prompt's last token
(`prompt_hidden`, cached) is what sac-glam's Q head reads.

Tokenisation: the prompt is `tokenizer(observation)`, each action `tokenizer(" " + text)` without
special tokens, so the scored text is `observation + " " + text` split at the observation's end.

Cost, and what the adapter sees. A refinement prompt is a few hundred tokens and there are ~10 actions;
on this CPU a SmolLM2 forward + backward over prompt + actions costs seconds per state. So:

- LoRA sits on the top `top_layers` decoder layers only (peft `layers_to_transform`); the bottom layers
  are the frozen base.
- The prompt minus its last token is encoded once by the frozen base (adapters off, no gradient): its
  keys/values of the top layers are cached per prompt. The last prompt token and the action tokens run
  through the frozen bottom layers once per prompt too (exact: nothing below the LoRA layers trains),
  and their hidden states entering the top layers are cached.
- Each score then runs only the top layers (with the adapter, with gradient) over the A actions'
  tokens, attending to the cached prompt keys/values, plus the final norm and the LM head.

So the adapter shapes how the action tokens read the prompt, not the prompt's own encoding (a documented
deviation from LoRA over every token). With the adapter at zero this is exactly the base model's
log-probs of the full sequences (tested against `Policy.score`).

    scorer = GlamScorer(policy, ["mask dead agents", "stop"], top_layers=2)
    logits, hidden = scorer.score([scorer.prompt_ids("Goal: ... Action:")])  # [B, A], [B, A, H]
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from tfcaf.generator.tuning.losses import token_logprobs


@dataclass
class _Entry:
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    """Top layers' prompt keys/values, each [1, H_kv, P, D] (P = prompt length - 1)."""
    h_in: torch.Tensor
    """Hidden states entering the first top layer, [A, T, H] (T = 1 + longest action)."""
    h_prompt: torch.Tensor
    """The frozen base's final hidden state (after the last norm) at the prompt's last token, [H]."""


class _PrefixCache:
    """What LlamaAttention needs from a cache: `update` prepends the prompt's keys/values of that layer."""

    def __init__(self, kv: dict[int, tuple[torch.Tensor, torch.Tensor]], rows: int) -> None:
        self.kv, self.rows = kv, rows

    def update(self, k: torch.Tensor, v: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        pk, pv = self.kv[layer_idx]
        return (torch.cat([pk.expand(self.rows, *pk.shape[1:]), k], dim=-2),  # [A, H_kv, P+T, D]
                torch.cat([pv.expand(self.rows, *pv.shape[1:]), v], dim=-2))


def lm_parts(model: Any) -> Any:
    """The transformers *ForCausalLM inside a peft model (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def num_layers(model: Any) -> int:
    return int(lm_parts(model).config.num_hidden_layers)


class GlamScorer:
    """GLAM action logits and action hidden states for a `policy.Policy` over a fixed list of action texts.

    `top_layers`: how many of the last decoder layers carry the adapter (the rest are frozen and cached);
    the policy's LoRA must be on exactly those (`with_lora(..., layers=...)`) or be absent. The cache holds
    at most `cache_size` prompts (least recently used dropped)."""

    def __init__(self, policy: Any, actions: Sequence[str], top_layers: int = 2, norm: str = "mean",
                 cache_size: int = 4096) -> None:
        if norm not in ("sum", "mean"):
            raise ValueError(f"norm must be sum or mean, got {norm!r}")
        self.policy = policy
        self.norm = norm
        self.n_layers = num_layers(policy.model)
        if not 1 <= top_layers <= self.n_layers:
            raise ValueError(f"top_layers must be in 1..{self.n_layers}, got {top_layers}")
        self.first_top = self.n_layers - top_layers
        self.texts = list(actions)
        self.actions = [self.action_ids(t) for t in self.texts]
        self.lens = torch.tensor([len(a) for a in self.actions])  # [A]
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    # -- tokens ----------------------------------------------------------------------------------
    def prompt_ids(self, text: str) -> list[int]:
        ids = [int(i) for i in self.policy.tokenizer(text)["input_ids"]]
        if len(ids) < 2:  # one cached prompt token at least, and the last one through the adapter
            ids = [self.policy.eos_id] * (2 - len(ids)) + ids
        return ids

    def action_ids(self, text: str) -> list[int]:
        ids = [int(i) for i in self.policy.tokenizer(" " + text, add_special_tokens=False)["input_ids"]]
        if not ids:
            raise ValueError(f"action text {text!r} has no tokens")
        return ids

    # -- layers by hand ----------------------------------------------------------------------------
    def _block(self, T: int, P: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input ids [A, T], position ids [1, T], bool attention mask [A, 1, T, P+T]) for the action block."""
        A = len(self.actions)
        pad = self.policy.tokenizer.pad_token_id if self.policy.tokenizer.pad_token_id is not None else self.policy.eos_id
        ids = torch.full((A, T), pad, dtype=torch.long)  # [A, T] right-padded
        for i, a in enumerate(self.actions):
            ids[i, 1: 1 + len(a)] = torch.tensor(a)
        t = torch.arange(T)
        causal = t.unsqueeze(1) >= t.unsqueeze(0)  # [T, T]
        valid = (t.unsqueeze(0) <= self.lens.unsqueeze(1))  # [A, T] key slot t is a real token of row a
        block = causal.unsqueeze(0) & valid.unsqueeze(1)  # [A, T, T]
        block = block | torch.eye(T, dtype=torch.bool).unsqueeze(0)  # padded queries see themselves (no empty rows)
        mask = torch.cat([torch.ones(A, T, P, dtype=torch.bool), block], dim=-1).unsqueeze(1)  # [A, 1, T, P+T]
        dev = self.policy.device
        return ids.to(dev), (P + t).unsqueeze(0).to(dev), mask.to(dev)

    def _run(self, lm: Any, h: torch.Tensor, layers: range, positions: torch.Tensor, mask: torch.Tensor,
             kv: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        inner = lm.model
        rope = inner.rotary_emb(h, position_ids=positions)
        cache = _PrefixCache(kv, h.shape[0])
        for i in layers:
            h = inner.layers[i](h, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                                position_embeddings=rope)
        return h

    @torch.no_grad()
    def _entry(self, prompt: Sequence[int]) -> _Entry:
        key = tuple(prompt)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return hit
        self.misses += 1
        P = len(prompt) - 1
        T = 1 + int(self.lens.max())
        with self.policy.reference() as frozen:
            lm = lm_parts(frozen)
            out = lm(input_ids=torch.tensor([list(prompt[:-1])], device=self.policy.device), use_cache=True)
            cache = out["cache"] if "cache" in out else out["past_key_values"]  # renamed in transformers 5
            layers = cache.layers
            kv = {i: (layers[i].keys.detach(), layers[i].values.detach()) for i in range(self.n_layers)}
            ids, positions, mask = self._block(T, P)
            ids[:, 0] = prompt[-1]
            h = lm.model.embed_tokens(ids)  # [A, T, H]
            h = self._run(lm, h, range(self.first_top), positions, mask, kv)
            # the last prompt token: row 0, position 0 of the action block (the same in every row)
            top = lm.model.norm(self._run(lm, h[:1, :1], range(self.first_top, self.n_layers), positions[:, :1],
                                          mask[:1, :, :1, : P + 1], kv))  # [1, 1, H]
        entry = _Entry([kv[i] for i in range(self.first_top, self.n_layers)], h.detach(), top[0, 0].detach())
        self._cache[key] = entry
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return entry

    def clear(self) -> None:
        self._cache.clear()

    # -- scoring ---------------------------------------------------------------------------------
    def score_one(self, prompt: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [A], hidden [A, H]) for one tokenised prompt under the adapted model (gradient flows into
        the adapter of the top layers when grad is enabled)."""
        entry = self._entry(prompt)
        A, T, _ = entry.h_in.shape
        P = len(prompt) - 1
        ids, positions, mask = self._block(T, P)
        lm = lm_parts(self.policy.model)
        kv = {self.first_top + j: e for j, e in enumerate(entry.kv)}
        h = self._run(lm, entry.h_in, range(self.first_top, self.n_layers), positions, mask, kv)  # [A, T, H]
        h = lm.model.norm(h)
        lens = self.lens.to(h.device)
        real = torch.arange(T - 1, device=h.device).unsqueeze(0) < lens.unsqueeze(1)  # [A, T-1] real action tokens
        # position t predicts action token t; the LM head (V ~ 49k) runs on the real positions only
        logits = lm.lm_head(h[:, :-1, :][real])  # [N, V]
        labels = ids[:, 1:][real]  # [N]
        row = torch.arange(A, device=h.device).unsqueeze(1).expand(A, T - 1)[real]  # [N] action of each token
        tok_lp = token_logprobs(logits.unsqueeze(0), labels.unsqueeze(0))[0]  # [N]
        lp = torch.zeros(A, device=h.device, dtype=tok_lp.dtype).index_add(0, row, tok_lp)  # [A]
        if self.norm == "mean":
            lp = lp / lens.float()
        hidden = h[torch.arange(A, device=h.device), lens]  # [A, H] at each action's last token
        return lp, hidden

    def prompt_hidden(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """The frozen base's final hidden state at each prompt's last token, [B, H] (cached, no gradient):
        stable features for a critic that the actor's adapter updates cannot move."""
        return torch.stack([self._entry(p).h_prompt for p in prompts])

    def score(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, A], hidden [B, A, H]) for B tokenised prompts (one top-layer pass per state)."""
        pairs = [self.score_one(p) for p in prompts]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
