"""load_graph under fuzzing: every malformed graph is a RejectedError, never another exception."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfcaf.errors import RejectedError
from tfcaf.sandbox.graph import load_graph

SAMPLE = json.loads((Path(__file__).parent / "graph_sample.json").read_text())  # a real exported graph (smac_3m)
FUZZ_EXAMPLES = 400
"""Per test; two tests: 800 examples in all."""

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=True)
    | st.text(max_size=12) | st.sampled_from(["agents_q", "global_state", "c0", "clone", "ref", "const", "float32",
                                              "aten.add.Tensor", "aten.full.default", "\x00device", "inf"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["ref", "const", "float", "dtype", "device", "name", "op", "args", "kwargs", "shape", "data", "x"]),
        children, max_size=3),
    max_leaves=12)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(SAMPLE) if p]


def _outcome(graph) -> str:
    try:
        load_graph(graph)
    except RejectedError:
        return "rejected"
    return "loaded"


def test_the_sample_loads():
    assert _outcome(SAMPLE) == "loaded"


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_random_json_is_rejected(value):
    assert _outcome(value) == "rejected"


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON), min_size=1, max_size=3))
def test_mutated_graph_is_rejected_or_loads(mutations):
    graph = copy.deepcopy(SAMPLE)
    for path, value in mutations:
        node = graph
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    assert _outcome(graph) in ("rejected", "loaded")


def test_hand_made_odd_graphs_are_rejected():
    base = copy.deepcopy(SAMPLE)
    odd = []
    g = copy.deepcopy(base); g["constants"]["c0"]["shape"] = ["3"]; odd.append(g)
    g = copy.deepcopy(base); g["constants"]["c0"]["data"] = [2**80] * 3; g["constants"]["c0"]["dtype"] = "int64"; odd.append(g)
    g = copy.deepcopy(base); g["output"] = {"ref": ["x"]}; odd.append(g)
    g = copy.deepcopy(base); g["nodes"][0]["args"] = [{"ref": ["agents_q"]}]; odd.append(g)
    g = copy.deepcopy(base); g["nodes"][0]["name"] = "\x00device"; odd.append(g)
    g = copy.deepcopy(base); g["constants"] = {"const:x": base["constants"]["c0"]}; odd.append(g)
    g = copy.deepcopy(base); g["constants"]["c0"]["shape"] = [True, 3]; odd.append(g)
    for graph in odd:
        assert _outcome(graph) == "rejected", graph
