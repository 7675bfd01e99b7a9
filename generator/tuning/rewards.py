"""Rewards for online tuning: the real vetter + the tiered reward, or a toy verifiable reward for tests.

A reward function maps (task, answer text, answer token ids) to a `Scored`, or None when the answer could
not be judged for reasons that are not its own (an infrastructure failure: the sample is dropped).
Training executes no candidate Python: the vetter runs every answer in its sandboxed worker processes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class Scored:
    reward: float
    """The tiered reward in [0, 1] (tfcaf.evaluator.reward.tiered_reward(...).total)."""
    passed: bool
    """True when the answer passed every gate (the vetter accepted it)."""
    verdict: "dict[str, Any] | None" = field(default=None, kw_only=True, repr=False)
    """The full verdict JSON (the real reward; None for toy rewards): online samples become store runs with it."""
    info: dict[str, Any] = field(default_factory=dict)
    """{'status', 'stage', 'reasons', 'tier', 'vector'} for the log and the observer's prompt."""


RewardFn = Callable[[str, str, list[int]], "Scored | None"]


def toy_even_tokens(task: str, text: str, ids: list[int]) -> Scored:
    """A toy verifiable reward for tests: the share of answer tokens with an even id (eos excluded is
    the caller's business: every token counts). A random tiny model scores ~0.5; 1.0 is reachable."""
    reward = sum(1 for i in ids if i % 2 == 0) / max(1, len(ids))
    return Scored(reward, reward > 0.75, {"status": "toy", "reasons": []})


@dataclass(frozen=True)
class ToyFirstTokenReward:
    """A toy verifiable reward for tests: 1 when the answer's first token is in `targets`, else 0.
    Pick `targets` among the base model's likelier first tokens so the base scores well above 0 and
    below 1 (see tests/generator/test_tuning.py)."""

    targets: frozenset[int]

    def __call__(self, task: str, text: str, ids: list[int]) -> Scored:
        reward = 1.0 if ids and ids[0] in self.targets else 0.0
        return Scored(reward, reward == 1.0, {"status": "toy", "reasons": []})


@contextlib.contextmanager
def vetted_reward(mode: str = "code", threads: int = 1) -> Iterator[RewardFn]:
    """The real reward: vet the answer with the sandbox's vetter (warm worker pool) and score the verdict
    with the tiered reward. Spec-mode answers are parsed and rendered first, as `tfcaf generate` does."""
    from tfcaf.evaluator.reward import NoReward, tiered_reward
    from tfcaf.generator.session import default_vetter
    from tfcaf.generator.spec import SpecError, parse_spec, render_spec
    from tfcaf.tasks.registry import get_card

    with default_vetter(threads) as vet:
        def score(task: str, text: str, ids: list[int]) -> Scored | None:
            card = get_card(task)
            if mode == "spec":
                try:
                    text = render_spec(parse_spec(text, card), card)
                except SpecError as err:
                    return Scored(0.0, False, {"status": "text", "stage": "text", "reasons": [f"spec: {err}"], "tier": -1},
                                  verdict={"verdict": "rejected", "status": "text", "stage": "text", "reasons": [f"spec: {err}"],
                                           "counterexample": None, "metrics": {}, "source": None, "graph": None})
            verdict = vet(text, card)
            data = verdict.to_json() if hasattr(verdict, "to_json") else dict(verdict)
            try:
                r = tiered_reward(data, card)
            except NoReward:
                return None
            return Scored(float(r.total), data.get("verdict") == "accepted", verdict=data, info=
                          {"status": data.get("status"), "stage": data.get("stage"),
                           "reasons": [str(x) for x in (data.get("reasons") or [])][:3], "tier": r.tier,
                           "vector": dict(r.vector)})

        yield score
