"""Shared fixtures: a real run (scripted LLM, REAL vetter) on matrix_climbing, made once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def real_run(tmp_path_factory):
    """A finished run in its own store: r0-c0 rejected then repaired (VDN), r0-c1 a weighted function."""
    from fakes import BROKEN, GOOD_CODE, WEIGHTED, ScriptedLLM

    from tfcaf.generator.config import resolve
    from tfcaf.generator.session import generate

    store = tmp_path_factory.mktemp("store")
    calls = {"n": 0}

    def scripted(messages, sampling):
        if "strict reviewer" in messages[0]["content"]:
            return '{"scores": {"credit_logic": 6, "state_use": 5, "robustness": 8, "simplicity": 9}, "advice": "use the state"}'
        if len(messages) > 2:
            return GOOD_CODE
        calls["n"] += 1
        return BROKEN if calls["n"] == 1 else WEIGHTED

    config, sources = resolve({"task": "matrix_climbing", "backend": "openai", "store": str(store), "k": 2,
                               "rounds": 1, "repairs": 1}, env={})
    summary = generate(config, sources, backend=ScriptedLLM(scripted))
    return store, summary
