"""`tfcaf tune` and `tfcaf generators`."""

from __future__ import annotations

import ast
import inspect
import json
from functools import lru_cache
from typing import Any, List, Optional

import typer

from tfcaf.errors import UsageError


@lru_cache(maxsize=1)
def _docs() -> dict[str, str]:
    from tfcaf.generator.tuning.train import TuneConfig

    body = ast.parse(inspect.getsource(TuneConfig)).body[0].body  # type: ignore[attr-defined]
    out = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr) \
                and isinstance(getattr(nxt, "value", None), ast.Constant) and isinstance(nxt.value.value, str):
            out[node.target.id] = " ".join(nxt.value.value.split())
    return out


def _h(name: str) -> str:
    return _docs().get(name, "")


def register(app: typer.Typer) -> None:
    @app.command()
    def tune(
        method: str = typer.Option("rft", "--method", help=_h("method")),
        base: str = typer.Option("smollm2", "--base", help=_h("base")),
        name: str = typer.Option(..., "--name", help=_h("name")),
        data: Optional[str] = typer.Option(None, "--data", help=_h("data")),
        online: bool = typer.Option(False, "--online", help=_h("online")),
        tasks: Optional[List[str]] = typer.Option(None, "--tasks", help=_h("tasks") + " Repeat or comma-separate."),
        steps: int = typer.Option(20, "--steps", help=_h("steps")),
        store: Optional[str] = typer.Option(None, "--store", help=_h("store")),
        seed: int = typer.Option(0, "--seed", help=_h("seed")),
        mode: Optional[str] = typer.Option(None, "--mode", help=_h("mode") + " Default: spec for sac-glam, else code."),
        full: bool = typer.Option(False, "--full", help="Fine-tune every weight instead of a LoRA adapter (small models)."),
        lora_rank: int = typer.Option(8, "--lora-rank", help=_h("lora_rank")),
        lr: Optional[float] = typer.Option(None, "--lr", help=_h("lr") + " Default 1e-4; sac-glam: the actor's (LoRA) Adam rate, default 1e-3."),
        batch: Optional[int] = typer.Option(None, "--batch", help=_h("batch") + " Default 2; sac-glam: transitions per update, default 8."),
        samples_per_step: int = typer.Option(2, "--samples-per-step", help=_h("samples_per_step")),
        max_new_tokens: int = typer.Option(256, "--max-new-tokens", help=_h("max_new_tokens")),
        stop_at_fence: bool = typer.Option(True, "--stop-at-fence/--no-stop-at-fence", help=_h("stop_at_fence")),
        temperature: float = typer.Option(1.0, "--temperature", help=_h("temperature")),
        rft_top: float = typer.Option(0.25, "--rft-top", help=_h("rft_top")),
        beta: float = typer.Option(0.01, "--beta", help=_h("beta")),
        length_norm: bool = typer.Option(False, "--length-norm", help=_h("length_norm")),
        kl_coef: float = typer.Option(0.05, "--kl-coef", help=_h("kl_coef")),
        swap_every: int = typer.Option(5, "--swap-every", help=_h("swap_every")),
        eval_samples: int = typer.Option(0, "--eval-samples", help=_h("eval_samples")),
        device: str = typer.Option("cpu", "--device", help=_h("device")),
        threads: int = typer.Option(1, "--threads", help=_h("threads")),
        force: bool = typer.Option(False, "--force", help=_h("force")),
        her: bool = typer.Option(True, "--her/--no-her", help=_h("her")),
        horizon: int = typer.Option(3, "--horizon", help=_h("horizon")),
        goals: Optional[List[str]] = typer.Option(None, "--goals", help=_h("goals") + " Repeat or comma-separate."),
        warmup: int = typer.Option(10, "--warmup", help=_h("warmup")),
        top_layers: int = typer.Option(2, "--top-layers", help=_h("top_layers")),
        glam_norm: str = typer.Option("mean", "--glam-norm", help=_h("glam_norm")),
        alpha_lr: float = typer.Option(3e-3, "--alpha-lr", help=_h("alpha_lr")),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    ) -> None:
        """Tune a local generator on its vetted attempts (rft, tbrm or cory), or train a refinement agent
        (sac-glam); writes <store>/generators/NAME/.

        Exit code 0 when training finished, 2 usage, 3 infrastructure."""
        from tfcaf.generator.tuning.train import TuneConfig, tune as run_tune

        task_list = tuple(t.strip() for item in (tasks or []) for t in item.split(",") if t.strip())
        goal_list = tuple(g.strip() for item in (goals or []) for g in item.split(",") if g.strip())
        sac = method == "sac-glam"
        config = TuneConfig(method=method, base=base, name=name, data=data, online=online, tasks=task_list,
                            steps=steps, store=store, seed=seed, mode=mode or ("spec" if sac else "code"), lora=not full,
                            lora_rank=lora_rank, lr=lr if lr is not None else (1e-3 if sac else 1e-4),
                            batch=batch if batch is not None else (8 if sac else 2), samples_per_step=samples_per_step,
                            max_new_tokens=max_new_tokens, stop_at_fence=stop_at_fence, temperature=temperature, rft_top=rft_top, beta=beta,
                            length_norm=length_norm, kl_coef=kl_coef, swap_every=swap_every, eval_samples=eval_samples,
                            device=device, threads=threads, force=force, her=her, horizon=horizon, goals=goal_list,
                            warmup=warmup, top_layers=top_layers, glam_norm=glam_norm, alpha_lr=alpha_lr).check()
        summary = _with_progress(run_tune, config)
        if as_json:
            print(json.dumps(summary, default=str))
        elif sac:
            t = summary["training"]
            print(f"trained refiner '{summary['name']}' (sac-glam, {t['updates']} updates, {t['episodes']} episodes, "
                  f"{t['relabeled_episodes']} relabelled, {summary['train_s']:.1f} s) in {summary['out_dir']}")
            print(f"training success rate: {t['success_rate']:.3f} (first half {t['success_rate_first_half']:.3f}, "
                  f"second half {t['success_rate_second_half']:.3f}); alpha {t['alpha']:.4f}")
            print(f"use it: tfcaf generate --task TASK --refiner {summary['name']}")
        else:
            print(f"tuned generator '{summary['name']}' ({summary['method']}, {summary['steps']} steps, "
                  f"{summary['online_samples']} online samples, {summary['train_s']:.1f} s) in {summary['out_dir']}")
            for key in ("eval_before", "eval_after"):
                if summary.get(key):
                    e = summary[key]
                    print(f"{key}: pass rate {e['pass_rate']:.3f}, mean reward {e['mean_reward']:.3f} over {e['n']} samples")
            print(f"use it: tfcaf generate --task TASK --generator {summary['name']}")

    group = typer.Typer(help="List the tuned generators with their manifests; `export NAME` writes a generator's "
                             "llama.cpp adapter.gguf.", no_args_is_help=False)

    @group.callback(invoke_without_command=True)
    def generators(
        ctx: typer.Context,
        store: Optional[str] = typer.Option(None, "--store", help="Store directory (default $TFCAF_STORE or ./.tfcaf)."),
        as_json: bool = typer.Option(False, "--json", help="Print the manifests as JSON."),
    ) -> None:
        """List the tuned generators with their manifests."""
        if ctx.invoked_subcommand is not None:
            return
        from tfcaf.generator.tuning.serve import list_generators
        from tfcaf.store import store_dir

        items = list_generators(store_dir(store))
        if as_json:
            print(json.dumps(items, default=str))
            return
        if not items:
            print("no tuned generators yet: `tfcaf tune --method rft --name NAME --data FILE.jsonl` trains one.")
            return
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title="tuned generators")
        for col in ("name", "method", "mode", "status", "base", "base sha256", "data", "llama.cpp", "after (pass / reward)"):
            table.add_column(col, overflow="fold")
        for m in items:
            b = m.get("base") or {}
            d = m.get("data") or {}
            after = m.get("eval_after") or {}
            cells = [m.get("name"), m.get("method"), m.get("mode"), m.get("status"), b.get("spec"),
                     str(b.get("sha256") or "")[:12], f"{d.get('path')} ({d.get('rows')} rows)" if d.get("path") else "online",
                     "adapter.gguf" if isinstance(m.get("gguf_adapter"), dict) else "-",
                     f"{after.get('pass_rate', 0):.2f} / {after.get('mean_reward', 0):.2f}" if after else "-"]
            table.add_row(*[Text(str(c)) for c in cells])  # store files are untrusted: never markup
        Console().print(table)

    @group.command("export")
    def export_cmd(
        name: str = typer.Argument(..., help="The tuned generator's name (see `tfcaf generators`)."),
        store: Optional[str] = typer.Option(None, "--store", help="Store directory (default $TFCAF_STORE or ./.tfcaf)."),
        force: bool = typer.Option(False, "--force", help="Write adapter.gguf again even when the manifest records one."),
        as_json: bool = typer.Option(False, "--json", help="Print the adapter.gguf record as JSON."),
    ) -> None:
        """Write the generator's LoRA adapter as a llama.cpp LoRA GGUF (adapter.gguf, sha256 in the manifest),
        for folders tuned before `tfcaf tune` wrote it. Needs a LoRA generator tuned on a GGUF base (smollm2)."""
        from tfcaf.display import inert
        from tfcaf.generator.tuning.export import export_generator
        from tfcaf.generator.tuning.serve import generator_path
        from tfcaf.store import store_dir

        record = export_generator(generator_path(store_dir(store), name), force=force)
        if as_json:
            print(json.dumps(record, default=str))
            return
        print(inert(f"{name}: {record['file']} ({record['tensors']} tensors, rank {record['rank']}, alpha {record['alpha']:g}, "
                    f"sha256 {record['sha256'][:12]}...)"))

    app.add_typer(group, name="generators")


def _with_progress(run_tune: Any, config: Any) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]tune {config.method}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=Console(stderr=True)) as bar:
        task = bar.add_task("loading the base model", total=config.steps)

        def progress(step: int, **info: Any) -> None:
            loss = info.get("loss")
            bar.update(task, completed=step + 1, description="" if loss is None else f"loss {loss:.4f}")

        return run_tune(config, progress=progress)
