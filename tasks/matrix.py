"""One-step cooperative matrix games (QTRAN / QMIX literature), as batched torch environments.

Two agents each pick one of three actions; the team gets `payoff[a0, a1]` and the episode ends.
Climbing (Claus & Boutilier 1998) and Penalty (k = 100) are the standard relative-overgeneralisation
tests: the optimum needs credit that a monotone (IGM) mixer can represent only with state-independent
care, so the cards relax the IGM requirement.
"""

from __future__ import annotations

from tfcaf.tasks.card import StateSlice, TaskCard
from tfcaf.tasks.env import BatchedEnv, EnvStep, first_step

CLIMBING = ((11.0, -30.0, 0.0), (-30.0, 7.0, 6.0), (0.0, 0.0, 5.0))
PENALTY_K = 100.0
PENALTY = ((-PENALTY_K, 0.0, 10.0), (0.0, 2.0, 0.0), (10.0, 0.0, -PENALTY_K))


def _payoff_text(payoff: tuple[tuple[float, ...], ...]) -> str:
    rows = ["[" + ", ".join(f"{v:g}" for v in row) + "]" for row in payoff]
    return "[" + ", ".join(rows) + "]"


def matrix_card(name: str, payoff: tuple[tuple[float, ...], ...], title: str) -> TaskCard:
    flat = [v for row in payoff for v in row]
    return TaskCard(
        name=name,
        family="matrix",
        backend="torch (in-house)",
        n_agents=2,
        state_dim=1,
        obs_dim=1,
        n_actions=3,
        episode_limit=1,
        action_meanings=("choose row/column 0", "choose row/column 1", "choose row/column 2"),
        reward=f"team reward payoff[a0][a1] with payoff = {_payoff_text(payoff)} (agent 0 picks the row, agent 1 the column)",
        description=(f"{title}: a one-step cooperative matrix game for two agents with three actions each. "
                     f"The best joint action earns {max(flat):g}; miscoordination is punished down to {min(flat):g}. "
                     "The global state carries no information (a constant 1), so credit must come from the Q values alone."),
        state_slices=(StateSlice("bias", 0, 1, "constant 1.0 (the game has no state)", 1.0, 1.0),),
        alive=None,
        requires_igm=False,
        reward_range=(min(flat), max(flat)),
    )


MATRIX_CLIMBING = matrix_card("matrix_climbing", CLIMBING, "Climbing game")
MATRIX_PENALTY = matrix_card("matrix_penalty", PENALTY, f"Penalty game (k = {PENALTY_K:g})")
PAYOFFS = {"matrix_climbing": CLIMBING, "matrix_penalty": PENALTY}


class MatrixGameEnv(BatchedEnv):
    """E independent copies of a one-step matrix game; every step ends (terminates) the episode."""

    def __init__(self, card: TaskCard, n_envs: int = 1, device: str = "cpu", seed: int = 0,
                 payoff: tuple[tuple[float, ...], ...] | None = None) -> None:
        """`payoff` [A, A] defaults to the built-in game of `card.name` (a plugin game passes its own)."""
        import torch

        if payoff is None and card.name not in PAYOFFS:
            raise ValueError(f"no payoff matrix for task '{card.name}'")
        self.card = card
        self.n_envs = n_envs
        self.device = torch.device(device)
        self._payoff = torch.tensor(payoff if payoff is not None else PAYOFFS[card.name], dtype=torch.float32,
                                    device=self.device)  # [A, A]
        self._n_actions = int(self._payoff.shape[0])
        if tuple(self._payoff.shape) != (self._n_actions, self._n_actions) or self._n_actions != card.n_actions:
            raise ValueError(f"payoff must be [A, A] with A = card.n_actions = {card.n_actions}")
        self._obs = torch.ones(n_envs, 2, 1, device=self.device)  # [E, N, O]
        self._state = torch.ones(n_envs, 1, device=self.device)  # [E, S]
        self._avail = torch.ones(n_envs, 2, self._n_actions, dtype=torch.bool, device=self.device)  # [E, N, A]

    def reset(self, seed: int | None = None) -> EnvStep:
        return first_step(self._obs, self._state, self._avail)

    def step(self, actions: "torch.Tensor") -> EnvStep:
        import torch

        actions = actions.to(self.device, torch.int64)
        if tuple(actions.shape) != (self.n_envs, 2):
            raise ValueError(f"actions must be [E, N] = [{self.n_envs}, 2], got {list(actions.shape)}")
        if bool(((actions < 0) | (actions >= self._n_actions)).any()):
            raise ValueError(f"actions must be in [0, {self._n_actions})")
        reward = self._payoff[actions[:, 0], actions[:, 1]]  # [E]
        done = torch.ones(self.n_envs, dtype=torch.bool, device=self.device)
        return EnvStep(obs=self._obs, state=self._state, avail_actions=self._avail, reward=reward,
                       terminated=done, truncated=torch.zeros_like(done), won=torch.zeros_like(done),
                       episode_return=reward.clone(),
                       episode_length=torch.ones(self.n_envs, dtype=torch.int64, device=self.device),
                       final_obs=self._obs, final_state=self._state, final_avail_actions=self._avail)


def make_matrix_env(card: TaskCard, n_envs: int = 1, device: str = "cpu", seed: int = 0, **options: object) -> MatrixGameEnv:
    if options:
        raise TypeError(f"matrix games take no options, got {sorted(options)}")
    return MatrixGameEnv(card, n_envs=n_envs, device=device, seed=seed)
