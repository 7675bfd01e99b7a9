"""`tfcaf dataset build | stats | goals`: generate runs as training rows (see evaluator/dataset.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the `dataset` verb group to `app`."""
    group = typer.Typer(help="Training data from generate runs: every candidate a row (tiered reward, goals, hindsight relabelling).",
                        no_args_is_help=True)

    @group.command("build")
    def build_cmd(
        out: Path = typer.Option(..., "--out", help="JSONL file to write (one row per line; replaced atomically)."),
        store: Optional[str] = typer.Option(None, "--store", help="Store directory (default $TFCAF_STORE or ./.tfcaf)."),
        runs: Optional[List[str]] = typer.Option(None, "--runs", help="Only these runs (id, <task>/<id> or directory); repeatable. Default: every run in the store."),
        no_her: bool = typer.Option(False, "--no-her", help="Do not add hindsight-relabelled rows."),
        as_code: bool = typer.Option(False, "--as-code", help="Add a code-mode row per spec-mode candidate with a vetted rendered source: the code-mode prompt, the vetted source as the answer, the reward from its verdict (relabeled, relabeled_from the spec row)."),
        as_json: bool = typer.Option(False, "--json", help="Print the build report as JSON."),
    ) -> None:
        """Build a dataset from the store's generate runs (rewards and goals recomputed from the verdicts)."""
        from tfcaf.evaluator.dataset import build
        from tfcaf.store import store_dir

        report = build(store_dir(store), out, runs=runs or None, her=not no_her, as_code=as_code)
        if as_json:
            print(json.dumps(report))
        else:
            for key, value in report.items():
                print(f"{key}: {value}")
        if not report.get("rows"):
            print("tfcaf: no rows: the runs hold no usable candidates", file=sys.stderr)
            raise typer.Exit(1)

    @group.command("stats")
    def stats_cmd(
        file: Path = typer.Argument(..., help="A JSONL file written by `tfcaf dataset build`."),
        as_json: bool = typer.Option(False, "--json", help="Print the statistics as one JSON object."),
    ) -> None:
        """Counts per task, tier, goal and generator; relabelled rows; the reward histogram; judge agreement."""
        from tfcaf.evaluator.dataset import read_rows, stats

        result = stats(read_rows(file))
        if as_json:
            print(json.dumps(result))
            return
        for key, value in result.items():
            if isinstance(value, dict):
                print(f"{key}:")
                for k, v in value.items():
                    print(f"  {ascii(k)[1:-1]}: {v}")
            else:
                print(f"{key}: {value}")

    @group.command("goals")
    def goals_cmd(task: Optional[str] = typer.Option(None, "--task", help="Expand the goals for this task (features, alive flag).")) -> None:
        """List the goal vocabulary (ids a prompt can request with `generate --goals`)."""
        from tfcaf.evaluator.goals import GOALS, candidate_goals, default_goals, describe

        if task:
            from tfcaf.tasks.registry import get_card

            card = get_card(task)
            defaults = set(default_goals(card))
            for g in candidate_goals(card, fitness=0.0):
                print(f"{g}{' (default)' if g in defaults else ''}: {describe(g)}")
            return
        for g in GOALS.values():
            print(f"{g.id + (':<x>' if g.parametrised else '')}: {g.text.format(arg='<x>')}")

    app.add_typer(group, name="dataset")
