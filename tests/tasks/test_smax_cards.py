"""SMAX cards are data: they load without JAX, tile the state, and their features evaluate to [B, N]."""

import pytest
import torch

from tfcaf.errors import UsageError
from tfcaf.tasks.features import evaluate
from tfcaf.tasks.registry import TASKS, get_card, get_task
from tfcaf.tasks.smax_cards import SMAX_MAPS, SmaxLayout, smax_card

SMAX_TASKS = [f"smac_{m}" for m in SMAX_MAPS]


def test_every_smax_map_is_registered():
    assert set(SMAX_TASKS) <= set(TASKS)
    assert len(SMAX_TASKS) == 14


def test_smac_3m_card_matches_the_measured_layout():
    card = get_card("smac_3m")
    assert (card.n_agents, card.state_dim, card.obs_dim, card.n_actions, card.episode_limit) == (3, 72, 75, 8, 100)
    assert card.slice("ally_health").per_agent and (card.slice("ally_health").start, card.slice("ally_health").stop) == (0, 3)
    assert card.alive is not None and card.alive.columns == (0, 1, 2)
    assert card.action_meanings[4].startswith("stop") and card.action_meanings[5].startswith("attack enemy 0")
    assert "SMAX" in card.notes[0]


@pytest.mark.parametrize("name", SMAX_TASKS)
def test_features_evaluate_to_batch_by_agents_inside_their_range(name):
    card = get_card(name)
    g = torch.Generator().manual_seed(0)
    gs = torch.rand(16, card.state_dim, generator=g)
    # a plausible state: types and teams are integers in range, some units dead
    o = {s.name: (s.start, s.stop) for s in card.state_slices}
    ut = o["unit_type"]
    smap = SMAX_MAPS[name.removeprefix("smac_")]
    if smap.smacv2:
        gs[:, ut[0]:ut[1]] = torch.randint(0, 6, (16, ut[1] - ut[0]), generator=g).to(gs.dtype)
    else:
        gs[:, ut[0]:ut[1]] = torch.tensor(smap.ally_types + smap.enemy_types, dtype=gs.dtype)
    gs[:, : card.n_agents] *= (torch.rand(16, card.n_agents, generator=g) > 0.3).to(gs.dtype)
    names = {f.name for f in card.features}
    assert {"health", "alive", "cooldown", "nearest_enemy_distance", "enemies_in_range"} <= names
    values = evaluate(card, gs)
    for f in card.features:
        value = values[f.name]
        assert value.shape == (16, card.n_agents), f.name
        assert value.dtype == gs.dtype, f.name
        assert float(value.min()) >= f.low - 1e-6 and float(value.max()) <= f.high + 1e-6, f.name


def test_dead_agents_have_no_enemies_in_range_and_far_nearest_enemy():
    card = get_card("smac_3m")
    gs = torch.zeros(2, card.state_dim)
    gs[:, 3:6] = 1.0  # enemies alive, all at (0, 0) like the dead allies
    value = evaluate(card, gs)
    assert torch.equal(value["alive"], torch.zeros(2, 3))
    assert torch.equal(value["enemies_in_range"], torch.zeros(2, 3))
    assert torch.allclose(value["nearest_enemy_distance"], torch.full((2, 3), 1.5))


def test_last_action_variant_widens_the_state():
    card = smax_card("3m", last_actions=True)
    assert card.state_dim == 72 + 3 * 8 and card.slice("ally_last_action").width == 24
    assert card.name == "smac_3m+last_actions"
    assert SmaxLayout(3, 3, 8, True).state_dim == card.state_dim
    assert smax_card("3m", smac_reward=True).reward_range == (0.0, 20.0)


@pytest.mark.parametrize("missing", ["smac_MMM", "smac_corridor", "smac_2c_vs_64zg"])
def test_smac_maps_smax_lacks_get_a_clear_error(missing):
    with pytest.raises(UsageError, match="Available SMAX maps: 3m, 8m"):
        get_task(missing)


def test_missing_jax_says_how_to_install_while_cards_still_load(monkeypatch):
    import importlib.util

    from tfcaf.errors import MissingDependencyError
    from tfcaf.tasks import registry

    real = importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name, *a: None if name in ("jax", "jaxmarl") else real(name, *a))
    assert not get_task("smac_3m").installed
    assert get_card("smac_3m").state_dim == 72
    with pytest.raises(MissingDependencyError, match="pip install 'jaxmarl"):
        registry.make_env("smac_3m", n_envs=2)


def test_variant_names_resolve_to_variant_cards():
    card = get_card("smac_3m+last_actions+smac_reward")
    assert card.state_dim == 96 and card.reward_range == (0.0, 20.0)
    assert get_task("smac_2s3z+last_actions").card.slice("ally_last_action").width == 5 * 10
    assert "smac_3m+last_actions" not in TASKS, "variants are derived, not listed"
    for bad in ("smac_3m+bogus", "smac_MMM+last_actions", "smac_3m+smac_reward+last_actions"):
        with pytest.raises(UsageError):
            get_task(bad)
