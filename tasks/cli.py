"""Command-line verbs of the tasks stage: `tfcaf tasks [NAME] [--json]` and `tfcaf record-states`."""

from __future__ import annotations

import json
from typing import Optional

import typer


def _task_row(name: str) -> dict:
    from tfcaf.tasks.registry import get_task

    task = get_task(name)
    c = task.card
    return {"name": c.name, "family": c.family, "backend": c.backend, "n_agents": c.n_agents, "state_dim": c.state_dim,
            "n_actions": c.n_actions, "episode_limit": c.episode_limit, "installed": task.installed,
            "requires": list(task.requires), "install": task.install}


def tasks(name: Optional[str] = typer.Argument(None, help="Show this task's full card (e.g. smac_3m); omit to list every task."),
          as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table / prose."),
          check: bool = typer.Option(False, "--check", help="Run the conformance checks on NAME's environment "
                                     "(any task, a plugin's included); exit 1 when it disagrees with its card.")) -> None:
    """List every task (family, backend, N agents, S state features, A actions, installed?) or show one task's card."""
    from tfcaf.tasks.describe import card_to_dict, describe
    from tfcaf.tasks.registry import TASKS, get_task

    if check:
        if name is None:
            from tfcaf.errors import UsageError

            raise UsageError("--check needs a task name: tfcaf tasks --check NAME")
        _check(name, as_json)
        return
    if name is None:
        rows = [_task_row(n) for n in TASKS]
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="tfcaf tasks (smac_* run on JaxMARL's SMAX: SMAC-like, not StarCraft II)")
        for col in ("name", "family", "backend", "N", "S", "A", "limit", "installed"):
            table.add_column(col, justify="right" if col in ("N", "S", "A", "limit") else "left",
                             no_wrap=col == "name")
        from rich.markup import escape

        for r in rows:  # plugin cards are not tfcaf's text: no Rich markup from them
            r = {k: escape(v) if isinstance(v, str) else v for k, v in r.items()}
            table.add_row(r["name"], r["family"], r["backend"], str(r["n_agents"]), str(r["state_dim"]), str(r["n_actions"]),
                          str(r["episode_limit"]), "yes" if r["installed"] else f"no: {r['install']}")
        Console().print(table)
        return
    task = get_task(name)
    if as_json:
        print(json.dumps({**card_to_dict(task.card), "installed": task.installed, "install": task.install}, indent=2))
        return
    print(describe(task.card))
    print()
    print(f"Environment: {'installed' if task.installed else 'NOT installed; install with: ' + task.install}")


def _check(name: str, as_json: bool) -> None:
    from tfcaf.errors import RejectedError
    from tfcaf.runtime import configure_torch
    from tfcaf.tasks.conformance import ConformanceError, check_task

    configure_torch()
    try:
        result = check_task(name)
    except ConformanceError as err:
        if as_json:
            print(json.dumps({"task": name, "ok": False, "error": str(err)}))
        raise RejectedError(f"task '{name}' fails conformance: {err}") from None
    row = {"task": name, "ok": True, "n_envs": result.n_envs, "steps": result.steps, "episodes": result.episodes}
    print(json.dumps(row) if as_json else
          f"{name}: conforms to its card ({result.steps} steps x {result.n_envs} envs, {result.episodes} episodes)")


def record_states(task: str = typer.Option(..., "--task", help="Task name, e.g. smac_3m (see `tfcaf tasks`)."),
                  n: int = typer.Option(4096, "--n", min=1, help="Number of states to store."),
                  seed: int = typer.Option(0, "--seed", help="Seed of the environments and the random policy."),
                  every: int = typer.Option(1, "--every", min=1, help="Keep the states of every k-th step (more diverse samples)."),
                  store: Optional[str] = typer.Option(None, "--store", help="Store directory (default $TFCAF_STORE or ./.tfcaf)."),
                  as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Roll out random available actions in TASK's environment and store real global states for vetting."""
    from tfcaf.runtime import configure_torch
    from tfcaf.tasks.samples import load_states
    from tfcaf.tasks.samples import record_states as record

    configure_torch()
    if as_json:
        path = record(task, n, store=store, seed=seed, every=every)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            job = bar.add_task(f"recording {task} states", total=n)
            path = record(task, n, store=store, seed=seed, every=every, progress=lambda k: bar.update(job, completed=k))
    states = load_states(task, store=store)
    assert states is not None
    result = {"task": task, "path": str(path), "n_states": int(states.shape[0]), "state_dim": int(states.shape[1])}
    print(json.dumps(result) if as_json else f"stored {result['n_states']} states of {task} (S = {result['state_dim']}) in {path}")


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to `app`."""
    app.command("tasks")(tasks)
    app.command("record-states")(record_states)
