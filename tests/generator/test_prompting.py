"""Prompt templates: golden renders, StrictUndefined, and LLM text entering only as data."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from tfcaf.generator import prompting
from tfcaf.tasks.card import AliveFlag, Feature, StateSlice, TaskCard
from tfcaf.tasks.registry import get_card

# A fixed card, so the golden files test the templates, not another stage's card text.
GOLDEN_CARD = TaskCard(
    name="golden_2a", family="test", backend="none", n_agents=2, state_dim=4, obs_dim=2, n_actions=2,
    episode_limit=10, action_meanings=("wait", "push"), reward="1 when both push, else 0",
    description="Two agents push a box together.",
    state_slices=(StateSlice("health", 0, 2, "health of agent i", 0.0, 1.0, per_agent=True),
                  StateSlice("box_x", 2, 3, "box position", -1.0, 1.0), StateSlice("time", 3, 4, "t / limit", 0.0, 1.0)),
    alive=AliveFlag(columns=(0, 1), threshold=0.0, meaning="health"),
    features=(Feature("health", "own health", "global_state[:, 0:2]", 0.0, 1.0),),
    notes=("A card for golden tests.",),
)

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("mode", ["code", "spec"])
def test_generate_prompt_matches_golden(mode):
    messages = prompting.generate_messages(GOLDEN_CARD, mode)
    text = "\n---\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
    golden = GOLDEN / f"golden_2a_{mode}.txt"
    assert text == golden.read_text(encoding="utf-8"), f"re-render with: python3 {Path(__file__).name} (see _write_golden)"


def test_code_prompt_shows_the_state_layout_with_indices_and_ranges():
    text = prompting.generate_messages(get_card("smac_3m"), "code")[1]["content"]
    assert "global_state[:, 0:3] `ally_health`" in text and "N = 3" in text and "IGM is required" in text


def test_spec_prompt_lists_the_features():
    card = get_card("smac_3m")
    text = prompting.generate_messages(card, "spec")[1]["content"]
    for f in card.features:
        assert f"- {f.name}:" in text


def test_missing_variable_is_an_error():
    with pytest.raises(jinja2.UndefinedError):
        prompting.render("repair.j2", mode="code")


def test_llm_text_is_data_not_template():
    hostile = "{{ card.__class__ }} {% for x in range(10**9) %}x{% endfor %}"
    messages = prompting.refine_messages(get_card("matrix_climbing"), "code", hostile, advice=hostile, score=0.5)
    assert messages[1]["content"].count(hostile) == 2


def test_repair_feeds_back_status_reasons_and_counterexample():
    verdict = {"verdict": "rejected", "status": "property", "stage": "properties",
               "reasons": ["IGM violated: dQ_tot/dQ_1 = -0.5"], "counterexample": {"agents_q": [[1, 2]]}}
    msgs = prompting.repair_messages([{"role": "user", "content": "x"}], "ANSWER", verdict, "code")
    assert msgs[-2] == {"role": "assistant", "content": "ANSWER"}
    assert "IGM violated" in msgs[-1]["content"] and '"agents_q": [[1, 2]]' in msgs[-1]["content"]


def _write_golden() -> None:  # pragma: no cover - run by hand after an intended template change
    GOLDEN.mkdir(exist_ok=True)
    for mode in ("code", "spec"):
        messages = prompting.generate_messages(GOLDEN_CARD, mode)
        text = "\n---\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
        (GOLDEN / f"golden_2a_{mode}.txt").write_text(text, encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    _write_golden()
