"""`tfcaf export KIND NAME --out DIR` and `tfcaf import DIR` (see tfcaf/artifacts.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def export(kind: str = typer.Argument(..., help="function (approved) | generator (tuned) | dataset."),
           name: str = typer.Argument(..., help="Its name in the store."),
           out: Path = typer.Option(..., "--out", help="A new (or empty) folder to write the artifact to."),
           store: Optional[Path] = typer.Option(None, "--store", help="Store directory (default $TFCAF_STORE or ./.tfcaf)."),
           as_json: bool = typer.Option(False, "--json", help="Print the artifact manifest as JSON.")) -> None:
    """Export an approved function, tuned generator or dataset as a self-describing folder (artifact.json + files/ + sha256)."""
    from tfcaf.artifacts import export_artifact

    path = export_artifact(kind, name, out, store)
    doc = json.loads((path / "artifact.json").read_text(encoding="utf-8"))
    print(json.dumps(doc) if as_json else f"exported {kind} '{name}' ({len(doc['files'])} files) to {path}")


def import_(folder: Path = typer.Argument(..., help="An exported artifact folder."),
            store: Optional[Path] = typer.Option(None, "--store", help="Store directory (default $TFCAF_STORE or ./.tfcaf)."),
            force: bool = typer.Option(False, "--force", help="Replace an artifact of the same kind and name."),
            as_json: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Verify an artifact folder by sha256 (refusing symlinks, path traversal, unlisted files) and add it to the store."""
    from tfcaf.artifacts import import_artifact, read_artifact

    doc = read_artifact(folder)
    target = import_artifact(folder, store, force)
    result = {"kind": doc["kind"], "name": doc["name"], "files": len(doc["files"]), "path": str(target)}
    print(json.dumps(result) if as_json else f"imported {doc['kind']} '{doc['name']}' ({result['files']} files, sha256 verified) into {target}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)
