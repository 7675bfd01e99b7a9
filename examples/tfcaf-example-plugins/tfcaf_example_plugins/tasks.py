"""A task plugin: the two-peaks coordination game, a new one-step matrix game.

Two agents, three actions; two equally good joint actions (0, 0) and (1, 1) pay 10, mixing them up
costs -20, and action 2 is a safe option worth 2 whatever the other does (a hard case for independent
learners, which drift to the safe option).
"""

from __future__ import annotations

from tfcaf.tasks.matrix import MatrixGameEnv, matrix_card
from tfcaf.tasks.registry import Task

TWO_PEAKS = ((10.0, -20.0, 2.0), (-20.0, 10.0, 2.0), (2.0, 2.0, 2.0))
CARD = matrix_card("matrix_two_peaks", TWO_PEAKS, "Two-peaks coordination game (example plugin)")


def make_env(card, n_envs: int = 1, device: str = "cpu", seed: int = 0, **options):
    """The environment factory the Task names: function(card, n_envs=, device=, seed=, **options)."""
    if options:
        raise TypeError(f"matrix_two_peaks takes no options, got {sorted(options)}")
    return MatrixGameEnv(card, n_envs=n_envs, device=device, seed=seed, payoff=TWO_PEAKS)


def register_tasks(register) -> None:
    """The `tfcaf.tasks` hook: call register(Task) once per task."""
    register(Task(CARD, "tfcaf_example_plugins.tasks:make_env"))
