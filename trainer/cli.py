"""Command-line verbs of this stage: `tfcaf train` and `tfcaf report` (registered by tfcaf.cli)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer


def _parse_sets(items: list[str]) -> dict[str, str]:
    from tfcaf.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects FIELD=VALUE, got '{item}' (see --show-config for the fields).")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def train(
    task: Optional[str] = typer.Option(None, "--task", help="Task name (see `tfcaf tasks`)."),
    algo: str = typer.Option("vd", "--algo", help="vd (value decomposition, takes --mixer) | happo | hatrpo | mappo."),
    mixer: Optional[str] = typer.Option(None, "--mixer", help="With --algo vd: vdn | qmix (default) | handwritten | "
                                        "tfcaf:<approved name>. A usage error with the other algorithms."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Env steps to train for (default: the task family's)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (default 0)."),
    envs: Optional[int] = typer.Option(None, "--envs", help="E, environments stepped together."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto."),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON or TOML file of config fields."),
    sets: list[str] = typer.Option([], "--set", help="Any config field, FIELD=VALUE (repeatable)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Store directory (default $TFCAF_STORE or ./.tfcaf)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue a killed run (its id or directory)."),
    show_config: bool = typer.Option(False, "--show-config", help="Print the resolved config with each value's source and exit."),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON summary line on stdout."),
) -> None:
    """Train on a task: value decomposition with a mixer (VDN, QMIX, the hand-written reference, an approved
    TFCAF), or HAPPO / HATRPO / MAPPO (HARL's heterogeneous-agent family)."""
    from tfcaf.errors import UsageError
    from tfcaf.trainer.algos import get_algo
    from tfcaf.runtime import resolve_device
    from tfcaf.tasks.registry import get_card
    from tfcaf.trainer.config import VD_ONLY, field_docs, read_config_file, resolve_config
    from tfcaf.trainer.run import Run

    spec = get_algo(algo)
    if mixer is not None and not spec.uses_mixer:
        raise UsageError(f"--mixer does not apply to --algo {algo}: {algo} learns a centralised V critic, not a mixed Q. "
                         "Drop --mixer, or use --algo vd with it.")
    dev = resolve_device(device)
    if resume:
        run = Run.resume(resume, store=store, device=dev, steps=steps)
    else:
        if not task:
            raise UsageError("--task is required (or --resume RUN). List tasks with `tfcaf tasks`.")
        card = get_card(task)
        file_values = read_config_file(config) if config else {}
        flags = {"steps": steps, "seed": seed, "n_envs": envs, **_parse_sets(sets)}
        cfg, source = resolve_config(card.family, file_values, flags, algo=spec.name)
        if show_config:
            docs = field_docs()
            print(f"{'algo':24} = {spec.name!r:12} [{'flag' if algo != 'vd' else 'default'}]  {spec.description}")
            for name, value in cfg.to_dict().items():
                doc = docs.get(name, "")
                if (doc.startswith("[pg]") and spec.path != "rollout") or (name in VD_ONLY and spec.path == "rollout"):
                    continue  # fields the other family reads: hidden, they do not apply
                print(f"{name:24} = {value!r:12} [{source[name]}]  {doc}")
            return
        run = Run.start(task, mixer, cfg, device=dev, store=store, config_source=source, algo=spec.name)
    summary = _train_with_progress(run)
    if as_json:
        print(json.dumps(summary))
    else:
        from tfcaf.display import inert

        win = summary["test_win_rate"]
        print(f"done: {summary['env_steps']} env steps in {summary['wall_s']:.0f} s ({summary['env_steps_per_s']:.0f}/s), "
              f"test return {summary['test_return_mean']:.3g}" + (f", win rate {win:.2f}" if win is not None else "")
              + f"\nrun: {inert(summary['run_dir'])}")


def _train_with_progress(run: "object") -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from tfcaf.display import inert_markup

    console = Console(file=sys.stderr)
    columns = (TextColumn("[bold]train[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        tid = bar.add_task(inert_markup(f"{run.task} {run.arm}"), total=run.cfg.steps, completed=run.env_steps, info="")  # type: ignore[attr-defined]

        def update(done: int, total: int, info: dict) -> None:
            text = f"eps {info['epsilon']:.2f}" if "epsilon" in info else ""
            if info.get("test_return_mean") is not None:
                text += f" test {info['test_return_mean']:.3g}"
            if info.get("test_win_rate") is not None:
                text += f" win {info['test_win_rate']:.2f}"
            bar.update(tid, completed=min(done, total), info=text)

        return run.train(update)  # type: ignore[attr-defined]


def report(
    runs: list[str] = typer.Argument(..., help="Run directories, or folders holding them (searched recursively)."),
    out: Path = typer.Option(Path("report"), "--out", help="Output folder for curves.png, table.md, table.json."),
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
) -> None:
    """Learning curves (mean, 95% CI over seeds) and a final/best/IQM table for training runs."""
    from tfcaf.trainer.report import markdown, report as make_report

    result = make_report(runs, out)
    if as_json:
        print(json.dumps(result))
    else:
        from tfcaf.display import inert

        print(inert(markdown(result["rows"]), keep_newlines=True), end="")  # rows quote provenance files: inert
        print(inert(f"curves: {result['png']}") + "\n" + inert(f"table: {result['table_md']}"))


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to `app`."""
    app.command("train")(train)
    app.command("report")(report)
