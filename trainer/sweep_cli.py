"""`tfcaf sweep`: a tasks x arms x seeds grid of `tfcaf train` runs on Ray (see trainer/sweep.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def sweep(
    file: Optional[Path] = typer.Argument(None, help="A sweep TOML file (keys: task, algo, mixer, seeds, steps, max_concurrent, set, address)."),
    task: list[str] = typer.Option([], "--task", help="Task (repeatable)."),
    algo: list[str] = typer.Option([], "--algo", help="Algorithm (repeatable; default vd)."),
    mixer: list[str] = typer.Option([], "--mixer", help="Mixer for --algo vd (repeatable; default qmix): each is one arm."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds per task x arm (0..N-1; default 3)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Env steps per run (default: each run's own)."),
    sets: list[str] = typer.Option([], "--set", help="FIELD=VALUE passed to every run (repeatable)."),
    address: Optional[str] = typer.Option(None, "--address", help="An existing Ray cluster (default: start a local one sized to the cores)."),
    max_concurrent: Optional[int] = typer.Option(None, "--max-concurrent", min=1, help="At most K runs at once (default: the cluster's CPUs)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue a killed sweep (its id or directory): finished cells are not rerun."),
    store: Optional[Path] = typer.Option(None, "--store", help="Store directory (default $TFCAF_STORE or ./.tfcaf)."),
    as_json: bool = typer.Option(False, "--json", help="End with the JSON summary on stdout."),
) -> int:
    """Run a seeds x arms x tasks grid of ordinary `tfcaf train` runs on Ray; resumable; ends with `tfcaf report`."""
    import sys

    from tfcaf.errors import UsageError
    from tfcaf.store import store_dir
    from tfcaf.trainer.sweep import Sweep, SweepSpec, _ray, grid, load_toml

    root = store_dir(store)
    _ray()  # the install line before any work
    if resume:
        if file or task or algo or mixer or seeds is not None or steps is not None or sets:
            raise UsageError("--resume takes the grid from the sweep itself; give no FILE, --task, --algo, --mixer, --seeds, --steps or --set")
        sw = Sweep.open(root, resume)
    else:
        conf = load_toml(file) if file else {}
        tasks = task or conf.get("task") or []
        algos = algo or conf.get("algo") or []
        mixers = mixer or conf.get("mixer") or []
        n = seeds if seeds is not None else int(conf.get("seeds") or 3)
        steps = steps if steps is not None else conf.get("steps")
        max_concurrent = max_concurrent or conf.get("max_concurrent")
        address = address or conf.get("address")
        cells = grid(tasks, algos, mixers, n)
        from tfcaf.tasks.registry import get_task

        for t in tasks:
            get_task(t)  # unknown task names are a usage error before Ray starts
        sw = Sweep.create(root, SweepSpec(tuple(tasks), tuple(algos), tuple(mixers), n, steps,
                                          tuple(sets or conf.get("set") or ()), tuple(cells)))
    print(f"sweep {sw.sweep_id}: {len(sw.spec.cells)} cells, {len(sw.pending())} to run ({sw.root})", file=sys.stderr)

    def progress(c: dict) -> None:
        print(f"sweep {sw.sweep_id}: {c['done']}/{c['total']} done, {c['running']} running, {c['failed']} failed", file=sys.stderr)

    summary = sw.run(address=address, max_concurrent=max_concurrent, progress=progress)
    if as_json:
        print(json.dumps(summary))
    else:
        for f in summary["failures"]:
            print(f"failed: {f['cell_id']} (exit {f['rc']}): {ascii(f['error'])[1:-1]}")
        rep = summary["report"] or {}
        if rep.get("table_md"):
            print(Path(rep["table_md"]).read_text(encoding="utf-8"), end="")
            print(f"curves: {rep['png']}")
        print(f"summary: {sw.root / 'summary.json'}  ({summary['done']} done, {summary['failed']} failed)")
    return 1 if summary["failed"] else 0


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
