"""Algorithms behind one registry: `ALGOS["vd"]` (value decomposition with any mixer: VDN, QMIX, an approved
TFCAF), `ALGOS["happo"]`, `ALGOS["hatrpo"]`, `ALGOS["mappo"]` (HARL's heterogeneous-agent family).

Each entry says which data path it trains on (`replay`: episodes in a replay buffer, epsilon-greedy
collection; `rollout`: fixed-length on-policy rollouts from a stochastic policy), whether it takes a
`--mixer`, and its config layer (`defaults`, then `family_defaults[family]`), which sits between the task
family's defaults and the config file (see `config.resolve_config`). A new algorithm is a new entry here
plus its learner; the run loop (`run.Run`) dispatches on `path`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from tfcaf.errors import UsageError
from tfcaf.plugins import load, register_into

DEFAULT_ALGO = "vd"


@dataclass(frozen=True)
class AlgoSpec:
    """A registered training algorithm."""

    name: str
    description: str
    path: str
    """'replay' (off-policy episodes, `learner.Learner`) or 'rollout' (on-policy, `haml.HALearner`)."""
    uses_mixer: bool
    """Takes `--mixer` (value decomposition); for the others `--mixer` is a usage error."""
    sequential: bool = False
    """Rollout algorithms: agents updated one after another with HAPPO's factor M."""
    trust_region: bool = False
    """Rollout algorithms: KL-constrained natural-gradient steps (HATRPO) instead of PPO epochs."""
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The algorithm's config layer (over the task family's defaults)."""
    family_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    """Per task family, over `defaults`."""


# HARL-style defaults for the policy-gradient family, sized for CPU: many envs (HAPPO degrades with few
# rollouts), one update per rollout_length x E env steps.
_PG = dict(n_envs=32, rollout_length=100, lr=5e-4, critic_lr=5e-4, grad_clip=10.0, test_episodes=32)
_PG_FAMILY = {
    # One-step games: an episode is one step, so a rollout of 4 steps x 64 envs is 256 episodes.
    "matrix": dict(n_envs=64, rollout_length=4, lr=5e-3, critic_lr=5e-3, pg_hidden=64),
    "lbf": dict(n_envs=32, rollout_length=50),
    "smax": dict(n_envs=32, rollout_length=100),
}

ALGOS: dict[str, AlgoSpec] = {}


def register_builtin_algorithms(register) -> None:
    """The built-in algorithms, through the same hook a `tfcaf.algorithms` plugin offers (see `tfcaf.plugins`).

    A plugin algorithm is an `AlgoSpec` on one of the two data paths ('replay' or 'rollout') with its own
    defaults and update rule flags; the run loop dispatches on `path`.
    """
    for spec in _BUILTIN_ALGOS:
        register(spec)


_BUILTIN_ALGOS = (
    AlgoSpec("vd", "value decomposition (pymarl's double-Q learner) with a --mixer: vdn, qmix, tfcaf:NAME",
                   "replay", uses_mixer=True),
    AlgoSpec("happo", "HAPPO: sequential clipped updates in a random agent order, weighted by M (HARL)",
                      "rollout", False, sequential=True, defaults=MappingProxyType(dict(_PG, share_param=False)),
                      family_defaults=MappingProxyType(_PG_FAMILY)),
    AlgoSpec("hatrpo", "HATRPO: sequential KL-constrained natural-gradient steps with line search (HARL)",
                       "rollout", False, sequential=True, trust_region=True,
                       defaults=MappingProxyType(dict(_PG, share_param=False)), family_defaults=MappingProxyType(_PG_FAMILY)),
    AlgoSpec("mappo", "MAPPO: simultaneous clipped updates (M = 1), shared parameters by default",
                      "rollout", False, defaults=MappingProxyType(dict(_PG, share_param=True)),
                      family_defaults=MappingProxyType(_PG_FAMILY)),
)


def _check_algo(spec: AlgoSpec) -> str:
    if spec.path not in ("replay", "rollout"):
        raise ValueError(f"algorithm '{spec.name}': path must be 'replay' or 'rollout', not {spec.path!r}")
    return spec.name


register_algorithm = register_into(ALGOS, "algorithm", _check_algo)
load("algorithms", register_builtin_algorithms, register_algorithm, lambda spec: spec.name, AlgoSpec, ALGOS)


def get_algo(name: str) -> AlgoSpec:
    if name not in ALGOS:
        raise UsageError(f"unknown algorithm '{name}'. Use one of {', '.join(ALGOS)}.")
    return ALGOS[name]


def arm_name(algo: str, mixer: str | None) -> str:
    """What a run is compared as in reports: the mixer for value decomposition, else the algorithm."""
    return mixer if algo == DEFAULT_ALGO and mixer else algo
