"""Mixers behind one registry: `MIXERS["vdn"]`, `MIXERS["qmix"]`, `MIXERS["handwritten"]`, and
`tfcaf:<name>` (an approved credit function, rebuilt from its compiled graph).

Every mixer maps trainer tensors agents_q [B, T, N], global_state [B, T, S] -> q_tot [B, T, 1].
Credit functions ([B, N] -> [B, 1]) are applied through `tfcaf.contract.mix_episodes`.
Training executes no candidate Python: an approved function arrives as the nn.Module that
`tfcaf.sandbox.graph.load_graph` rebuilt from plain data, after `load_approved` checked its hashes.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from tfcaf.contract import check_inputs, check_output, mix_episodes
from tfcaf.errors import RejectedError, UsageError
from tfcaf.plugins import load, register_into
from tfcaf.tasks.card import TaskCard

TFCAF_PREFIX = "tfcaf:"


class VDNMixer(nn.Module):
    """q_tot = sum_i Q_i (Sunehag et al. 2018)."""

    def forward(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
        return agents_q.sum(dim=-1, keepdim=True)  # [B, T, 1]


class QMixer(nn.Module):
    """QMIX (Rashid et al. 2018, Sec. 4.1): a monotone two-layer mixer whose weights come from
    hypernetworks of the state (abs() keeps dq_tot/dQ_i >= 0). pymarl's `hypernet_layers: 2` variant.
    """

    def __init__(self, n_agents: int, state_dim: int, embed: int = 32, hypernet_embed: int = 64) -> None:
        super().__init__()
        self.n_agents, self.embed = n_agents, embed
        self.hyper_w1 = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                      nn.Linear(hypernet_embed, embed * n_agents))
        self.hyper_w2 = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, embed))
        self.hyper_b1 = nn.Linear(state_dim, embed)
        self.hyper_b2 = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def forward(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
        b, t, n = agents_q.shape
        s = global_state.reshape(b * t, -1)  # [B*T, S]
        q = agents_q.reshape(b * t, 1, n)  # [B*T, 1, N]
        w1 = self.hyper_w1(s).abs().view(-1, n, self.embed)  # [B*T, N, E]
        b1 = self.hyper_b1(s).view(-1, 1, self.embed)  # [B*T, 1, E]
        hidden = nn.functional.elu(torch.bmm(q, w1) + b1)  # [B*T, 1, E]
        w2 = self.hyper_w2(s).abs().view(-1, self.embed, 1)  # [B*T, E, 1]
        b2 = self.hyper_b2(s).view(-1, 1, 1)  # [B*T, 1, 1]
        return (torch.bmm(hidden, w2) + b2).view(b, t, 1)


class CreditFunctionMixer(nn.Module):
    """Applies a training-free credit function module ([B, N], [B, S]) -> [B, 1] to [B, T, ...] tensors.

    Shapes, dtype and device are checked on every call (the loss checks finiteness). Any parameters the
    function module holds are frozen: a TFCAF has nothing to train.

    >>> mixer = CreditFunctionMixer(VDNMixer(), n_agents=2, state_dim=1)
    >>> mixer(torch.ones(3, 4, 2), torch.ones(3, 4, 1)).shape
    torch.Size([3, 4, 1])
    """

    def __init__(self, fn: nn.Module, n_agents: int, state_dim: int) -> None:
        super().__init__()
        self.fn = fn
        self.n_agents, self.state_dim = n_agents, state_dim
        for p in self.fn.parameters():
            p.requires_grad_(False)

    def _checked(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
        check_inputs(agents_q, global_state, self.n_agents, self.state_dim)
        q_tot = self.fn(agents_q, global_state)
        check_output(q_tot, agents_q, finite=False)
        return q_tot

    def forward(self, agents_q: torch.Tensor, global_state: torch.Tensor) -> torch.Tensor:
        return mix_episodes(self._checked, agents_q, global_state)  # [B, T, 1]


@dataclass
class BuiltMixer:
    """A mixer ready for the learner, with what the run records about it."""

    module: nn.Module
    name: str
    trainable: bool
    hashes: dict[str, Any] = field(default_factory=dict)
    """What pins this mixer: for tfcaf:<name> the manifest's sha256 of source and graph."""

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)


@dataclass(frozen=True)
class MixerSpec:
    """A registered mixer kind."""

    name: str
    description: str
    build: Callable[[TaskCard, Any, str], nn.Module]
    """build(card, config, device) -> module."""
    trainable: bool


