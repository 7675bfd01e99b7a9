"""Mixer registry: shapes, monotonicity, zero parameters, contract checks, config resolution."""

from __future__ import annotations

import pytest
import torch

from tfcaf.contract import ContractError
from tfcaf.errors import UsageError
from tfcaf.tasks.registry import get_card
from tfcaf.trainer.config import TrainConfig, field_docs, resolve_config
from tfcaf.trainer.mixers import MIXERS, CreditFunctionMixer, build_mixer

TASKS = ["matrix_penalty", "smac_3m"]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", sorted(MIXERS))
def test_every_mixer_maps_btn_to_bt1(task, name):
    card = get_card(task)
    mixer = build_mixer(name, card, TrainConfig())
    q = torch.randn(4, 5, card.n_agents)
    s = torch.rand(4, 5, card.state_dim)
    out = mixer.module(q, s)
    assert out.shape == (4, 5, 1) and torch.isfinite(out).all()
    assert (mixer.n_params > 0) == MIXERS[name].trainable
    assert mixer.hashes["source_sha256"]


def test_vdn_is_the_sum_and_qmix_is_monotone():
    card = get_card("smac_3m")
    vdn = build_mixer("vdn", card, TrainConfig()).module
    q = torch.randn(2, 3, 3)
    assert torch.allclose(vdn(q, torch.zeros(2, 3, card.state_dim)), q.sum(-1, keepdim=True))
    torch.manual_seed(0)
    qmix = build_mixer("qmix", card, TrainConfig()).module
    q = torch.randn(16, 2, 3, requires_grad=True)
    qmix(q, torch.rand(16, 2, card.state_dim)).sum().backward()
    assert (q.grad >= 0).all()


def test_handwritten_reference_weights_alive_agents_more():
    card = get_card("smac_3m")
    assert card.alive is not None
    mixer = build_mixer("handwritten", card, TrainConfig()).module
    state = torch.zeros(1, 1, card.state_dim)
    state[0, 0, card.alive.columns[0]] = 1.0  # agent 0 at full health, others dead
    q = torch.ones(1, 1, 3)
    assert mixer(q, state).item() == pytest.approx(1.0 + 0.5 + 0.5)


def test_credit_function_mixer_freezes_parameters_and_checks_the_contract():
    class Weighted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def forward(self, q, s):
            return (q * self.w).sum(-1, keepdim=True)

    mixer = CreditFunctionMixer(Weighted(), n_agents=2, state_dim=1)
    assert not any(p.requires_grad for p in mixer.parameters())
    with pytest.raises(ContractError):
        mixer(torch.ones(2, 3, 4), torch.ones(2, 3, 1))  # 4 agents, expected 2

    class BadShape(torch.nn.Module):
        def forward(self, q, s):
            return q  # [B, N], not [B, 1]

    with pytest.raises(ContractError):
        CreditFunctionMixer(BadShape(), 2, 1)(torch.ones(2, 3, 2), torch.ones(2, 3, 1))


def test_unknown_mixer_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown mixer"):
        build_mixer("qtran", get_card("matrix_penalty"), TrainConfig())


def test_config_layers_and_docs():
    cfg, source = resolve_config("smax", {"lr": "0.001"}, {"seed": 4, "n_envs": None})
    assert cfg.lr == 0.001 and source["lr"] == "file"
    assert cfg.seed == 4 and source["seed"] == "flag"
    assert cfg.n_envs == 16 and source["n_envs"] == "family:smax"
    assert cfg.optimizer == "rmsprop" and source["optimizer"] == "default"
    assert set(field_docs()) == set(TrainConfig().to_dict())
    with pytest.raises(UsageError, match="unknown config field"):
        resolve_config("smax", {"learning_rate": 1})
    with pytest.raises(UsageError, match="expects bool"):
        resolve_config("smax", flags={"double_q": "maybe"})
    with pytest.raises(UsageError, match="optimizer"):
        TrainConfig(optimizer="sgd")
