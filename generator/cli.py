"""Command-line verbs of the generator stage: `generate`, `review`, `approve`, `approved`.

Option help texts come from the GenerateConfig field docstrings, so `--help` and `--show-config`
say the same thing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from tfcaf.display import inert
from tfcaf.errors import UsageError
from tfcaf.generator.config import field_docs

_DOCS = field_docs()


def _h(name: str) -> str:
    return _DOCS.get(name, "")


def _show_config(config: Any, sources: dict[str, str], as_json: bool) -> None:
    from dataclasses import fields

    rows = [{"setting": f.name, "value": getattr(config, f.name), "source": sources.get(f.name, "default"),
             "help": _DOCS.get(f.name, "")} for f in fields(config)]
    rows.append({"setting": "mode (resolved)", "value": config.resolved_mode, "source": "derived", "help": ""})
    if as_json:
        print(json.dumps(rows, indent=1, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    from tfcaf.display import inert_text

    table = Table(title="tfcaf generate: settings and where they came from")
    for col in ("setting", "value", "source", "help"):
        table.add_column(col, overflow="fold")
    for r in rows:  # values may come from a tfcaf.toml in the working directory: inert
        table.add_row(*(inert_text(c) for c in (r["setting"], r["value"], r["source"], r["help"])))
    Console().print(table)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console

    from tfcaf.display import inert_markup as m

    con = Console(highlight=False)
    con.print(f"run [bold]{m(summary['run_id'])}[/] ({m(summary['task'])}, {m(summary['backend'])}:{m(summary['model'])}, mode {m(summary['mode'])})")
    con.print(f"candidates {summary['candidates']}, accepted [bold]{summary['accepted']}[/], "
              f"LLM calls {summary['llm_calls']} (+{summary['cached_calls']} cached), tokens {summary['tokens']['total']}, "
              f"{summary['wall_s']:.1f} s ({m(summary['stopped'])})")
    if summary["selected"]:
        con.print(f"selected [bold green]{m(summary['selected'])}[/] score {summary['selected_score']['total']:.3f}")
        con.print(f"review:  tfcaf review {m(summary['run_id'])}")
        con.print(f"approve: tfcaf approve {m(summary['run_id'])}:{m(summary['selected'])} --name NAME")
    else:
        con.print("[bold red]no candidate was accepted[/]: see the reasons with "
                  f"tfcaf review {m(summary['run_id'])}")
    con.print(f"run directory: {m(summary['run_dir'])}")


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to `app`."""

    @app.command()
    def generate(
        task: Optional[str] = typer.Option(None, "--task", "-t", help=_h("task")),
        backend: Optional[str] = typer.Option(None, "--backend", help=_h("backend")),
        model: Optional[str] = typer.Option(None, "--model", help=_h("model")),
        base_url: Optional[str] = typer.Option(None, "--base-url", help=_h("base_url")),
        api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help=_h("api_key_env")),
        mode: Optional[str] = typer.Option(None, "--mode", help=_h("mode")),
        k: Optional[int] = typer.Option(None, "-k", "--k", help=_h("k")),
        rounds: Optional[int] = typer.Option(None, "--rounds", help=_h("rounds")),
        repairs: Optional[int] = typer.Option(None, "--repairs", help=_h("repairs")),
        temperature: Optional[float] = typer.Option(None, "--temperature", help=_h("temperature")),
        top_p: Optional[float] = typer.Option(None, "--top-p", help=_h("top_p")),
        max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help=_h("max_tokens")),
        seed: Optional[int] = typer.Option(None, "--seed", help=_h("seed")),
        judge: Optional[bool] = typer.Option(None, "--judge/--no-judge", help=_h("judge")),
        critic: Optional[bool] = typer.Option(None, "--critic/--no-critic", hidden=True, help="Deprecated alias of --judge/--no-judge."),
        goals: Optional[str] = typer.Option(None, "--goals", help=_h("goals")),
        fitness_steps: Optional[int] = typer.Option(None, "--fitness-steps", help=_h("fitness_steps")),
        timeout_s: Optional[float] = typer.Option(None, "--timeout-s", help=_h("timeout_s")),
        max_retries: Optional[int] = typer.Option(None, "--max-retries", help=_h("max_retries")),
        threads: Optional[int] = typer.Option(None, "--threads", help=_h("threads")),
        time_budget_s: Optional[float] = typer.Option(None, "--time-budget-s", help=_h("time_budget_s")),
        cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", help=_h("cache")),
        price_prompt: Optional[float] = typer.Option(None, "--price-prompt", help=_h("price_prompt")),
        price_completion: Optional[float] = typer.Option(None, "--price-completion", help=_h("price_completion")),
        store: Optional[str] = typer.Option(None, "--store", help=_h("store")),
        generator: Optional[str] = typer.Option(None, "--generator", help=_h("generator")),
        device: Optional[str] = typer.Option(None, "--device", help=_h("device")),
        context: Optional[int] = typer.Option(None, "--context", help=_h("context")),
        config_file: Optional[Path] = typer.Option(None, "--config", help="TOML config file with a [generate] table (default ./tfcaf.toml when present)."),
        resume: Optional[str] = typer.Option(None, "--resume", help="Continue a killed run (its id or directory) with its stored config; nothing is asked or vetted twice."),
        show_config: bool = typer.Option(False, "--show-config", help="Print every setting and where it came from (flag, env, config file, default), then exit."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object (run_id, run_dir, accepted, selected, llm_calls, tokens, ...) at the end."),
    ) -> None:
        """Generate credit functions with an LLM: R rounds x K candidates, vetted, repaired, judged, selected.

        Exit code 0 when a candidate was accepted and selected, 1 when none was, 2 usage, 3 infrastructure.
        """
        from tfcaf.generator.config import deprecation, resolve
        from tfcaf.generator.session import generate as run_generate

        if critic is not None:
            deprecation("--critic" if critic else "--no-critic", "--judge" if critic else "--no-judge", "flag")
            if judge is not None and judge != critic:
                raise UsageError("--judge/--no-judge and the deprecated --critic/--no-critic disagree; give only --judge.")
            judge = critic

        flags = dict(task=task, backend=backend, model=model, base_url=base_url, api_key_env=api_key_env, mode=mode,
                     k=k, rounds=rounds, repairs=repairs, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                     seed=seed, judge=judge, goals=goals, fitness_steps=fitness_steps, timeout_s=timeout_s, max_retries=max_retries,
                     threads=threads, time_budget_s=time_budget_s, cache=cache, price_prompt=price_prompt,
                     price_completion=price_completion, store=store, generator=generator, device=device,
                     context=context)
        if resume:
            given = [name for name, value in flags.items() if value is not None and name != "store"]
            if given:
                raise UsageError(f"--resume continues a run with its stored config; drop {', '.join('--' + g.replace('_', '-') for g in given)}.")
            config, sources = None, None
        else:
            config, sources = resolve(flags, config_file)
            from tfcaf.tasks.registry import get_card

            config.resolved_goals(get_card(config.task))  # unknown task or feature: usage error before anything loads
            if show_config:
                _show_config(config, sources, as_json)
                return
        summary = _run_with_progress(run_generate, config, sources, resume, store)
        if as_json:
            print(json.dumps(summary, default=str))
        else:
            _print_summary(summary)
        raise typer.Exit(0 if summary["selected"] else 1)

    @app.command()
    def review(
        run: str = typer.Argument(..., help="Run id, <task>/<run-id> or run directory."),
        diff: Optional[tuple[str, str]] = typer.Option(None, "--diff", help="Compare two candidates of the run: --diff A B."),
        html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML review page to this file."),
        store: Optional[str] = typer.Option(None, "--store", help=_h("store")),
        as_json: bool = typer.Option(False, "--json", help="Print the candidates table as JSON."),
    ) -> None:
        """Show a run's candidates with verdicts and scores, and the selected one as a diff against the
        task's approved function (or a VDN baseline)."""
        from tfcaf.generator import review as review_mod
        from tfcaf.rundir import RunDir
        from tfcaf.store import store_dir

        rundir = RunDir.open(store_dir(store), run)
        try:
            if as_json:
                print(json.dumps(review_mod.candidate_rows(rundir), default=str))
            else:
                review_mod.print_review(rundir, diff=diff, store=store_dir(store))
        finally:  # the page is written even when the terminal view failed
            if html is not None:
                review_mod.write_html(rundir, html, store=store_dir(store))
                print(f"wrote {inert(html)}", file=sys.stderr)

    @app.command()
    def approve(
        ref: str = typer.Argument(..., metavar="RUN:CANDIDATE", help="The run (id or directory) and the candidate id, e.g. 20261122T031344Z-863a4d:r0-c1-a0."),
        name: Optional[str] = typer.Option(None, "--name", help="Name to store it under (default <task>-<candidate>-<run suffix>)."),
        force: bool = typer.Option(False, "--force", help="Replace an approved function with the same name."),
        store: Optional[str] = typer.Option(None, "--store", help=_h("store")),
    ) -> None:
        """Approve an accepted candidate: store its source, compiled graph and a manifest with their hashes."""
        from tfcaf.approval import approve as do_approve
        from tfcaf.rundir import RunDir
        from tfcaf.store import store_dir

        run, sep, cid = ref.rpartition(":")
        if not sep or not run or not cid:
            raise UsageError(f"expected RUN:CANDIDATE (e.g. 20261122T031344Z-863a4d:r0-c1-a0), got {ref!r}.")
        rundir = RunDir.open(store_dir(store), run)
        path = do_approve(rundir.path, cid, name, store_dir(store), force=force)
        print(inert(f"approved {cid} of run {rundir.run_id} as '{path.name}' ({path})"))
        print(inert(f"train with: tfcaf train --task {rundir.task} --mixer tfcaf:{path.name}"))

    @app.command()
    def approved(
        store: Optional[str] = typer.Option(None, "--store", help=_h("store")),
        as_json: bool = typer.Option(False, "--json", help="Print the manifests as JSON."),
    ) -> None:
        """List the approved credit functions."""
        from tfcaf.approval import list_approved
        from tfcaf.store import store_dir

        items = list_approved(store_dir(store))
        if as_json:
            print(json.dumps(items, default=str))
            return
        if not items:
            print("no approved functions yet: `tfcaf approve RUN:CANDIDATE --name NAME` approves one.")
            return
        from rich.console import Console
        from rich.table import Table

        from tfcaf.display import inert_text

        table = Table(title="approved credit functions")
        for col in ("name", "task", "run", "candidate", "model", "approved", "by"):
            table.add_column(col)
        for m in items:  # manifests are store files: every cell inert (no markup, no control characters)
            table.add_row(*(inert_text(c) for c in (m.get("name"), m.get("task"), m.get("run_id"), m.get("candidate_id"),
                          f"{m.get('backend')}:{m.get('model') or 'default'}", m.get("approved_at"), m.get("approver"))))
        Console().print(table)


def _run_with_progress(run_generate: Any, config: Any, sources: Any, resume: str | None, store: str | None) -> dict[str, Any]:
    """Run generate under a rich progress bar on stderr (stdout stays clean for --json)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tfcaf.display import inert_markup

    console = Console(stderr=True)
    with Progress(TextColumn("[bold]generate[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=False) as bar:
        state: dict[str, Any] = {}

        def on_start(cfg: Any, rundir: Any) -> None:
            state["task"] = bar.add_task(inert_markup(f"run {rundir.run_id}"), total=cfg.rounds * cfg.k)

        def progress(event: str, **info: Any) -> None:
            if "task" not in state:
                return
            if event == "candidate":
                mark = "accepted" if info.get("accepted") else "rejected"
                bar.update(state["task"], advance=1, description=inert_markup(f"{info.get('cid')} {mark}"))
            elif event == "status":
                bar.update(state["task"], description=inert_markup(info.get("text", "")))

        return run_generate(config, sources, resume=resume, store=store, progress=progress, on_start=on_start)
