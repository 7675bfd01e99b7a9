"""The refinement MDP (tfcaf.evaluator.refine): spec edits, state/observation, goal reward, the env's
reset/step/termination/horizon, its run log as dataset rows, and the policies."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generator"))
from fakes import ScriptedLLM  # noqa: E402

from tfcaf.evaluator import refine as rf  # noqa: E402
from tfcaf.evaluator.dataset import Builder  # noqa: E402
from tfcaf.generator.spec import LIMITS  # noqa: E402
from tfcaf.rundir import RunDir  # noqa: E402
from tfcaf.tasks.registry import get_card  # noqa: E402
from tfcaf.verdict import Verdict  # noqa: E402

SMAC = get_card("smac_3m")
LBF = get_card("lbf_2s-8x8-2p-2f-coop")
I = rf.OPERATOR_INDEX


class SpecVetter:
    """Accepts every rendered spec; metrics read off the rendered source (fast, no worker)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str, card) -> Verdict:
        self.calls += 1
        uses_state = "score = score +" in text and "= 1.0 + 0.0 * weights" not in text
        return Verdict("accepted", "ok", "export", ("passed every gate",), source=text,
                       metrics={"dead_agent_credit": 0.0 if "alive =" in text else 0.5,
                                "state_dependence": 0.3 if uses_state else 0.0,
                                "vdn_distance": 0.3 if uses_state else 0.0, "mono_min_grad": 0.0})


def _spec(**kw):
    base = {"weights": {}, "temperature": 1.0, "vdn_blend": 1.0, "mask_dead": False}
    return {**base, **kw}


# -- operators ---------------------------------------------------------------------------------------
def test_operator_set_is_documented_and_stop_is_present():
    ids = [op.id for op in rf.OPERATORS]
    assert ids == ["mask_dead", "state_softmax", "sharpen", "soften", "blend_vdn", "drop_feature", "add_feature",
                   "repair", "refine", "stop"]
    assert len(set(op.text for op in rf.OPERATORS)) == len(ids)
    for op in rf.OPERATORS:
        assert op.id in rf.__doc__ and op.text in rf.__doc__


@pytest.mark.parametrize("op", sorted(rf.SPEC_EDITS))
def test_each_spec_edit_is_deterministic_and_clamped(op):
    start = rf.seeded_spec(SMAC, 7)
    a, b = rf.edit_spec(op, start, SMAC), rf.edit_spec(op, json.loads(json.dumps(start)), SMAC)
    assert a == b
    assert LIMITS["temperature"][0] <= a["temperature"] <= LIMITS["temperature"][1]
    assert 0.0 <= a["vdn_blend"] <= 1.0
    assert all(LIMITS["weight"][0] <= w <= LIMITS["weight"][1] for w in a["weights"].values())
    assert list(a["weights"]) == [f.name for f in SMAC.features]


def test_spec_edits_do_what_they_say():
    s = _spec(weights={"health": 0.5, "cooldown": -2.0}, temperature=1.0, vdn_blend=0.8)
    assert rf.edit_spec("mask_dead", s, SMAC)["mask_dead"] is True
    assert rf.edit_spec("sharpen", s, SMAC)["temperature"] == 0.5
    assert rf.edit_spec("soften", s, SMAC)["temperature"] == 2.0
    assert rf.edit_spec("blend_vdn", s, SMAC)["vdn_blend"] == 1.0  # 0.8 + 0.25 clamped
    soft = rf.edit_spec("state_softmax", s, SMAC)
    assert soft["vdn_blend"] == 0.5 and soft["weights"]["health"] == 0.5
    dropped = rf.edit_spec("drop_feature", s, SMAC)["weights"]
    assert dropped["health"] == 0.0 and dropped["cooldown"] == -2.0  # the weakest |w| goes
    added = rf.edit_spec("add_feature", s, SMAC)["weights"]
    assert added["alive"] == 1.0  # the first unused card feature
    empty = rf.edit_spec("state_softmax", _spec(), SMAC)
    assert empty["weights"]["health"] == 1.0 and empty["vdn_blend"] == 0.5


