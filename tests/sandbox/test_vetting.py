"""The worker layer and the whole pipeline: process isolation, limits, verdict classification."""

from __future__ import annotations

import json
import os

import pytest

from tfcaf.sandbox.verdict import STATUSES, Rejection, Verdict
from tfcaf.sandbox.vetting import Vetter, VetOptions, scrubbed_env, vet
from tfcaf.tasks.registry import get_card

VDN = "import torch\ndef QLLMNetwork(agents_q, global_state):\n    return agents_q.sum(dim=-1, keepdim=True)\n"


@pytest.fixture(scope="module")
def vetter():
    with Vetter(VetOptions(timeout_s=15.0, cpu_s=20)) as v:
        yield v


def test_verdict_invariants_and_json() -> None:
    v = Verdict("rejected", "property", "properties", ("property 'x' failed",), {"row": {}}, {"ms": 1.0})
    assert Verdict.from_json(json.loads(json.dumps(v.to_json()))) == v
    assert not v.accepted and "property" in v.summary()
    with pytest.raises(ValueError):
        Verdict("accepted", "property", "x", ())
    with pytest.raises(ValueError):
        Verdict("rejected", "infrastructure", "x", ())
    with pytest.raises(ValueError):
        Verdict("rejected", "nonsense", "x", ())
    assert Verdict("error", "infrastructure", "worker", ("down",)).verdict == "error"
    assert len(STATUSES) == len(set(STATUSES)) and "ok" in STATUSES


def test_rejection_is_a_rejected_error() -> None:
    from tfcaf.errors import RejectedError

    assert issubclass(Rejection, RejectedError)


def test_scrubbed_env_has_no_secrets(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws")
    env = scrubbed_env()
    assert not any("secret" in v or v == "aws" for v in env.values())
    assert not any(k.endswith(("_KEY", "TOKEN")) for k in env)
    assert env["OMP_NUM_THREADS"] == "1"


def test_accepted_with_sandbox_report(vetter) -> None:
    v = vetter.vet(VDN, get_card("matrix_climbing"))
    assert v.accepted and v.graph is not None and v.source == VDN
    box = v.metrics["sandbox"]
    assert box["fsize"] and box["as"] and box["cpu"]
    if os.getuid() == 0:  # root ignores RLIMIT_NPROC: the worker must have dropped to 'nobody'
        assert box["uid"] == 65534
    assert box["nproc"] or box["uid"] == 0, "no new processes (unless root could not drop privileges)"


def test_network_isolation_is_recorded(vetter) -> None:
    v = vetter.vet(VDN, get_card("matrix_penalty"))
    assert v.accepted
    assert isinstance(v.metrics["sandbox"]["net_isolated"], bool)  # False where the OS refuses a new namespace
    assert v.metrics["sandbox"]["no_new_privs"] in (True, False)


def test_timeout_kills_the_candidate_and_the_pool_recovers(vetter) -> None:
    src = ("def QLLMNetwork(agents_q, global_state):\n    x = agents_q.sum(dim=-1, keepdim=True)\n"
           "    for i in range(1000):\n        for j in range(1000):\n            for k in range(1000):\n"
           "                x = x + 0.0\n    return x\n")
    with Vetter(VetOptions(timeout_s=3.0)) as quick:
        v = quick.vet(src, get_card("matrix_climbing"))
        assert (v.verdict, v.status, v.stage) == ("rejected", "timeout", "worker")
        assert quick.vet(VDN, get_card("matrix_climbing")).accepted


def test_memory_limit(vetter) -> None:
    src = "import torch\ndef QLLMNetwork(agents_q, global_state):\n    return agents_q.sum(dim=-1, keepdim=True) + torch.ones(60000, 60000).sum() * 0.0\n"
    v = vetter.vet(src, get_card("matrix_climbing"))
    assert (v.verdict, v.status) == ("rejected", "memory")


def test_static_rejections_never_reach_a_worker(vetter) -> None:
    v = vetter.vet("import os\n" + VDN, get_card("matrix_climbing"))
    assert (v.status, v.stage) == ("escape", "ast")
    assert v.metrics["total_ms"] < 5000


def test_property_rejection_has_counterexample(vetter) -> None:
    v = vetter.vet("def QLLMNetwork(agents_q, global_state):\n    return -agents_q.sum(dim=-1, keepdim=True)\n", get_card("smac_3m"))
    assert v.status == "property" and "igm_monotone" in v.reasons[0]
    row = v.counterexample["row"]
    assert len(row["agents_q"]) == 3 and "grad" in row
    json.dumps(v.to_json())


def test_infrastructure_failure_is_error_not_rejection() -> None:
    with Vetter(VetOptions(warm_timeout_s=0.001)) as broken:
        v = broken.vet(VDN, get_card("matrix_climbing"))
    assert (v.verdict, v.status) == ("error", "infrastructure")


def test_one_shot_vet() -> None:
    v = vet("```python\n" + VDN + "```\n", get_card("matrix_climbing"))
    assert v.accepted and v.metrics["graph_sha256"]


def test_every_registered_task_round_trips_through_the_worker(vetter) -> None:
    from tfcaf.sandbox.worker import card_from_dict, card_to_dict
    from tfcaf.tasks.registry import TASKS

    for name, task in TASKS.items():
        assert card_from_dict(json.loads(json.dumps(card_to_dict(task.card)))) == task.card, name


def test_fuzz_vetting_random_responses_never_crash(vetter) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    pieces = ["```python\n", "```\n", "import torch\n", "def QLLMNetwork(agents_q, global_state):\n",
              "    return agents_q.sum(dim=-1, keepdim=True)\n", "    x = torch.softmax(global_state, -1)\n",
              "    return x\n", "import os\n", "    return 1\n", "prose\n", "\u202e", "    for i in range(3):\n"]

    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(st.lists(st.sampled_from(pieces), max_size=8))
    def fuzz(parts):
        v = vetter.vet("".join(parts), get_card("matrix_climbing"))
        assert v.verdict in ("accepted", "rejected") and v.status in STATUSES and v.reasons

    fuzz()


def test_recorded_real_states_are_used(tmp_path) -> None:
    import numpy as np

    (tmp_path / "states").mkdir()
    np.savez(tmp_path / "states" / "matrix_climbing.npz", states=np.ones((40, 1), dtype=np.float32))
    with Vetter(VetOptions(store=str(tmp_path), max_real_states=16)) as v:
        verdict = v.vet(VDN, get_card("matrix_climbing"))
    assert verdict.accepted and verdict.metrics["real_states"] == 16


def test_same_candidate_same_verdict(vetter) -> None:
    src = "def QLLMNetwork(agents_q, global_state):\n    return agents_q.sum(dim=-1, keepdim=True) - 3.0 * agents_q[:, 1:2]\n"
    first, second = (vetter.vet(src, get_card("smac_3m")) for _ in range(2))
    assert first.status == second.status == "property"
    assert first.reasons == second.reasons and first.counterexample == second.counterexample


def test_concurrent_vetting_from_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    bad = "def QLLMNetwork(agents_q, global_state):\n    return agents_q.sum(dim=-1)\n"
    with Vetter(VetOptions(workers=2)) as v, ThreadPoolExecutor(3) as pool:
        verdicts = list(pool.map(lambda text: v.vet(text, get_card("matrix_climbing")), [VDN, bad, VDN]))
    assert [x.status for x in verdicts] == ["ok", "contract", "ok"]
