"""An algorithm plugin: MAPPO with one policy per agent (no parameter sharing), on tfcaf's rollout path.

An algorithm entry picks a data path ('replay' or 'rollout'), its update flags (sequential HAPPO-style
updates, trust region) and its config layer; the run loop does the rest.
"""

from __future__ import annotations

from types import MappingProxyType

from tfcaf.trainer.algos import AlgoSpec

_DEFAULTS = dict(n_envs=32, rollout_length=100, lr=5e-4, critic_lr=5e-4, grad_clip=10.0, test_episodes=32, share_param=False)
_FAMILY = {"matrix": dict(n_envs=64, rollout_length=4, lr=5e-3, critic_lr=5e-3, pg_hidden=64)}


def register_algorithms(register) -> None:
    """The `tfcaf.algorithms` hook: call register(AlgoSpec) once per algorithm."""
    register(AlgoSpec("mappo_ns", "example plugin: MAPPO (simultaneous clipped updates) without parameter sharing",
                      "rollout", False, defaults=MappingProxyType(_DEFAULTS), family_defaults=MappingProxyType(_FAMILY)))
