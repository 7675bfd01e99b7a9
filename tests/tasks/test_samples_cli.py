"""State samples, the prose description and the `tfcaf tasks` / `record-states` commands."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tfcaf.cli import main
from tfcaf.errors import UsageError
from tfcaf.tasks.describe import card_to_dict, describe
from tfcaf.tasks.registry import TASKS, get_card
from tfcaf.tasks.samples import load_metadata, load_states, record_states, states_path


def test_record_and_load_states_round_trip(tmp_path):
    assert load_states("matrix_climbing", store=tmp_path) is None
    path = record_states("matrix_climbing", 10, store=tmp_path, seed=3)
    assert path == states_path("matrix_climbing", tmp_path) and path.is_file()
    states = load_states("matrix_climbing", store=tmp_path)
    assert states.shape == (10, 1) and states.dtype == np.float32 and (states == 1.0).all()
    assert load_metadata("matrix_climbing", store=tmp_path)["seed"] == 3


def test_recorded_lbf_states_are_real_and_inside_the_card(tmp_path):
    pytest.importorskip("lbforaging")
    record_states("lbf_8x8-2p-3f", 300, store=tmp_path, seed=0)
    states = load_states("lbf_8x8-2p-3f", store=tmp_path)
    card = get_card("lbf_8x8-2p-3f")
    assert states.shape == (300, card.state_dim)
    assert (states >= np.asarray(card.state_low) - 1e-6).all() and (states <= np.asarray(card.state_high) + 1e-6).all()
    assert len(np.unique(states, axis=0)) > 50, "samples come from many different steps"


def test_mismatched_samples_are_refused(tmp_path):
    path = states_path("matrix_penalty", tmp_path)
    path.parent.mkdir(parents=True)
    np.savez(path, states=np.zeros((4, 7), np.float32), meta=np.array("{}"))
    with pytest.raises(UsageError, match="re-record"):
        load_states("matrix_penalty", store=tmp_path)
    with pytest.raises(UsageError):
        record_states("matrix_penalty", 0, store=tmp_path)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_description_is_rendered_from_the_card(name):
    card = get_card(name)
    text = describe(card)
    assert f"N = {card.n_agents}" in text and f"S = {card.state_dim}" in text
    for s in card.state_slices:
        assert s.name in text and (f"global_state[:, {s.start}:{s.stop}]" in text or f"global_state[:, {s.start}]" in text)
    for f in card.features:
        assert f.name in text
    changed = dataclasses.replace(card, episode_limit=card.episode_limit + 7)
    assert f"at most {card.episode_limit + 7} steps" in describe(changed), "prose follows the data"
    json.dumps(card_to_dict(card))  # JSON-ready (no bare infinities)


def test_tasks_command_lists_every_family(capsys):
    assert main(["tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(TASKS)
    assert {"matrix", "smax", "lbf", "mpe", "vmas"} <= {r["family"] for r in rows}
    smac = next(r for r in rows if r["name"] == "smac_3m")
    assert (smac["n_agents"], smac["state_dim"], smac["n_actions"]) == (3, 72, 8)
    assert main(["tasks"]) == 0
    assert "smac_3m" in capsys.readouterr().out


def test_tasks_name_prints_the_card(capsys):
    assert main(["tasks", "smac_3m"]) == 0
    out = capsys.readouterr().out
    assert "ally_health: global_state[:, 0:3]" in out and "SMAX" in out
    assert main(["tasks", "smac_3m", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["state_dim"] == 72 and card["state_slices"][0]["name"] == "ally_health"


def test_unknown_map_exits_2_with_the_available_ones(capsys):
    assert main(["tasks", "smac_corridor"]) == 2
    assert "Available SMAX maps" in capsys.readouterr().err


def test_record_states_command(tmp_path, capsys):
    assert main(["record-states", "--task", "matrix_penalty", "--n", "5", "--store", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_states"] == 5 and result["state_dim"] == 1