def test_idempotent_edits_and_clamped_repeats():
    s = rf.seeded_spec(SMAC, 3)
    for op in ("mask_dead", "state_softmax"):
        once = rf.edit_spec(op, s, SMAC)
        assert rf.edit_spec(op, once, SMAC) == once
    t = s
    for _ in range(10):
        t = rf.edit_spec("sharpen", t, SMAC)
    assert t["temperature"] == LIMITS["temperature"][0]
    for _ in range(10):
        t = rf.edit_spec("soften", t, SMAC)
    assert t["temperature"] == LIMITS["temperature"][1]
    for _ in range(5):
        t = rf.edit_spec("blend_vdn", t, SMAC)
    assert t["vdn_blend"] == 1.0
    full = _spec(weights={f.name: 1.0 for f in SMAC.features})
    assert rf.edit_spec("add_feature", full, SMAC) == rf.canonical(full, SMAC)
    assert rf.edit_spec("drop_feature", _spec(), SMAC) == rf.canonical(_spec(), SMAC)
    # no alive flag: masking is a no-op
    lbf = rf.seeded_spec(LBF, 1)
    assert rf.edit_spec("mask_dead", lbf, LBF) == lbf


from hypothesis import given, strategies as st  # noqa: E402

_SPECS = st.fixed_dictionaries({
    "weights": st.dictionaries(st.sampled_from([f.name for f in SMAC.features]),
                               st.floats(-4, 4, allow_nan=False).map(lambda x: round(x, 3)), max_size=10),
    "temperature": st.floats(0.1, 5.0), "vdn_blend": st.floats(0.0, 1.0), "mask_dead": st.booleans()})


@given(spec=_SPECS, op=st.sampled_from(sorted(rf.SPEC_EDITS)))
def test_edits_stay_in_bounds_and_are_parser_fixed_points(spec, op):
    out = rf.edit_spec(op, spec, SMAC)
    assert rf.canonical(out, SMAC) == out
    assert LIMITS["temperature"][0] <= out["temperature"] <= LIMITS["temperature"][1] and 0 <= out["vdn_blend"] <= 1
    if op in ("mask_dead", "state_softmax"):
        assert rf.edit_spec(op, out, SMAC) == out


def test_edit_refuses_llm_operators():
    with pytest.raises(ValueError):
        rf.edit_spec("repair", _spec(), SMAC)


# -- state, observation, reward ----------------------------------------------------------------------
def _state(**kw):
    base = dict(task="smac_3m", goal="not_vdn", mode="spec", step=1, candidate='{"weights": {}}',
                summary="accepted (ok, stage export)", achieved=("finite",), reward_total=0.6)
    return rf.RefineState(**{**base, **kw})


def test_observation_is_deterministic_and_only_the_goal_line_changes():
    a, b = rf.observation(_state()), rf.observation(_state())
    assert a == b and a.endswith("Action:")
    other = rf.observation(_state(goal="masks_dead_agents"))
    la, lo = a.splitlines(), other.splitlines()
    assert len(la) == len(lo)
    diff = [i for i, (x, y) in enumerate(zip(la, lo)) if x != y]
    assert diff == [0] and "masks_dead_agents" in lo[0]


def test_observation_clips_and_neutralises_untrusted_text():
    obs = rf.observation(_state(candidate="x" * 5000 + "\x1b[31m", summary="rejected \x1b]8;;evil\x07"), max_chars=200)
    assert "\x1b" not in obs and "\x07" not in obs
    assert len(obs) < 800


def test_state_json_round_trip():
    s = _state()
    assert rf.RefineState.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_goal_reward_formula():
    assert rf.goal_reward("not_vdn", ["not_vdn"], 0.5) == pytest.approx(1.05)
    assert rf.goal_reward("not_vdn", ["finite"], 0.5) == pytest.approx(0.05)
    assert rf.goal_reward("not_vdn", ["not_vdn"], 0.5, shaping=0.0) == 1.0
    assert rf.goal_reward("not_vdn", [], 0.9, shaping=0.0) == 0.0


