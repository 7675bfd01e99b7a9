"""Command-line verbs of the sandbox stage: `tfcaf vet --task NAME FILE [--json]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from tfcaf.errors import UsageError

MAX_INPUT_BYTES = 200_000
"""Largest FILE accepted (the text gate's limit on a raw response)."""


def read_candidate(path: str) -> str:
    """FILE's text ('-' reads stdin); UsageError for a missing, unreadable, non-UTF-8, empty or huge file."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            p = Path(path)
            if not p.exists():
                raise UsageError(f"file not found: {path}")
            if not p.is_file():
                raise UsageError(f"not a regular file: {path}")
            if p.stat().st_size > MAX_INPUT_BYTES:
                raise UsageError(f"{path} is {p.stat().st_size} bytes; the limit is {MAX_INPUT_BYTES} (pass one LLM response or one .py file)")
            data = p.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise UsageError(f"input is larger than {MAX_INPUT_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path} is not UTF-8 text (byte {err.start}): save the response as UTF-8") from None
    if not text.strip():
        raise UsageError(f"{path} is empty")
    return text


def _print_human(verdict: dict) -> None:
    from rich.console import Console

    from tfcaf.display import inert_text

    console = Console(highlight=False)
    colour = {"accepted": "green", "rejected": "red", "error": "yellow"}[verdict["verdict"]]
    head = inert_text(verdict["verdict"], f"bold {colour}")
    head.append(inert_text(f" (status {verdict['status']}, stage {verdict['stage']})"))
    console.print(head)
    for reason in verdict["reasons"]:  # reasons quote candidate text (assert messages, names): inert
        console.print(inert_text(f"  - {reason}"))
    if verdict.get("counterexample"):
        console.print(inert_text("  counterexample: " + json.dumps(verdict["counterexample"])[:2000]))
    metrics = verdict.get("metrics") or {}
    shown = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    if shown:
        console.print(inert_text("  metrics: " + ", ".join(f"{k}={v}" for k, v in shown.items())))


def vet_command(
    file: str = typer.Argument(..., help="A raw LLM response (one fenced python block) or a .py file; '-' reads stdin."),
    task: str = typer.Option(..., "--task", "-t", help="Task whose card the function is vetted against (see `tfcaf tasks`)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (verdict, status, stage, reasons, counterexample, metrics)."),
    graph_out: Optional[Path] = typer.Option(None, "--graph-out", help="When accepted, write the compiled graph (plain JSON) here."),
    timeout: float = typer.Option(30.0, "--timeout", help="Wall-clock limit for the sandbox worker, seconds."),
    examples: int = typer.Option(20, "--examples", help="Hypothesis examples (random batches) beyond the fixed edge cases."),
    store: Optional[str] = typer.Option(None, "--store", help="Store with recorded real states (default: $TFCAF_STORE or ./.tfcaf)."),
) -> None:
    """Vet a credit function: text and AST gates, restricted execution in a sandbox process, property
    tests, export to an ATen graph. Exit 0 accepted, 1 rejected, 2 usage, 3 infrastructure."""
    from tfcaf.runtime import configure_torch
    from tfcaf.sandbox.vetting import VetOptions, vet
    from tfcaf.tasks.registry import get_card

    card = get_card(task)
    text = read_candidate(file)
    if timeout <= 0 or examples < 0:
        raise UsageError("--timeout must be > 0 and --examples >= 0")
    configure_torch()
    verdict = vet(text, card, VetOptions(timeout_s=timeout, examples=examples, store=store))
    data = verdict.to_json()
    graph = data.pop("graph")
    if graph_out is not None and graph is not None:
        try:
            graph_out.write_text(json.dumps(graph, sort_keys=True))
        except OSError as err:
            raise UsageError(f"cannot write {graph_out}: {err.strerror or err}") from None
    if as_json:
        print(json.dumps(data))
    else:
        _print_human(data)
    code = {"accepted": 0, "rejected": 1, "error": 3}[verdict.verdict]
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to `app`."""
    app.command("vet")(vet_command)
