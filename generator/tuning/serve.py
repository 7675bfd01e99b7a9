"""Tuned generators in use: list them, load one (base checked against its manifest hash + adapter).

    items = list_generators(store)                    # manifests, newest first
    model, tokenizer, manifest = load_generator(store / "generators" / "t1", device="cpu")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tfcaf.errors import UsageError
from tfcaf.generator.tuning.train import MANIFEST_KIND, generators_dir

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a generator folder; UsageError when it is missing, malformed or not ours."""
    path = Path(folder) / "manifest.json"
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise UsageError(f"{path}: manifest larger than {MAX_MANIFEST_BYTES} bytes.")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder}: no manifest.json (not a tuned generator; see `tfcaf generators`).") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise UsageError(f"{path}: not a readable JSON manifest.") from None
    if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND or not isinstance(data.get("base"), dict):
        raise UsageError(f"{path}: not a tfcaf generator manifest.")
    return data


def is_generator_dir(path: Path) -> bool:
    return (Path(path) / "manifest.json").is_file() and ((Path(path) / "adapter").is_dir() or (Path(path) / "model").is_dir())


def generator_path(store: Path, name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"--generator '{name}': expected a generator name (see `tfcaf generators`).")
    path = generators_dir(store) / name
    if not is_generator_dir(path):
        raise UsageError(f"--generator {name}: no tuned generator of that name in {generators_dir(store)} "
                         "(see `tfcaf generators`, train one with `tfcaf tune`).")
    return path


def list_generators(store: Path) -> list[dict[str, Any]]:
    """Manifests of every finished generator in the store (unreadable folders are reported, not fatal)."""
    out = []
    folder = generators_dir(store)
    if not folder.is_dir():
        return out
    for sub in sorted(folder.iterdir()):
        if not sub.is_dir():
            continue
        try:
            m = read_manifest(sub)
        except UsageError as err:
            out.append({"name": sub.name, "status": "unreadable", "error": str(err)})
            continue
        out.append({k: m.get(k) for k in ("name", "method", "mode", "status", "adapter", "base", "data", "seed",
                                           "started_at", "finished_at", "eval_before", "eval_after", "online_samples")}
                   | {"name": sub.name})
    return out


def load_generator(folder: Path, device: str = "cpu") -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, manifest) of a tuned generator. The base is rebuilt from the manifest's spec and
    must hash to the recorded sha256 (a different GGUF or directory is refused)."""
    from tfcaf.generator.tuning.model import load_base

    manifest = read_manifest(folder)
    if manifest.get("status") != "finished":
        raise UsageError(f"generator {folder.name} did not finish training (status {manifest.get('status')!r}).")
    if (Path(folder) / "model").is_dir():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(str(Path(folder) / "model"), local_files_only=True)
        tok = AutoTokenizer.from_pretrained(str(Path(folder) / "model"), local_files_only=True)
        return model.to(device).eval(), tok, manifest
    spec = str(manifest["base"].get("spec") or "")
    base = load_base(spec, device)
    if base.identity.get("sha256") != manifest["base"].get("sha256"):
        raise UsageError(f"generator {folder.name} was trained on base {spec} with sha256 "
                         f"{str(manifest['base'].get('sha256'))[:12]}..., but that base now hashes to "
                         f"{str(base.identity.get('sha256'))[:12]}...; retrain it or restore the base.")
    from peft import PeftModel

    model = PeftModel.from_pretrained(base.model, str(Path(folder) / "adapter"), is_trainable=False)
    return model.to(device).eval(), base.tokenizer, manifest