def test_policies():
    ops = rf.OPERATORS
    picks = [rf.RandomPolicy(1).choose(_state(), ops) for _ in range(1)]
    r1, r2 = rf.RandomPolicy(5), rf.RandomPolicy(5)
    seq = [r1.choose(_state(), ops) for _ in range(50)]
    assert seq == [r2.choose(_state(), ops) for _ in range(50)] and len(set(seq)) > 5 and picks
    plain = rf.PlainPolicy()
    assert ops[plain.choose(_state(), ops)].id == "refine"
    assert ops[plain.choose(_state(achieved=("all_gates",), summary="rejected (contract)"), ops)].id == "repair"


def test_load_policy_names(tmp_path):
    from tfcaf.errors import UsageError

    assert isinstance(rf.load_policy("random", tmp_path), rf.RandomPolicy)
    assert isinstance(rf.load_policy("plain", tmp_path), rf.PlainPolicy)
    for bad in ("nope", "../x", "a\nb"):
        with pytest.raises(UsageError):
            rf.load_policy(bad, tmp_path)


# -- the environment ---------------------------------------------------------------------------------
def _env(tmp_path, **kw):
    kw.setdefault("vet", SpecVetter())
    return rf.RefineEnv("smac_3m", store=tmp_path, **kw)


def test_reset_step_termination_on_goal(tmp_path):
    with _env(tmp_path, horizon=4) as env:
        s = env.reset(goal="masks_dead_agents", seed=11)
        assert s.step == 0 and s.goal == "masks_dead_agents" and not s.done
        if "masks_dead_agents" in s.achieved:  # seed 11 starts unmasked (checked here so the test cannot lie)
            pytest.fail("seed 11 should start without masking")
        s2, r, done, info = env.step(I["mask_dead"])
        assert done and info["terminated"] and not info["truncated"]
        assert "masks_dead_agents" in s2.achieved and r == pytest.approx(1.0 + 0.1 * s2.reward_total)
        assert info["operator"] == "mask_dead" and info["vet_calls"] == 1 and info["llm_calls"] == 0
        for key in ("achieved", "reward_total", "status"):
            assert key in info
        with pytest.raises(RuntimeError):
            env.step(I["stop"])


def test_horizon_truncates_and_noops_cost_no_vetting(tmp_path):
    vet = SpecVetter()
    with _env(tmp_path, horizon=3, vet=vet) as env:
        env.reset(goal="uses_feature:enemy_health_in_range", seed=2)
        before = vet.calls
        _, _, d1, i1 = env.step(I["repair"])  # no backend + accepted: a no-op
        assert i1["noop"] and i1["vet_calls"] == 0 and not d1 and vet.calls == before
        _, _, d2, _ = env.step(I["sharpen"])
        assert not d2
        s, r, d3, i3 = env.step(I["soften"])
        assert d3 and i3["truncated"] and not i3["terminated"] and s.step == 3 and s.done
        assert env.vet_calls == 1 + 2


def test_stop_terminates_and_bad_actions_are_refused(tmp_path):
    with _env(tmp_path) as env:
        env.reset(goal="not_vdn", seed=4)
        for bad in (-1, len(rf.OPERATORS), True, 1.0):
            with pytest.raises(ValueError):
                env.step(bad)
        s, r, done, info = env.step(I["stop"])
        assert done and info["terminated"] and info["vet_calls"] == 0 and s.step == 1


def test_reset_draws_an_unachieved_goal_and_is_seeded(tmp_path):
    with _env(tmp_path) as env:
        a = env.reset(seed=9)
        assert a.goal in env.goals and a.goal not in a.achieved
        b = env.reset(seed=9)
        assert (a.goal, a.candidate) == (b.goal, b.candidate)
    from tfcaf.errors import UsageError
    with pytest.raises(UsageError):
        with _env(tmp_path) as env:
            env.reset(goal="no_such_goal")


