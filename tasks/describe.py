"""Prose for prompts and people, rendered from a task card's data only (so it cannot drift).

`describe(card)` is what an LLM reads about a task: agents, actions, reward, the global-state layout
with column indices and value ranges, the alive flag and the named features. `card_to_dict(card)` is
the same information as JSON-ready data (`tfcaf tasks NAME --json`).

Example:
    >>> from tfcaf.tasks.registry import get_card
    >>> print(describe(get_card("matrix_climbing")).splitlines()[0])
    Task matrix_climbing (family matrix, simulated by torch (in-house)).
"""

from __future__ import annotations

import math
from typing import Any

from tfcaf.tasks.card import TaskCard, card_to_json


def _num(x: float) -> str:
    if math.isinf(x):
        return "-inf" if x < 0 else "inf"
    return f"{x:g}"


def describe(card: TaskCard, features: bool = True) -> str:
    """A plain-text description of `card` for prompts; every fact comes from the card's fields."""
    lines = [
        f"Task {card.name} (family {card.family}, simulated by {card.backend}).",
        card.description,
        "",
        f"Agents: N = {card.n_agents}. Global state: S = {card.state_dim} features per time step. "
        f"Each agent has {card.n_actions} discrete actions; episodes last at most {card.episode_limit} steps.",
        "Actions: " + "; ".join(f"{i}: {m}" for i, m in enumerate(card.action_meanings)) + ".",
        f"Reward: {card.reward.rstrip('.')}. Per-step team reward range: [{_num(card.reward_range[0])}, {_num(card.reward_range[1])}].",
        "",
        "The credit function receives agents_q [B, N] (agent i's Q value in column i) and global_state [B, S] with this layout "
        "(columns start:stop, stop exclusive):",
    ]
    for s in card.state_slices:
        cols = f"global_state[:, {s.start}]" if s.width == 1 else f"global_state[:, {s.start}:{s.stop}]"
        per = " (one column per agent, in agent order)" if s.per_agent else ""
        lines.append(f"- {s.name}: {cols}{per}, values in [{_num(s.low)}, {_num(s.high)}]: {s.meaning}")
    lines.append("")
    if card.alive is not None:
        cols = ", ".join(str(c) for c in card.alive.columns)
        lines.append(f"Alive flag: agent i is alive iff global_state[:, c_i] > {_num(card.alive.threshold)} with c = ({cols})"
                     + (f" ({card.alive.meaning})." if card.alive.meaning else "."))
    else:
        lines.append("Alive flag: none (agents never die in this task).")
    lines.append("Monotonicity: " + ("required. Q_tot must never decrease when any agent's Q value increases (IGM, as in QMIX)."
                                       if card.requires_igm else
                                       "not required for this task (non-monotonic credit may be needed)."))
    if features and card.features:
        lines += ["", "Named per-agent features (each a [B, N] tensor computed from global_state):"]
        for f in card.features:
            lines.append(f"- {f.name} in [{_num(f.low)}, {_num(f.high)}]: {f.meaning}")
    if card.notes:
        lines += ["", "Notes: " + " ".join(card.notes)]
    return "\n".join(lines)


def card_to_dict(card: TaskCard) -> dict[str, Any]:
    """The card as JSON-ready data (infinite bounds become strings '-inf' / 'inf'): `card_to_json`."""
    return card_to_json(card)
