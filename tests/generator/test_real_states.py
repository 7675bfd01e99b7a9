"""Vetting uses real rollout states by default, from the store `--store` names (recorded on first use)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fakes import GOOD_CODE, ScriptedLLM  # noqa: E402

from tfcaf.generator.config import resolve  # noqa: E402
from tfcaf.generator.session import generate  # noqa: E402
from tfcaf.sandbox import vetting  # noqa: E402
from tfcaf.tasks.samples import load_states  # noqa: E402
from tfcaf.verdict import Verdict  # noqa: E402


def test_first_vetting_records_states_into_the_given_store(tmp_path, capsys):
    options = vetting.VetOptions(store=str(tmp_path), record_states=16)
    assert vetting._ensure_recorded("matrix_climbing", options)
    assert "recording 16 real rollout states of matrix_climbing" in capsys.readouterr().err
    assert load_states("matrix_climbing", tmp_path).shape[0] >= 16
    assert vetting._ensure_recorded("matrix_climbing", options)  # already there: nothing recorded again
    assert "recording" not in capsys.readouterr().err
    assert not vetting._ensure_recorded("matrix_penalty", vetting.VetOptions(store=str(tmp_path), record_states=0))


def test_generate_store_is_the_vetting_store(tmp_path, monkeypatch):
    seen = {}

    class FakeVetter:
        def __init__(self, options):
            seen["store"] = options.store

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def ensure_states(self, task):
            seen["ensured"] = task

        def vet(self, text, card):
            return Verdict("rejected", "static", "ast", ("fake",))

    monkeypatch.setattr(vetting, "Vetter", FakeVetter)
    store = tmp_path / "elsewhere"
    config, sources = resolve({"task": "matrix_climbing", "backend": "openai", "store": str(store), "k": 1, "rounds": 1,
                               "repairs": 0, "judge": False}, env={})
    generate(config, sources, backend=ScriptedLLM([GOOD_CODE]))
    assert seen == {"store": str(store), "ensured": "matrix_climbing"}
