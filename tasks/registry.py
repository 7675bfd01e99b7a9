"""The task registry: `TASKS[name]` -> `Task` (a card plus how to build its environment).

Cards are data and always load. Environments are built lazily through `make_env`, which imports the
adapter (and its optional package: jaxmarl, lbforaging, mpe2, vmas) only then, and says how to install
a missing one.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tfcaf.errors import MissingDependencyError, UsageError
from tfcaf.plugins import load
from tfcaf.tasks.card import TaskCard
from tfcaf.tasks.matrix import MATRIX_CLIMBING, MATRIX_PENALTY

if TYPE_CHECKING:
    from tfcaf.tasks.env import BatchedEnv


@dataclass(frozen=True)
class Task:
    """A registered task: its card and a lazily imported environment factory."""

    card: TaskCard
    env_factory: str
    """'module:function' called as function(card, n_envs=, device=, seed=, **options) -> BatchedEnv."""
    requires: tuple[str, ...] = ()
    """Import names of the optional packages the environment needs."""
    install: str = ""
    """pip command that installs them."""

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.requires)


TASKS: dict[str, Task] = {}

TASK_RESOLVERS: list = []
"""Callables name -> Task | None that family modules add: tasks derived from a registered one by name
(e.g. 'smac_3m+last_actions'); consulted when the name is not registered."""

UNKNOWN_NAME_HINTS: list = []
"""Callables name -> str | None that family modules add: a better message for an unknown name of theirs."""


def register(task: Task) -> Task:
    """Add a task (the `register` a `tfcaf.tasks` plugin hook receives)."""
    if not isinstance(task, Task) or not isinstance(task.card, TaskCard):
        raise TypeError("register() takes a tfcaf.tasks.registry.Task whose card is a TaskCard")
    if task.card.name in TASKS:
        raise ValueError(f"task '{task.card.name}' registered twice")
    TASKS[task.card.name] = task
    return task


def register_builtin_tasks(register) -> None:
    """The built-in families, through the same hook a `tfcaf.tasks` plugin offers (see `tfcaf.plugins`).

    The matrix games register here; each family module (smax, lbf, mpe, vmas) registers its cards when
    imported (cards only: their environment packages are imported by `make_env`).
    """
    for card in (MATRIX_CLIMBING, MATRIX_PENALTY):
        register(Task(card, "tfcaf.tasks.matrix:make_matrix_env"))
    for module in ("tfcaf.tasks.smax", "tfcaf.tasks.lbf", "tfcaf.tasks.mpe", "tfcaf.tasks.vmas_tasks"):
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def get_task(name: str) -> Task:
    """The registered task, or a UsageError listing the known names."""
    if name not in TASKS:
        for resolve in TASK_RESOLVERS:
            derived = resolve(name)
            if derived is not None:
                return derived
        hints = [m for m in (hint(name) for hint in UNKNOWN_NAME_HINTS) if m]
        first = hints[0] if hints else f"unknown task '{name}'."
        raise UsageError(f"{first} Known tasks: {', '.join(sorted(TASKS))} (see `tfcaf tasks`).")
    return TASKS[name]


def get_card(name: str) -> TaskCard:
    return get_task(name).card


def make_env(name: str, n_envs: int = 1, device: str = "cpu", seed: int = 0, **options: object) -> "BatchedEnv":
    """Build E batched environments of a task; raises MissingDependencyError with the install line."""
    task = get_task(name)
    for module in task.requires:
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, f"task '{name}'", task.install or None)
    module_name, _, attr = task.env_factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(task.card, n_envs=n_envs, device=device, seed=seed, **options)


load("tasks", register_builtin_tasks, register, lambda t: t.card.name, Task, TASKS)
