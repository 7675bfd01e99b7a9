"""Real global states for vetting: roll out a policy in a task's environment and store the states.

Property tests of candidate credit functions draw `global_state` from these samples when present, so a
candidate is tested on states the environment actually produces (dead agents, clustered units, ...),
not only on uniform noise inside the card's ranges.

Files: `<store>/states/<task>.npz` with arrays `states` [M, S] float32, `alive` [M, N] float32 (when
the card has an alive flag), and metadata (`task`, `state_dim`, `seed`, `policy`, `n_envs`).

Example:
    >>> path = record_states("matrix_climbing", 8, store=tmp)        # doctest: +SKIP
    >>> load_states("matrix_climbing", store=tmp).shape              # doctest: +SKIP
    (8, 1)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tfcaf.errors import UsageError
from tfcaf.store import store_dir
from tfcaf.tasks.registry import get_card, make_env

if TYPE_CHECKING:
    import numpy as np
    import torch

Policy = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]
"""policy(obs [E, N, O], state [E, S], avail_actions [E, N, A] bool) -> actions [E, N] int64."""


def states_path(task_name: str, store: str | os.PathLike | None = None) -> Path:
    """Where `record_states` writes a task's samples."""
    return store_dir(store) / "states" / f"{task_name}.npz"


def record_states(task_name: str, n_states: int, store: str | os.PathLike | None = None, seed: int = 0,
                  policy: Policy | None = None, n_envs: int | None = None, every: int = 1,
                  progress: Callable[[int], None] | None = None) -> Path:
    """Roll out `policy` (uniformly random available actions by default) and save `n_states` states.

    States are taken from every `every`-th step of E parallel environments (E defaults to
    min(64, n_states)), including each episode's first state and, through final_state, its terminal
    one. Returns the .npz path. Raises UsageError for n_states < 1, MissingDependencyError when the
    task's environment is not installed.
    """
    import numpy as np
    import torch

    from tfcaf.tasks.env import random_actions

    if n_states < 1:
        raise UsageError(f"n_states must be >= 1, got {n_states}")
    if every < 1:
        raise UsageError(f"every must be >= 1, got {every}")
    card = get_card(task_name)
    e = n_envs or max(1, min(64, n_states))
    gen = torch.Generator().manual_seed(seed)
    chunks: list[torch.Tensor] = []
    have, t = 0, 0
    with make_env(task_name, n_envs=e, seed=seed) as env:
        out = env.reset(seed=seed)
        chunks.append(out.state.detach().to("cpu", torch.float32).clone())
        have += e
        while have < n_states:
            actions = random_actions(out.avail_actions, gen) if policy is None else policy(out.obs, out.state, out.avail_actions)
            out = env.step(actions)
            t += 1
            if t % every == 0:
                chunks.append(out.state.detach().to("cpu", torch.float32).clone())
                have += e
            done = out.done
            if bool(done.any()):  # terminal states matter most (dead agents, empty maps)
                chunks.append(out.final_state[done].detach().to("cpu", torch.float32).clone())
                have += int(done.sum())
            if progress is not None:
                progress(min(have, n_states))
    states = torch.cat(chunks)  # [M', S]
    pick = torch.randperm(states.shape[0], generator=gen)[:n_states]
    states = states[pick].numpy().astype(np.float32)  # [M, S]
    if states.shape[1] != card.state_dim:
        raise UsageError(f"{task_name}: environment returned state_dim {states.shape[1]}, card says {card.state_dim}")
    path = states_path(task_name, store)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"states": states}
    if card.alive is not None:
        arrays["alive"] = (states[:, list(card.alive.columns)] > card.alive.threshold).astype(np.float32)
    meta = {"task": task_name, "state_dim": card.state_dim, "seed": seed, "n_envs": e, "every": every,
            "policy": "random available actions" if policy is None else getattr(policy, "__name__", "custom")}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def load_states(task_name: str, store: str | os.PathLike | None = None) -> "np.ndarray | None":
    """The recorded states [M, S] float32 of a task, or None when none were recorded.

    Raises UsageError when the file exists but does not match the task card's state_dim (re-record).
    """
    import numpy as np

    path = states_path(task_name, store)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        states = np.asarray(data["states"], dtype=np.float32)
    card = get_card(task_name)
    if states.ndim != 2 or states.shape[1] != card.state_dim:
        raise UsageError(f"{path}: states have shape {states.shape}, but {task_name} has state_dim {card.state_dim}; "
                         f"re-record with `tfcaf record-states --task {task_name}`")
    return states


def load_metadata(task_name: str, store: str | os.PathLike | None = None) -> dict | None:
    """The metadata saved with a task's samples, or None."""
    import numpy as np

    path = states_path(task_name, store)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["meta"]))
