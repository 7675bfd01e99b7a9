"""`tfcaf report`: learning curves (mean and 95% CI over seeds, per task and arm) and a results table.

An arm is what a run is compared as: the mixer for value decomposition (`vdn`, `qmix`, `tfcaf:NAME`), the
algorithm otherwise (`happo`, `hatrpo`, `mappo`); all arms of a task share one plot.

Final = the last greedy test of a run; best = its best test. Across seeds the table gives the mean, the
IQM (interquartile mean: the mean of the middle 50% of seeds, Agarwal et al. 2021) and the seed count.
Curves are interpolated onto a common grid of env steps before averaging, because seeds test at
slightly different step counts (collection ends on episode boundaries).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tfcaf.errors import RejectedError, UsageError

# Two-sided 95% Student-t quantiles for 1..30 degrees of freedom (beyond: 1.96).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass
class RunCurve:
    """Greedy test results of one run: steps [K], returns [K], win rates [K] (NaN when not SMAX)."""

    path: Path
    task: str
    mixer: str | None
    seed: int
    steps: np.ndarray
    returns: np.ndarray
    wins: np.ndarray
    status: str = "unknown"
    summary: dict[str, Any] = field(default_factory=dict)
    algo: str = "vd"
    arm: str = ""

    def __post_init__(self) -> None:
        if not self.arm:
            self.arm = self.mixer if self.algo == "vd" and self.mixer else self.algo


def load_run(path: Path) -> RunCurve:
    """Read a run directory's provenance and test lines (the last line per env_steps wins after a resume)."""
    prov_path, metrics_path = path / "provenance.json", path / "metrics.jsonl"
    if not prov_path.is_file() or not metrics_path.is_file():
        raise UsageError(f"{path} is not a training run directory (needs provenance.json and metrics.jsonl).")
    from tfcaf.files import finite_number, read_json, read_jsonl  # store files are untrusted: one reader

    prov = read_json(prov_path, "provenance")
    if not isinstance(prov.get("task"), str) or not isinstance(prov.get("mixer"), (str, type(None))) \
            or not isinstance(prov.get("algo", "vd"), str):
        raise RejectedError(f"provenance {prov_path} has no task/mixer/algo names; is it a training run?")
    seed = prov.get("seed", 0)
    tests: dict[int, dict[str, Any]] = {}
    for rec in read_jsonl(metrics_path, "metrics log"):  # a line cut by a kill is skipped
        if rec.get("kind") == "test" and finite_number(rec.get("env_steps")) and finite_number(rec.get("test_return_mean")):
            tests[int(rec["env_steps"])] = rec
    keys = sorted(tests)
    wins = [tests[k].get("test_win_rate") for k in keys]
    status_path = path / "status.json"
    status = read_json(status_path, "run status").get("status", "unknown") if status_path.is_file() else "unknown"
    return RunCurve(path, prov["task"], prov.get("mixer"), int(seed) if finite_number(seed) else 0, np.array(keys, dtype=float),
                    np.array([tests[k]["test_return_mean"] for k in keys], dtype=float),
                    np.array([w if finite_number(w) else np.nan for w in wins], dtype=float), str(status),
                    algo=str(prov.get("algo", "vd")), arm=str(prov.get("arm") or ""))


def expand_runs(items: list[str]) -> list[Path]:
    """Run directories from the arguments: a run dir, or any folder containing run dirs (searched recursively)."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if (p / "provenance.json").is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(q.parent for q in p.rglob("provenance.json") if (q.parent / "metrics.jsonl").is_file()))
        else:
            raise UsageError(f"{item} is neither a training run directory nor a folder of runs.")
    if not out:
        raise UsageError("no training runs found in " + ", ".join(items))
    return list(dict.fromkeys(out))


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: drop the lowest and highest quarter (floor(n/4) each), average the rest."""
    x = np.sort(values[~np.isnan(values)])
    if x.size == 0:
        return float("nan")
    cut = int(math.floor(0.25 * x.size))
    return float(x[cut: x.size - cut].mean())


