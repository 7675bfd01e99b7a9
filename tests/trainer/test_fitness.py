"""The generate loop's short-training fitness trains through the rebuilt graph and returns [0, 1]."""

import pytest

from tfcaf.errors import RejectedError
from tfcaf.generator.session import fitness_hook
from tfcaf.sandbox.vetting import vet
from tfcaf.tasks.registry import get_card
from tfcaf.trainer.fitness import fitness_from_summary, short_training_fitness

VDN = "import torch\n\ndef QLLMNetwork(agents_q, global_state):\n    return torch.sum(agents_q, dim=1, keepdim=True)\n"


def test_fitness_scales_returns_and_win_rates():
    climbing, smax = get_card("matrix_climbing"), get_card("smac_3m")
    assert fitness_from_summary({"test_return_mean": 11.0}, climbing) == 1.0
    assert fitness_from_summary({"test_return_mean": -30.0}, climbing) == 0.0
    assert 0.0 < fitness_from_summary({"test_return_mean": 5.0}, climbing) < 1.0
    assert fitness_from_summary({"test_return_mean": 1.2, "test_win_rate": 0.25}, smax) == 0.25
    assert 0.5 < fitness_from_summary({"test_return_mean": 3.0}, get_card("mpe_simple_spread")) < 1.0


def test_short_training_on_a_vetted_graph_through_the_generate_hook():
    card = get_card("matrix_climbing")
    verdict = vet(VDN, card)
    assert verdict.accepted, verdict.reasons
    hook = fitness_hook(300)
    assert hook is short_training_fitness
    value = hook(verdict.graph, card, 300, 0)
    assert 0.0 <= value <= 1.0


def test_a_tampered_graph_is_refused():
    card = get_card("matrix_climbing")
    graph = vet(VDN, card).graph
    bad = dict(graph, nodes=[dict(graph["nodes"][0], op="os.system")] + graph["nodes"][1:])
    with pytest.raises(RejectedError):
        short_training_fitness(bad, card, 100, 0)
