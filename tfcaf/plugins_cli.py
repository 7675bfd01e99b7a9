"""`tfcaf plugins`: what each installed plugin registered, or why it was skipped (see tfcaf/plugins.py)."""

from __future__ import annotations

import json

import typer


def plugins(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """List installed tfcaf plugins (entry points tfcaf.tasks / backends / algorithms / mixers): what each registered, or why it was skipped."""
    import tfcaf.generator.backends  # noqa: F401  (each registry loads its plugins on import)
    import tfcaf.tasks.registry  # noqa: F401
    import tfcaf.trainer.algos  # noqa: F401
    import tfcaf.trainer.mixers  # noqa: F401
    from tfcaf.plugins import records

    rows = records()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("no tfcaf plugins installed (see examples/tfcaf-example-plugins)")
    for r in rows:
        what = f"skipped: {r['error']}" if r["error"] else "registered " + ", ".join(r["items"])
        print(ascii(r["kind"])[1:-1], ascii(r["name"])[1:-1], f"({ascii(r['distribution'])[1:-1]}):", ascii(what)[1:-1])


def register(app: typer.Typer) -> None:
    app.command("plugins")(plugins)
