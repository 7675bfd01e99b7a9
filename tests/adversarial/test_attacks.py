"""Every attack in tests/adversarial/attacks/ is rejected with its expected status and leaves no trace."""

from __future__ import annotations

import os

import pytest

from adversarial_corpus import ATTACKS, MARKER, header, pick_task


def test_corpus_is_large_enough() -> None:
    assert len(ATTACKS) >= 40
    for path in ATTACKS:
        meta = header(path)
        assert meta.get("expect") == "rejected", path.name
        assert meta.get("status"), path.name


@pytest.mark.parametrize("path", ATTACKS, ids=[p.stem for p in ATTACKS])
def test_attack_is_rejected(path, vetter, tmp_path) -> None:
    from tfcaf.tasks.registry import get_card

    meta = header(path)
    task = pick_task(meta.get("task", "any"))
    if task is None:
        pytest.skip(f"no registered task for '{meta.get('task')}'")
    marker = tmp_path / "marker"
    text = path.read_text(encoding="utf-8").replace(MARKER, str(marker))
    os.environ["TFCAF_TEST_SECRET_TOKEN"] = "do-not-leak"
    verdict = vetter.vet(text, get_card(task))
    assert verdict.verdict == "rejected", (path.name, verdict.summary())
    assert verdict.status in meta["status"].split("|"), (path.name, verdict.summary())
    assert verdict.graph is None
    assert verdict.reasons and all(isinstance(r, str) and r for r in verdict.reasons)
    assert not marker.exists(), f"{path.name} left a side effect"
    assert "do-not-leak" not in str(verdict.to_json())
