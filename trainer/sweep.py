"""`tfcaf sweep`: a tasks x arms x seeds grid of ordinary `tfcaf train` runs, scheduled by Ray.

Each cell is one `tfcaf train ... --json` process (the same run directory, provenance and exit codes as a
run started by hand), launched from a Ray task that reserves 1 CPU (and a GPU fraction when the cluster
has GPUs). The sweep directory <store>/sweeps/<id>/ holds `sweep.json` (the grid, written once) and
`cells/<cell>.json` (one record per finished or failed cell, written atomically), so a killed sweep
resumes with `--resume <id>` and runs only the cells without a `done` record. A failed cell is recorded
with its exit code and last error line and the sweep goes on. The sweep ends with `tfcaf report` over
the finished runs and a JSON summary (`summary.json`).

    >>> cells = grid(["matrix_climbing"], ["vd"], ["vdn", "qmix"], 2)  # doctest: +SKIP
    >>> [c.cell_id for c in cells][:2]                                  # doctest: +SKIP
    ['matrix_climbing__vdn__s0', 'matrix_climbing__vdn__s1']
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from tfcaf.errors import MissingDependencyError, UsageError
from tfcaf.store import write_atomic
from tfcaf.trainer.algos import DEFAULT_ALGO, arm_name, get_algo

INSTALL = "pip install 'tfcaf[sweep]'  (or: pip install -c constraints.txt ray)"


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    task: str
    algo: str
    mixer: str | None
    seed: int

    @property
    def arm(self) -> str:
        return arm_name(self.algo, self.mixer)

    @property
    def cell_id(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.]", "-", f"{self.task}__{self.arm}__s{self.seed}")[:200]


@dataclass(frozen=True)
class SweepSpec:
    """The grid and the per-run settings, as written to sweep.json."""

    tasks: tuple[str, ...]
    algos: tuple[str, ...]
    mixers: tuple[str, ...]
    seeds: int
    steps: int | None = None
    sets: tuple[str, ...] = ()
    """Extra `--set FIELD=VALUE` for every run."""
    cells: tuple[Cell, ...] = field(default=())


def grid(tasks: list[str], algos: list[str], mixers: list[str], seeds: int) -> list[Cell]:
    """Cells task x arm x seed; value decomposition (`vd`) contributes one arm per mixer."""
    if seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if not tasks:
        raise UsageError("a sweep needs at least one --task")
    arms: list[tuple[str, str | None]] = []
    for algo in algos or [DEFAULT_ALGO]:
        spec = get_algo(algo)
        if spec.uses_mixer:
            arms += [(algo, m) for m in (mixers or ["qmix"])]
        else:
            arms.append((algo, None))
    return [Cell(t, a, m, s) for t in tasks for (a, m) in arms for s in range(seeds)]


def load_toml(path: Path) -> dict[str, Any]:
    """A sweep file: task, algo, mixer (lists or strings), seeds, steps, max_concurrent, set (list)."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"cannot read sweep file {path}: {err}") from None
    known = {"task", "algo", "mixer", "seeds", "steps", "max_concurrent", "set", "address"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"sweep file {path}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    as_list = lambda v: [v] if isinstance(v, str) else list(v or [])  # noqa: E731
    return {"task": as_list(data.get("task")), "algo": as_list(data.get("algo")), "mixer": as_list(data.get("mixer")),
            "seeds": data.get("seeds"), "steps": data.get("steps"), "max_concurrent": data.get("max_concurrent"),
            "set": as_list(data.get("set")), "address": data.get("address")}


def train_argv(cell: Cell, spec: SweepSpec, store: Path) -> list[str]:
    """The `tfcaf train` command line of a cell (1 torch thread per run)."""
    argv = [sys.executable, "-m", "tfcaf.cli", "train", "--task", cell.task, "--algo", cell.algo, "--seed", str(cell.seed),
            "--store", str(store), "--json"]
    if cell.mixer:
        argv += ["--mixer", cell.mixer]
    if spec.steps:
        argv += ["--steps", str(spec.steps)]
    sets = list(spec.sets)
    if not any(s.startswith("threads=") for s in sets):
        sets.append("threads=1")
    for s in sets:
        argv += ["--set", s]
    return argv


def run_cell(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run one `tfcaf train` process; its JSON summary, or the exit code and last stderr line."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = round(time.perf_counter() - start, 3)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    summary: dict[str, Any] = {}
    if lines:
        try:
            summary = json.loads(lines[-1])
        except json.JSONDecodeError:
            summary = {}
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return {"rc": proc.returncode, "summary": summary, "wall_s": wall,
            "error": (err_lines[-1][:500] if err_lines else "") if proc.returncode else ""}


def _ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "tfcaf sweep", INSTALL) from None
    return ray


class Sweep:
    """A sweep directory: the spec, the cell records, the Ray scheduling."""

    def __init__(self, root: Path, spec: SweepSpec) -> None:
        self.root, self.spec = root, spec
        (root / "cells").mkdir(parents=True, exist_ok=True)

    @classmethod
    def create(cls, store: Path, spec: SweepSpec) -> "Sweep":
        sweep_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid() % 100000:05d}"
        root = store / "sweeps" / sweep_id
        sweep = cls(root, spec)
        doc = {"sweep_id": sweep_id, **asdict(spec), "cells": [{**asdict(c), "cell_id": c.cell_id} for c in spec.cells]}
        write_atomic(root / "sweep.json", json.dumps(doc, indent=2))
        return sweep

    @classmethod
    def open(cls, store: Path, name: str) -> "Sweep":
        root = Path(name) if Path(name).is_dir() else store / "sweeps" / name
        path = root / "sweep.json"
        if not path.is_file():
            raise UsageError(f"no sweep '{name}' (looked for {path}). List them in {store / 'sweeps'}.")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            cells = tuple(Cell(str(c["task"]), str(c["algo"]), c["mixer"], int(c["seed"])) for c in doc["cells"])
            spec = SweepSpec(tuple(doc["tasks"]), tuple(doc["algos"]), tuple(doc["mixers"]), int(doc["seeds"]),
                             doc.get("steps"), tuple(doc.get("sets") or ()), cells)
        except (ValueError, KeyError, TypeError) as err:
            raise UsageError(f"{path} is not a tfcaf sweep file ({type(err).__name__}: {err})") from None
        return cls(root, spec)

    @property
    def sweep_id(self) -> str:
        return self.root.name

    def record(self, cell: Cell) -> dict[str, Any] | None:
        path = self.root / "cells" / f"{cell.cell_id}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def pending(self) -> list[Cell]:
        return [c for c in self.spec.cells if (self.record(c) or {}).get("status") != "done"]

    def run(self, address: str | None = None, max_concurrent: int | None = None,
            progress: Callable[[dict[str, int]], None] | None = None) -> dict[str, Any]:
        """Run every pending cell on Ray; returns the summary (also written to summary.json)."""
        ray = _ray()
        store = self.root / "store"
        todo = self.pending()
        counts = {"total": len(self.spec.cells), "done": len(self.spec.cells) - len(todo), "running": 0, "failed": 0}
        if todo:
            self._run_on_ray(ray, todo, store, address, max_concurrent, counts, progress)
        return self.finish()

    def _run_on_ray(self, ray, todo, store, address, max_concurrent, counts, progress) -> None:
        started_here = not ray.is_initialized()
        if started_here:
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = os.cpu_count() or 1
            ray.init(**kwargs)
        try:
            gpus = float(ray.cluster_resources().get("GPU", 0))
            cpus = int(ray.cluster_resources().get("CPU", 1))
            limit = max(1, max_concurrent or cpus)
            # GPUs are shared by fraction: at most `limit` runs, spread over the GPUs there are.
            options: dict[str, Any] = {"num_cpus": 1}
            if gpus:
                options["num_gpus"] = min(1.0, gpus / limit)
            remote = ray.remote(run_cell).options(**options)
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            queue = list(todo)
            inflight: dict[Any, Cell] = {}
            while queue or inflight:
                while queue and len(inflight) < limit:
                    cell = queue.pop(0)
                    argv = train_argv(cell, self.spec, store)
                    if gpus:
                        argv += ["--device", "cuda"]
                    inflight[remote.remote(argv, env)] = cell
                counts["running"] = len(inflight)
                if progress:
                    progress(dict(counts))
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    cell = inflight.pop(ref)
                    try:
                        out = ray.get(ref)
                    except Exception as err:  # a Ray worker died: the cell failed, the sweep goes on
                        out = {"rc": 3, "summary": {}, "wall_s": None, "error": f"ray: {type(err).__name__}: {str(err)[:300]}"}
                    self._write(cell, out)
                    counts["done" if out["rc"] == 0 else "failed"] += 1
            counts["running"] = 0
            if progress:
                progress(dict(counts))
        finally:
            if started_here:
                ray.shutdown()

    def _write(self, cell: Cell, out: dict[str, Any]) -> None:
        rec = {**asdict(cell), "cell_id": cell.cell_id, "arm": cell.arm, "status": "done" if out["rc"] == 0 else "failed",
               "rc": out["rc"], "run_dir": out["summary"].get("run_dir"), "wall_s": out["wall_s"], "error": out["error"],
               "summary": out["summary"]}
        write_atomic(self.root / "cells" / f"{cell.cell_id}.json", json.dumps(rec, indent=2))

    def finish(self) -> dict[str, Any]:
        """Report over the finished runs and the JSON summary."""
        records = [self.record(c) or {**asdict(c), "cell_id": c.cell_id, "status": "pending"} for c in self.spec.cells]
        done = [r for r in records if r.get("status") == "done" and r.get("run_dir")]
        summary: dict[str, Any] = {
            "sweep_id": self.sweep_id, "sweep_dir": str(self.root), "cells": len(records), "done": len(done),
            "failed": sum(r.get("status") == "failed" for r in records),
            "pending": sum(r.get("status") == "pending" for r in records),
            "failures": [{"cell_id": r["cell_id"], "rc": r.get("rc"), "error": r.get("error")} for r in records
                         if r.get("status") == "failed"],
            "runs": [r["run_dir"] for r in done], "report": None}
        if done:
            from tfcaf.trainer.report import report as make_report

            try:
                result = make_report([r["run_dir"] for r in done], self.root / "report")
                summary["report"] = {"rows": result["rows"], "png": str(result["png"]), "table_md": str(result["table_md"])}
            except UsageError as err:  # e.g. budgets too small for a single test point
                summary["report"] = {"error": str(err)}
        write_atomic(self.root / "summary.json", json.dumps(summary, indent=2, default=str))
        return summary