def _source_hash(*objs: object) -> str:
    return hashlib.sha256("".join(inspect.getsource(o) for o in objs).encode()).hexdigest()


def _build_handwritten(card: TaskCard, cfg: Any, device: str) -> nn.Module:
    from tfcaf.trainer.reference import handwritten_for

    return CreditFunctionMixer(handwritten_for(card), card.n_agents, card.state_dim)


MIXERS: dict[str, MixerSpec] = {}


def register_builtin_mixers(register) -> None:
    """The built-in mixers, through the same hook a `tfcaf.mixers` plugin offers (see `tfcaf.plugins`)."""
    for spec in _BUILTIN_MIXERS:
        register(spec)


_BUILTIN_MIXERS = (
    MixerSpec("vdn", "sum of agent Q values (VDN)", lambda card, cfg, device: VDNMixer(), False),
    MixerSpec("qmix", "QMIX monotone hypernetwork mixer",
                      lambda card, cfg, device: QMixer(card.n_agents, card.state_dim, cfg.mixing_embed, cfg.hypernet_embed), True),
    MixerSpec("handwritten", "hand-written reference credit function of the task family (not LLM-written)",
                             _build_handwritten, False),
)
register_mixer = register_into(MIXERS, "mixer", lambda spec: spec.name)
load("mixers", register_builtin_mixers, register_mixer,
     lambda spec: spec.name if not spec.name.startswith(TFCAF_PREFIX) else "", MixerSpec, MIXERS)


def approved_hashes(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest entries that pin an approved function (every '*sha256*' key, flattened one level)."""
    out: dict[str, Any] = {}
    for key, value in manifest.items():
        if "sha256" in key:
            out[key] = value
        elif isinstance(value, dict):
            for sub, v in value.items():
                if "sha256" in sub:
                    out[f"{key}.{sub}"] = v
    return out


def build_mixer(name: str, card: TaskCard, cfg: Any, device: str = "cpu", store: Path | None = None) -> BuiltMixer:
    """Resolve a mixer name ('vdn', 'qmix', 'handwritten', 'tfcaf:<approved name>') for a task."""
    if name.startswith(TFCAF_PREFIX):
        return _build_approved(name[len(TFCAF_PREFIX):], card, device, store)
    if name not in MIXERS:
        raise UsageError(f"unknown mixer '{name}'. Use one of {', '.join(MIXERS)} or tfcaf:<approved name> (see `tfcaf review`).")
    spec = MIXERS[name]
    module = spec.build(card, cfg, device).to(device)
    objs: list[object] = [type(module)]
    if isinstance(module, CreditFunctionMixer):
        objs.append(type(module.fn))
    return BuiltMixer(module, name, spec.trainable, {"source_sha256": _source_hash(*objs)})


def _build_approved(fn_name: str, card: TaskCard, device: str, store: Path | None) -> BuiltMixer:
    try:
        from tfcaf.approval import load_approved
    except ImportError:
        raise UsageError("tfcaf:<name> mixers need approved functions, and this install has no tfcaf.approval module.") from None
    approved = load_approved(fn_name, store=store, device=device)  # raises RejectedError on a hash mismatch
    if approved.task != card.name:
        raise UsageError(f"approved function '{fn_name}' was approved for task '{approved.task}', not '{card.name}'. "
                         f"Generate and approve one for {card.name}.")
    mixer = CreditFunctionMixer(approved.module, card.n_agents, card.state_dim).to(device)
    if any(p.requires_grad for p in mixer.parameters()):
        raise RejectedError(f"approved function '{fn_name}' has trainable parameters; a TFCAF must have none.")
    hashes = approved_hashes(dict(approved.manifest))
    if not hashes:
        raise RejectedError(f"approved function '{fn_name}' has a manifest without sha256 hashes; re-approve it.")
    hashes["manifest_sha256"] = approved.manifest_sha256  # pins the manifest itself (tfcaf.approval.manifest_sha256)
    return BuiltMixer(mixer, TFCAF_PREFIX + fn_name, False, hashes)


def verify_hashes(recorded: dict[str, Any], built: BuiltMixer) -> None:
    """Refuse to continue a run whose mixer no longer matches what the run recorded."""
    if recorded != built.hashes:
        changed = sorted(k for k in set(recorded) | set(built.hashes) if recorded.get(k) != built.hashes.get(k))
        raise RejectedError(f"mixer '{built.name}' no longer matches this run's provenance (changed: {', '.join(changed)}). "
                            "Start a new run instead of resuming.")
