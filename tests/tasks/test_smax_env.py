"""The SMAX adapter against SMAX itself: the normalised state is SMAX's world state re-laid as the card
says, alive flags and attack masks agree with the features, wins/terminations follow the battle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tfcaf.errors import UsageError
from tfcaf.tasks.env import random_actions
from tfcaf.tasks.features import evaluate
from tfcaf.tasks.registry import get_card, make_env
from tfcaf.tasks.smax_cards import SMAX_MAPS, UNIT_HEALTH, UNIT_TYPES, UNIT_WEAPON_COOLDOWN

pytest.importorskip("jaxmarl", reason="SMAX tasks need jaxmarl: python3 -m pip install 'jaxmarl>=0.1'")

E = 16


@pytest.fixture(scope="module")
def env3m():
    return make_env("smac_3m", n_envs=E, seed=0)


def expected_state(raw: np.ndarray, n: int, m: int) -> np.ndarray:
    """Independent numpy re-implementation: SMAX world state [E, 12U] -> the card's layout [E, 12U]."""
    u, t = n + m, len(UNIT_TYPES)
    units = raw[:, : u * (4 + t)].reshape(-1, u, 4 + t)
    teams, types = raw[:, u * (4 + t): u * (4 + t) + u], raw[:, u * (4 + t) + u:]
    alive = units[:, :, 0] > 0
    ti = types.astype(int)
    cd = np.where(alive, np.clip(units[:, :, 3] / np.asarray(UNIT_WEAPON_COOLDOWN)[ti], 0, 1), 0)
    pos = np.clip(units[:, :, 1:3] / 32, 0, 1)
    parts = [units[:, :n, 0], units[:, n:, 0], pos[:, :n, 0], pos[:, :n, 1], pos[:, n:, 0], pos[:, n:, 1], cd[:, :n], cd[:, n:], units[:, :n, 4:].reshape(len(raw), -1),
             units[:, n:, 4:].reshape(len(raw), -1), teams, types]
    return np.concatenate(parts, axis=1).astype(np.float32)


def test_smax_scenario_table_matches_jaxmarl():
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO, SMAX

    assert set(MAP_NAME_TO_SCENARIO) == set(SMAX_MAPS)
    for name, smap in SMAX_MAPS.items():
        sc = MAP_NAME_TO_SCENARIO[name]
        assert (sc.num_allies, sc.num_enemies) == (smap.n_allies, smap.n_enemies), name
        assert bool(sc.smacv2_unit_type_generation) == smap.smacv2, name
        if not smap.smacv2:
            assert tuple(int(x) for x in sc.unit_types) == smap.ally_types + smap.enemy_types, name
    env = SMAX()
    assert tuple(env.unit_type_names) == UNIT_TYPES
    assert np.allclose(np.asarray(env.unit_type_health), UNIT_HEALTH)
    assert np.allclose(np.asarray(env.unit_type_weapon_cooldowns), UNIT_WEAPON_COOLDOWN)


def test_state_is_smax_world_state_relaid_and_alive_agrees(env3m):
    card = env3m.card
    out = env3m.reset(seed=1)
    gen = torch.Generator().manual_seed(1)
    deaths = 0
    for _ in range(120):
        raw = env3m.raw_state()
        assert np.allclose(out.state.numpy(), expected_state(raw, 3, 3), atol=1e-6)
        alive = env3m.unit_alive()  # SMAX's own flags [E, U]
        card_alive = out.state[:, list(card.alive.columns)] > card.alive.threshold
        assert np.array_equal(card_alive.numpy(), alive[:, :3])
        deaths += int((~alive[:, :3]).sum())
        out = env3m.step(random_actions(out.avail_actions, gen))
    assert deaths > 0, "the rollout should contain dead agents"


def test_enemies_in_range_matches_the_attack_mask(env3m):
    card = env3m.card
    out = env3m.reset(seed=2)
    gen = torch.Generator().manual_seed(2)
    agree = total = 0
    for _ in range(80):
        feat = evaluate(card, out.state, ["enemies_in_range"])["enemies_in_range"]  # [E, N]
        attack = out.avail_actions[:, :, 5:].sum(-1).to(feat.dtype)  # [E, N]
        agree += int((feat == attack).sum())
        total += feat.numel()
        out = env3m.step(random_actions(out.avail_actions, gen))
    assert agree / total >= 0.99, f"feature and SMAX's attack mask agree on {agree}/{total}"