def test_dynamics_do_not_read_the_goal(tmp_path):
    seen = []
    for goal in ("not_vdn", "uses_feature:pos_x"):
        with _env(tmp_path / goal.replace(":", "_")) as env:
            env.reset(goal=goal, seed=21)
            s, _, _, _ = env.step(I["add_feature"])
            seen.append((s.candidate, s.achieved, s.reward_total))
    assert seen[0] == seen[1]


def test_events_become_dataset_rows_and_transitions(tmp_path):
    with _env(tmp_path, horizon=2) as env:
        env.reset(goal="uses_feature:enemy_health_in_range", seed=2)
        env.step(I["sharpen"])
        env.step(I["add_feature"])
        run = RunDir(env.rundir.path)
    events = run.load_events()
    steps = [e for e in events if e["type"] == "refine_step"]
    assert [e["operator"] for e in steps] == ["sharpen", "add_feature"]
    assert steps[0]["next_state"] == steps[1]["state"]
    assert all(set(("state", "action", "reward", "achieved", "done")) <= set(e) for e in steps)
    assert steps[-1]["done"] and steps[-1]["truncated"]
    assert [e["type"] for e in events].count("refine_episode") == 1 and events[-1]["type"] == "refine_finished"
    (episode,) = rf.read_episodes(run)
    assert episode["goal"] == "uses_feature:enemy_health_in_range" and [t["operator"] for t in episode["steps"]] == ["sharpen", "add_feature"]
    assert episode["steps"][0]["state"] == episode["start"] and episode["steps"][1]["done"]
    builder = Builder(tmp_path, her=True)
    rows = list(builder.rows([run]))
    originals = [r for r in rows if not r["relabeled"]]
    assert len(originals) == 3, builder.report  # the start + two vetted steps
    assert {r["generator"]["backend"] for r in originals} == {"spec-seed", "spec-edit"}
    edit = next(r for r in originals if r["generator"]["backend"] == "spec-edit")
    assert "Change it in one way" in edit["messages"][-1]["content"] and json.loads(edit["response"])["weights"]
    for r in rows:  # HER rows re-rendered from the same template only name achieved goals
        assert set(r["goal"]) <= set(r["achieved"]) or not r["relabeled"]


def test_llm_operators_use_the_backend_and_count_calls(tmp_path):
    good = json.dumps(_spec(weights={"health": 1.0}, vdn_blend=0.0, mask_dead=True))
    llm = ScriptedLLM([good])
    with _env(tmp_path, backend=llm) as env:
        env.reset(goal="uses_feature:health", seed=2)
        s, r, done, info = env.step(I["refine"])
        assert info["llm_calls"] == 1 and info["vet_calls"] == 1 and env.llm_calls == 1
        assert "best answer so far" in llm.requests[-1][0][-1]["content"]
        assert done and "uses_feature:health" in s.achieved


def test_code_mode_edits_are_prompts_answered_by_the_generator(tmp_path):
    from fakes import GOOD_CODE, RuleVetter

    llm = ScriptedLLM([GOOD_CODE])
    with rf.RefineEnv("matrix_climbing", mode="code", backend=llm, vet=RuleVetter(), store=tmp_path, horizon=2,
                      goals=["not_vdn"]) as env:
        s = env.reset()
        assert s.mode == "code" and "torch.sum" in s.candidate and env.llm_calls == 1
        s, r, done, info = env.step(I["mask_dead"])
        assert info["llm_calls"] == 1
        assert "Change it in one way: give dead agents zero credit" in llm.requests[-1][0][-1]["content"]
    from tfcaf.errors import UsageError
    with pytest.raises(UsageError):
        rf.RefineEnv("matrix_climbing", mode="code", store=tmp_path)


