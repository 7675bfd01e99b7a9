"""`mpe_simple_spread` on `mpe2` (PettingZoo's MPE moved there; MIT): card and adapter.

Three agents must cover three landmarks without colliding; 25-step episodes, discrete actions.
The global state is mpe2's `state()`: the agents' observations concatenated (agent-major, 18 each:
own velocity 2, own position 2, landmark positions relative to the agent 3 x 2, other agents'
positions relative to it 2 x 2, their communication 2 x 2, always 0 because agents are silent).

The value ranges are worst-case bounds derived from mpe2's physics (dt 0.1, damping 0.25, action
force 5, contact force at most 30 per pair), so they always hold; typical values are much smaller
(positions within about [-2, 2], speeds below 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfcaf.errors import MissingDependencyError
from tfcaf.tasks.card import Feature, StateSlice, TaskCard
from tfcaf.tasks.pyloop import LoopEnv, check_options
from tfcaf.tasks.registry import Task, register

if TYPE_CHECKING:
    import numpy as np

INSTALL = "python3 -m pip install 'mpe2>=1.0'"
N_AGENTS = 3
EPISODE_LIMIT = 25
OBS = 18
AGENT_SIZE = 0.15
# Worst-case bounds from the physics: v' = 0.75 v + F dt with |F| <= 5 + 30 (N - 1) per axis.
MAX_SPEED = (5.0 + 30.0 * (N_AGENTS - 1)) * 0.1 / 0.25
MAX_POS = 1.0 + EPISODE_LIMIT * MAX_SPEED * 0.1
ACTIONS = ("no action", "move left (-x)", "move right (+x)", "move down (-y)", "move up (+y)")


def _features() -> tuple[Feature, ...]:
    g, n = "global_state", N_AGENTS

    def col(i: int, k: int) -> str:
        return f"{g}[:, {i * OBS + k}]"

    def stack(parts: list[str]) -> str:
        return "torch.stack([" + ", ".join(parts) + "], dim=1)"

    def norm(i: int, k: int) -> str:
        return f"torch.sqrt({col(i, k)} ** 2 + {col(i, k + 1)} ** 2)"

    speed = stack([norm(i, 0) for i in range(n)])
    landmark = stack([f"torch.amin({stack([norm(i, 4 + 2 * j) for j in range(n)])}, dim=1)" for i in range(n)])
    other = stack([f"torch.amin({stack([norm(i, 10 + 2 * j) for j in range(n - 1)])}, dim=1)" for i in range(n)])
    far = 2 * MAX_POS * 2 ** 0.5
    return (
        Feature("speed", "own speed", speed, 0.0, MAX_SPEED * 2 ** 0.5),
        Feature("nearest_landmark_distance", "distance to the closest landmark (0 = covering it)", landmark, 0.0, far),
        Feature("nearest_agent_distance", "distance to the closest other agent", other, 0.0, far),
        Feature("colliding", f"1 if another agent is closer than {2 * AGENT_SIZE:g} (a collision, penalised), else 0",
                f"({other} < {2 * AGENT_SIZE}).to({g}.dtype)", 0.0, 1.0),
    )


def mpe_card() -> TaskCard:
    slices = []
    rel = 2 * MAX_POS
    parts = (("vel", 2, "own velocity (x, y)", MAX_SPEED), ("pos", 2, "own position (x, y); starts in [-1, 1]", MAX_POS),
             ("landmark_rel", 6, "landmark j's position minus the agent's, (x, y) for j = 0, 1, 2", MAX_POS + 1.0),
             ("other_rel", 4, "the other agents' positions minus the agent's, (x, y) each, in agent order skipping itself", rel),
             ("comm", 2 * (N_AGENTS - 1), "the other agents' communication (always 0: agents are silent)", 0.0))
    for i in range(N_AGENTS):
        at = i * OBS
        for name, width, meaning, bound in parts:
            slices.append(StateSlice(f"agent{i}_{name}", at, at + width, f"agent {i}'s observation: {meaning}", -bound, bound))
            at += width
    return TaskCard(
        name="mpe_simple_spread", family="mpe", backend="mpe2 (PettingZoo MPE)", n_agents=N_AGENTS, state_dim=N_AGENTS * OBS,
        obs_dim=OBS, n_actions=len(ACTIONS), episode_limit=EPISODE_LIMIT, action_meanings=ACTIONS,
        reward=("shared team reward: the sum over agents of mpe2's per-agent reward 0.5 x (-(sum over landmarks of the distance "
                "to the closest agent)) + 0.5 x (-1 per other agent it collides with)"),
        description=(f"MPE simple_spread: {N_AGENTS} agents (radius {AGENT_SIZE:g}) on a 2-D plane must spread out to cover "
                     f"{N_AGENTS} landmarks while avoiding collisions. Episodes always last {EPISODE_LIMIT} steps (truncated). "
                     "Credit should go to agents that move towards uncovered landmarks and away from other agents."),
        state_slices=tuple(slices), alive=None, requires_igm=True, features=_features(), install_hint=INSTALL,
        reward_range=(float("-inf"), 0.0),
        notes=("Global state = mpe2's state(): the observations concatenated, agent-major.",
               "Slice ranges are worst-case physical bounds; typical positions lie within [-2, 2]."),
    )


register(Task(mpe_card(), "tfcaf.tasks.mpe:make_mpe_env", requires=("mpe2",), install=INSTALL))


class MpeEnv(LoopEnv):
    """E simple_spread games (mpe2 parallel API), stepped one after another."""

    def __init__(self, card: TaskCard, n_envs: int = 1, device: str = "cpu", seed: int = 0) -> None:
        try:
            from mpe2 import simple_spread_v3
        except ImportError as err:
            raise MissingDependencyError(err.name or "mpe2", f"task '{card.name}'", INSTALL) from err
        super().__init__(card, n_envs, device, seed)
        self.envs = [simple_spread_v3.parallel_env(N=N_AGENTS, max_cycles=EPISODE_LIMIT, continuous_actions=False)
                     for _ in range(n_envs)]
        self.agents = list(self.envs[0].possible_agents)

    def _pack(self, i: int, obs: dict) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        import numpy as np

        o = np.stack([np.asarray(obs[a], np.float32) for a in self.agents])  # [N, O]
        state = np.asarray(self.envs[i].state(), np.float32)  # [S]
        return o, state, np.ones((N_AGENTS, len(ACTIONS)), bool)

    def reset_one(self, i: int, seed: int | None) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        obs, _ = self.envs[i].reset(seed=seed)
        return self._pack(i, obs)

    def step_one(self, i: int, actions: "np.ndarray") -> tuple[Any, ...]:
        obs, rewards, terms, truncs, _ = self.envs[i].step({a: int(actions[k]) for k, a in enumerate(self.agents)})
        o, s, av = self._pack(i, obs)
        terminated = all(terms.get(a, False) for a in self.agents)
        truncated = any(truncs.get(a, False) for a in self.agents)
        return o, s, av, float(sum(rewards[a] for a in self.agents)), terminated, truncated

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_mpe_env(card: TaskCard, n_envs: int = 1, device: str = "cpu", seed: int = 0, **options: Any) -> MpeEnv:
    check_options("mpe", options)
    return MpeEnv(card, n_envs=n_envs, device=device, seed=seed)
