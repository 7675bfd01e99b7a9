"""Short-training fitness of a vetted candidate, for the generate loop's selection (`--fitness-steps`).

The candidate is trained with through its rebuilt graph (`tfcaf.sandbox.graph.load_graph`, the trusted
interpretation of allow-listed ATen ops): no candidate Python runs here, exactly as in `tfcaf train`.
The run lives in a temporary store and is discarded; only the number comes back.

Fitness in [0, 1]: the greedy test win rate where the task has wins (SMAX); otherwise the final test
return scaled by the card's return bounds (per-step reward range x episode limit) when they are finite,
else squashed with 0.5 + 0.5 tanh(return / 10).
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

from tfcaf.tasks.card import TaskCard


def fitness_from_summary(summary: dict[str, Any], card: TaskCard) -> float:
    """Map a training summary to [0, 1] (see the module docstring)."""
    win = summary.get("test_win_rate")
    if win is not None and card.family == "smax":
        return float(min(max(win, 0.0), 1.0))
    ret = float(summary.get("test_return_mean") or 0.0)
    lo, hi = card.reward_range
    lo_ret, hi_ret = min(lo, lo * card.episode_limit), max(hi, hi * card.episode_limit)
    if math.isfinite(lo_ret) and math.isfinite(hi_ret) and hi_ret > lo_ret:
        return float(min(max((ret - lo_ret) / (hi_ret - lo_ret), 0.0), 1.0))
    return 0.5 + 0.5 * math.tanh(ret / 10.0)


def short_training_fitness(graph: dict[str, Any], card: TaskCard, steps: int, seed: int,
                           device: str = "cpu") -> float:
    """Train `steps` env steps with the graph as the mixer (family defaults, seeded); fitness in [0, 1]."""
    from tfcaf.sandbox.graph import graph_digest, load_graph
    from tfcaf.trainer.config import resolve_config
    from tfcaf.trainer.mixers import BuiltMixer, CreditFunctionMixer
    from tfcaf.trainer.run import Run

    module = load_graph(graph, device=device)  # raises RejectedError on anything outside the allow-list
    mixer = BuiltMixer(CreditFunctionMixer(module, card.n_agents, card.state_dim).to(device), "tfcaf:candidate",
                       False, {"graph_sha256": graph_digest(graph)})
    cfg, source = resolve_config(card.family, flags={"steps": steps, "seed": seed, "tensorboard": False,
                                                     "test_interval": max(steps, 1),
                                                     "checkpoint_interval": 10 * max(steps, 1)})
    with tempfile.TemporaryDirectory(prefix="tfcaf-fitness-") as tmp:
        run = Run.start(card.name, mixer.name, cfg, device=device, store=tmp, config_source=source, mixer=mixer)
        summary = run.train()
    return fitness_from_summary(summary, card)