def test_real_vetter_episode(tmp_path):
    """One short episode on the real vetting pipeline (worker pool, micro-tasks)."""
    with rf.RefineEnv("lbf_2s-8x8-2p-2f-coop", store=tmp_path, horizon=2, goals=["not_vdn"]) as env:
        s = env.reset(seed=7)  # seed 7: plain VDN (blend 1, no weights)
        assert "not_vdn" not in s.achieved
        s, r, done, info = env.step(I["state_softmax"])
        assert info["status"] == "ok" and "not_vdn" in s.achieved and done
        events = [e for e in RunDir(env.rundir.path).load_events() if e["type"] == "candidate"]
        assert events[-1]["measures"]["micro"]


# -- generate --refiner ------------------------------------------------------------------------------
def test_generate_refiner_random_end_to_end(tmp_path, monkeypatch):
    """`tfcaf generate --refiner random` through the CLI on a scripted endpoint-free backend: the refiner
    picks the operators of the repair/refine steps, each logged; the run still selects a candidate."""
    import tfcaf.generator.session as session
    from tfcaf.cli import main
    from fakes import RuleVetter  # noqa: F401

    good = json.dumps(_spec(weights={"health": 0.5}, vdn_blend=1.0, mask_dead=False))
    llm = ScriptedLLM([good])
    monkeypatch.setattr(session, "make_backend", lambda settings: llm)
    monkeypatch.setattr(session, "default_vetter", lambda threads, store: _nullvet())
    code = main(["generate", "--task", "smac_3m", "--store", str(tmp_path), "--backend", "openai", "--mode", "spec",
                 "-k", "2", "--rounds", "2", "--repairs", "2", "--no-judge", "--refiner", "random", "--json"])
    assert code == 0
    run = next((tmp_path / "runs" / "smac_3m").glob("*"))
    events = RunDir(run).load_events()
    choices = [e for e in events if e["type"] == "refiner_choice"]
    assert choices and all(e["operator"] in rf.OPERATOR_INDEX for e in choices)
    refined = [e for e in events if e["type"] == "candidate" and e.get("refiner")]
    assert refined and all(e["refiner"]["name"] == "random" for e in refined)
    assert json.loads((run / "summary.json").read_text())["refiner"] == "random"
    assert json.loads((run / "config.json").read_text())["config"]["refiner"] == "random"


