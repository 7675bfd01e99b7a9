"""Reading the adversarial and valid corpora: each file starts with `# key: value` header lines."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
ATTACKS = sorted((HERE / "attacks").glob("*.*"))
VALID = sorted((HERE / "valid").glob("*.*"))
MARKER = "TFCAF_MARKER"


def header(path: Path) -> dict[str, str]:
    """The `# key: value` lines at the top of a corpus file."""
    meta: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# ") or ":" not in line:
            break
        key, _, value = line[2:].partition(":")
        meta[key.strip()] = value.strip()
    return meta


def pick_task(spec: str) -> str | None:
    """'any' -> a matrix game; 'igm' -> the first registered task that requires IGM; else the name."""
    from tfcaf.tasks.registry import TASKS

    if spec in ("", "any"):
        return "matrix_climbing"
    if spec == "igm":
        return next((n for n, t in TASKS.items() if t.card.requires_igm), None)
    return spec if spec in TASKS else None