def mean_ci95(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and 95% t-interval half-width over rows (seeds): [S, K] -> ([K], [K])."""
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    if n < 2:
        return mean, np.zeros_like(mean)
    t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
    return mean, t * samples.std(axis=0, ddof=1) / math.sqrt(n)


def group(curves: list[RunCurve]) -> dict[tuple[str, str], list[RunCurve]]:
    out: dict[tuple[str, str], list[RunCurve]] = {}
    for c in curves:
        if c.steps.size:
            out.setdefault((c.task, c.arm), []).append(c)
    return out


def aggregate(runs: list[RunCurve], points: int = 60) -> dict[str, np.ndarray]:
    """Curves of one (task, mixer) on a common step grid up to the shortest run's last test."""
    end = min(r.steps[-1] for r in runs)
    grid = np.linspace(0.0, end, points) if end > 0 else np.array([0.0])
    ret = np.stack([np.interp(grid, r.steps, r.returns) for r in runs])  # [S, K]
    out = {"steps": grid}
    out["return_mean"], out["return_ci"] = mean_ci95(ret)
    if not np.isnan(runs[0].wins).all():
        win = np.stack([np.interp(grid, r.steps, np.nan_to_num(r.wins)) for r in runs])
        out["win_mean"], out["win_ci"] = mean_ci95(win)
    return out


def table(curves: list[RunCurve]) -> list[dict[str, Any]]:
    """One row per (task, arm): final and best test return / win rate over seeds (mean, IQM, 95% CI of the mean)."""
    rows = []
    for (task, arm), runs in sorted(group(curves).items()):
        final = np.array([r.returns[-1] for r in runs])
        best = np.array([r.returns.max() for r in runs])
        _, ci = mean_ci95(final.reshape(-1, 1))
        row: dict[str, Any] = {"task": task, "arm": arm, "algo": runs[0].algo, "mixer": runs[0].mixer, "seeds": len(runs),
                               "final_return_ci95": float(ci[0]),
                               "env_steps": int(min(r.steps[-1] for r in runs)),
                               "final_return_mean": float(final.mean()), "final_return_iqm": iqm(final),
                               "best_return_mean": float(best.mean()), "best_return_iqm": iqm(best)}
        if not np.isnan(runs[0].wins).all():
            fw = np.array([r.wins[-1] for r in runs])
            bw = np.array([np.nanmax(r.wins) for r in runs])
            _, wci = mean_ci95(np.nan_to_num(fw).reshape(-1, 1))
            row.update(final_win_rate_mean=float(np.nanmean(fw)), final_win_rate_iqm=iqm(fw), final_win_rate_ci95=float(wci[0]),
                       best_win_rate_mean=float(np.nanmean(bw)), best_win_rate_iqm=iqm(bw))
        rows.append(row)
    return rows


def plot(curves: list[RunCurve], out: Path) -> Path:
    """One column per task (return; and win rate below it where the task has wins); mean line, 95% CI band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    groups = group(curves)
    tasks = sorted({t for t, _ in groups})
    has_win = {t: any(not np.isnan(r.wins).all() for (tt, _), rs in groups.items() if tt == t for r in rs) for t in tasks}
    n_rows = 2 if any(has_win.values()) else 1
    fig, axes = plt.subplots(n_rows, len(tasks), figsize=(5.2 * len(tasks), 3.6 * n_rows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    arms = sorted({m for _, m in groups})
    for col, task in enumerate(tasks):
        for arm in arms:
            runs = groups.get((task, arm))
            if not runs:
                continue
            agg = aggregate(runs)
            colour = colours[arms.index(arm) % len(colours)]
            label = f"{arm} (n={len(runs)})"
            rows = [("return", "test return")] + ([("win", "test win rate")] if has_win[task] else [])
            for r, (key, ylabel) in enumerate(rows):
                ax = axes[r][col]
                ax.plot(agg["steps"], agg[f"{key}_mean"], color=colour, label=label)
                low, high = agg[f"{key}_mean"] - agg[f"{key}_ci"], agg[f"{key}_mean"] + agg[f"{key}_ci"]
                if key == "win":  # a t-interval over few seeds overshoots: a win rate lives in [0, 1]
                    low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
                ax.fill_between(agg["steps"], low, high, color=colour, alpha=0.2, linewidth=0)
                ax.set_ylabel(ylabel)
                ax.set_xlabel("env steps")
                ax.xaxis.set_major_formatter(EngFormatter(sep=""))
                ax.set_title(task + ("  (SMAX)" if has_win[task] else ""))
                ax.grid(alpha=0.3)
        axes[0][col].legend(fontsize=8, loc="best")
    for col, task in enumerate(tasks):
        if n_rows == 2 and not has_win[task]:
            axes[1][col].axis("off")
    fig.suptitle("greedy test performance: mean and 95% CI over seeds", fontsize=10)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(rows: list[dict[str, Any]]) -> str:
    f = lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"  # noqa: E731
    lines = ["| task | arm | seeds | env steps | final return (mean ± 95% CI / IQM) | best return (mean / IQM) | "
             "final win rate (mean ± 95% CI / IQM) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        win = (f"{f(r.get('final_win_rate_mean'))} ± {f(r.get('final_win_rate_ci95'))} / {f(r.get('final_win_rate_iqm'))}"
               if "final_win_rate_mean" in r else "—")
        lines.append(f"| {r['task']} | {r['arm']} | {r['seeds']} | {r['env_steps']} | {f(r['final_return_mean'])} ± "
                     f"{f(r.get('final_return_ci95'))} / {f(r['final_return_iqm'])} | {f(r['best_return_mean'])} / "
                     f"{f(r['best_return_iqm'])} | {win} |")
    return "\n".join(lines) + "\n"


def report(items: list[str], out: Path) -> dict[str, Any]:
    """Load runs, write curves.png, table.md and table.json under `out`; return paths and rows."""
    curves = [load_run(p) for p in expand_runs(items)]
    if not any(c.steps.size for c in curves):
        raise UsageError("none of the runs has a test result yet.")
    png = plot(curves, out)
    rows = table(curves)
    (out / "table.md").write_text(markdown(rows), encoding="utf-8")
    (out / "table.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return {"png": str(png), "table_md": str(out / "table.md"), "table_json": str(out / "table.json"), "rows": rows,
            "runs": len(curves)}