def test_wins_and_terminations_follow_the_battle(env3m):
    """Attack whenever possible, else move east towards the enemies: some battles end, some are won."""
    out = env3m.reset(seed=3)
    n = 3
    wins = terminations = 0
    for _ in range(300):
        avail = out.avail_actions
        attack = avail[:, :, 5:]
        target = 5 + attack.to(torch.int64).argmax(-1)  # first attackable enemy
        actions = torch.where(attack.any(-1), target, torch.where(avail[:, :, 1], 1, 4))
        out = env3m.step(actions)
        fs = out.final_state
        allies_alive = (fs[:, :n] > 0).any(1)
        enemies_alive = (fs[:, n:2 * n] > 0).any(1)
        assert torch.equal(out.terminated, ~allies_alive | ~enemies_alive)
        assert torch.equal(out.won, out.terminated & allies_alive & ~enemies_alive)
        assert (out.reward[out.won] >= 1.0).all(), "a win earns the win bonus"
        wins += int(out.won.sum())
        terminations += int(out.terminated.sum())
    assert terminations > 0 and wins > 0


def test_reset_is_seeded(env3m):
    a = env3m.reset(seed=7).state.clone()
    b = env3m.reset(seed=7).state.clone()
    c = env3m.reset(seed=8).state.clone()
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_last_actions_and_smac_reward_options():
    env = make_env("smac_3m", n_envs=E, seed=0, last_actions=True)
    base = make_env("smac_3m", n_envs=E, seed=0, smac_reward=True)
    plain = make_env("smac_3m", n_envs=E, seed=0)
    assert env.card.state_dim == 72 + 24 and env.card.name == "smac_3m+last_actions"
    assert base.card.reward_range == (0.0, 20.0)
    out, o_base, o_plain = env.reset(seed=4), base.reset(seed=4), plain.reset(seed=4)
    sl = env.card.slice("ally_last_action")
    assert (out.state[:, sl.start:sl.stop] == 0).all()
    gen = torch.Generator().manual_seed(4)
    for _ in range(60):
        actions = random_actions(out.avail_actions, gen)
        out, o_base, o_plain = env.step(actions), base.step(actions), plain.step(actions)
        onehot = torch.nn.functional.one_hot(actions, 8).reshape(E, -1).to(torch.float32)
        assert torch.equal(out.final_state[:, sl.start:sl.stop], onehot)
        assert (out.state[out.done, sl.start:sl.stop] == 0).all(), "last actions restart at zero"
        assert torch.equal(out.state[:, :72], o_plain.state), "the option only appends columns"
        assert torch.allclose(o_base.reward, 10.0 * o_plain.reward, atol=1e-5)


def test_bad_options_and_actions_are_refused(env3m):
    with pytest.raises(UsageError, match="last_actions"):
        make_env("smac_3m", n_envs=2, bogus=True)
    env3m.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be"):
        env3m.step(torch.zeros(E, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"in \[0, 8\)"):
        env3m.step(torch.full((E, 3), 8, dtype=torch.int64))


@pytest.mark.cuda
def test_smax_and_vmas_return_cuda_tensors():
    for name in ("smac_3m", "vmas_simple_spread"):
        env = make_env(name, n_envs=4, device="cuda")
        out = env.reset(seed=0)
        out = env.step(random_actions(out.avail_actions))
        assert out.state.is_cuda and out.avail_actions.is_cuda and out.reward.is_cuda, name


def test_card_obs_dim_and_actions_match_smax():
    from jaxmarl.environments.smax import HeuristicEnemySMAX
    from jaxmarl.environments.smax.smax_env import map_name_to_scenario

    for name in SMAX_MAPS:
        env = HeuristicEnemySMAX(scenario=map_name_to_scenario(name))
        card = get_card(f"smac_{name}")
        assert card.obs_dim == env.observation_spaces[env.agents[0]].shape[0], name
        assert card.n_actions == env.action_spaces[env.agents[0]].n, name
        assert card.state_dim == env.state_size, name