def test_generate_unknown_refiner_is_one_line_exit_2(tmp_path, capsys):
    from tfcaf.cli import main

    code = main(["generate", "--task", "smac_3m", "--store", str(tmp_path), "--refiner", "nosuch"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nosuch" in err[0]
    assert not (tmp_path / "runs").exists()
    assert main(["generate", "--task", "smac_3m", "--store", str(tmp_path), "--refiner", "../x"]) == 2


class _nullvet:
    def __enter__(self):
        return SpecVetter()

    def __exit__(self, *exc):
        return False


def test_repair_of_a_rejected_llm_start_uses_the_repair_prompt(tmp_path):
    good = json.dumps(_spec(weights={"health": 1.0}, vdn_blend=0.0))
    llm = ScriptedLLM(lambda messages, sampling: "not json at all" if len(messages) == 2 else good)
    with _env(tmp_path, backend=llm, start="llm") as env:
        s = env.reset(goal="not_vdn")
        assert s.summary.startswith("rejected") and "finite" not in s.achieved and env.llm_calls == 1
        action = rf.PlainPolicy().choose(s, rf.OPERATORS)
        assert rf.OPERATORS[action].id == "repair"
        assert env.step(I["sharpen"])[3]["noop"] == "no spec to edit"
        s, r, done, info = env.step(action)
        repair = llm.requests[-1][0]
        assert repair[-2] == {"role": "assistant", "content": "not json at all"}
        assert "rejected by the checks" in repair[-1]["content"]
        assert info["llm_calls"] == 1 and s.summary.startswith("accepted") and done


def test_cache_serves_identical_requests_and_still_counts_them(tmp_path):
    good = json.dumps(_spec(weights={"health": 1.0}, vdn_blend=0.0))
    counts = []
    for _ in range(2):
        llm = ScriptedLLM([good])
        with _env(tmp_path, backend=llm, cache=True) as env:
            env.reset(goal="not_vdn", seed=3)
            _, _, _, info = env.step(I["refine"])
            counts.append((len(llm.requests), info["llm_calls"]))
    assert counts == [(1, 1), (0, 1)]


def test_loop_with_plain_refiner_repairs_like_the_plain_loop(tmp_path):
    """Code mode, round 0: a rejected first answer; the plain refiner picks repair, and the repair prompt is
    the loop's own (the failure fed back); later rounds start from the selected candidate."""
    from fakes import BAD_CODE, GOOD_CODE, RuleVetter

    from tfcaf.generator.config import resolve
    from tfcaf.generator.session import generate

    def answer(messages, sampling):
        return BAD_CODE if len(messages) == 2 and "best answer so far" not in messages[-1]["content"] else GOOD_CODE

    llm = ScriptedLLM(answer)
    config, sources = resolve({"task": "matrix_climbing", "backend": "openai", "store": str(tmp_path), "k": 1,
                               "rounds": 2, "repairs": 1, "judge": False, "refiner": "plain", "goals": "finite"}, env={})
    summary = generate(config, sources, backend=llm, vet=RuleVetter())
    assert summary["accepted"] >= 1 and summary["selected"] == "r0-c0-a1"
    repair = llm.requests[1][0]
    assert repair[-2] == {"role": "assistant", "content": BAD_CODE} and "shape [B, 1]" in repair[-1]["content"]
    events = RunDir(Path(summary["run_dir"])).load_events()
    assert [e["operator"] for e in events if e["type"] == "refiner_choice"] == ["repair"]
    # round 1: every requested goal (finite) is met by the selected candidate, so the refiner is not asked again
    assert not any(e["type"] == "candidate" and e["cid"].startswith("r1-") for e in events)


def test_resumed_refined_run_repeats_nothing(tmp_path):
    from tfcaf.generator.config import resolve
    from tfcaf.generator.session import generate

    good = json.dumps(_spec(weights={"health": 0.5}, vdn_blend=1.0))
    config, sources = resolve({"task": "smac_3m", "backend": "openai", "store": str(tmp_path), "mode": "spec", "k": 2,
                               "rounds": 2, "repairs": 2, "judge": False, "refiner": "random", "seed": 3}, env={})
    first = generate(config, sources, backend=ScriptedLLM([good]), vet=SpecVetter())
    run = RunDir(Path(first["run_dir"]))
    before = [e for e in run.load_events() if e["type"] in ("candidate", "refiner_choice")]
    assert any(e["type"] == "refiner_choice" for e in before)
    llm = ScriptedLLM([good])
    again = generate(None, None, resume=first["run_id"], store=str(tmp_path), backend=llm, vet=SpecVetter())
    after = [e for e in run.load_events() if e["type"] in ("candidate", "refiner_choice")]
    assert len(llm.requests) == 0 and len(after) == len(before) and again["selected"] == first["selected"]


def test_plain_spec_run_resumes_without_new_requests(tmp_path):
    """Regression: the event log sorts keys, so a resumed spec run rebuilt its refine prompt from a spec in
    another key order and asked the LLM again; recorded specs are now put back in the parser's order."""
    from tfcaf.generator.config import resolve
    from tfcaf.generator.session import generate

    good = json.dumps(_spec(weights={"pos_x": 0.5, "health": 1.0}, vdn_blend=0.5))
    config, sources = resolve({"task": "smac_3m", "backend": "openai", "store": str(tmp_path), "mode": "spec", "k": 1,
                               "rounds": 2, "repairs": 0, "judge": False, "cache": False}, env={})
    first = generate(config, sources, backend=ScriptedLLM([good]), vet=SpecVetter())
    llm = ScriptedLLM([good])
    generate(None, None, resume=first["run_id"], store=str(tmp_path), backend=llm, vet=SpecVetter())
    assert first["llm_calls"] == 2 and len(llm.requests) == 0
