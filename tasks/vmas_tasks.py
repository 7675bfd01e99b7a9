"""`vmas_<scenario>` tasks on VMAS (native torch, vectorised over E; GPL-3.0): cards and adapter.

VMAS steps all E environments in one torch call on the requested device, so there is no transfer at
all. It has no global state: the global state is the agents' observations concatenated (agent-major).
Discrete actions (9 per agent, VMAS's flattening of a 3 x 3 grid: each axis stays, decreases or
increases by the agent's full force). Episodes are truncated after 100 steps (BenchMARL's horizon).
The team reward is the mean of the agents' rewards (for shared-reward scenarios, the shared reward).

Positions and velocities are physically unbounded in VMAS (no walls, no speed limit), so their slices
declare (-inf, inf) and say the typical range in words; bounded quantities (lidar, angles) declare
their real bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfcaf.errors import MissingDependencyError, UsageError
from tfcaf.tasks.card import Feature, StateSlice, TaskCard
from tfcaf.tasks.env import BatchedEnv, EnvStep, first_step
from tfcaf.tasks.registry import Task, register

if TYPE_CHECKING:
    import torch

INSTALL = "python3 -m pip install 'vmas>=1.4'"
EPISODE_LIMIT = 100
INF = float("inf")
ACTIONS = ("stay", "move -y", "move +y", "move -x", "move -x -y", "move -x +y", "move +x", "move +x -y", "move +x +y")
NAVIGATION_LIDAR_RANGE = 0.35


@dataclass(frozen=True)
class VmasScenario:
    name: str
    n_agents: int
    parts: tuple[tuple[str, int, str, float, float], ...]
    """Per-agent observation layout: (name, width, meaning, low, high)."""
    reward: str
    description: str
    features: tuple[tuple[str, str, str, float, float], ...]
    """(name, meaning, expression template over one agent's block {b}, low, high); see _features."""

    @property
    def obs_dim(self) -> int:
        return sum(p[1] for p in self.parts)

    def offset(self, part: str) -> int:
        at = 0
        for name, width, *_ in self.parts:
            if name == part:
                return at
            at += width
        raise KeyError(part)


_POS = ("pos", 2, "own position (x, y); typically within [-1.5, 1.5]", -INF, INF)
_VEL = ("vel", 2, "own velocity (x, y); typically within [-1.5, 1.5]", -INF, INF)


def _norm(b: str, k: int) -> str:
    return f"torch.sqrt({b}{k}] ** 2 + {b}{k + 1}] ** 2)"


SCENARIOS: dict[str, VmasScenario] = {s.name: s for s in (
    VmasScenario(
        "navigation", 4,
        (_POS, _VEL, ("goal_rel", 2, "own position minus own goal's position (x, y)", -INF, INF),
         ("lidar", 12, f"12 lidar rays: {NAVIGATION_LIDAR_RANGE} minus the distance to the closest agent along the ray "
                       f"(0 = nothing within range, higher = closer)", 0.0, NAVIGATION_LIDAR_RANGE)),
        "mean over agents of: the shared decrease in the summed agent-to-goal distances, +0.01 per step once every agent "
        "is at its goal, -1 for each collision of the agent",
        "VMAS navigation: 4 agents (radius 0.1) each drive to their own goal on an open plane while avoiding each other. "
        "The episode terminates when every agent is on its goal. Credit should go to agents closing in on their goals "
        "without collisions.",
        (("goal_distance", "distance to own goal", "{goal}", 0.0, INF),
         ("speed", "own speed", "{speed}", 0.0, INF),
         ("at_goal", "1 if the agent is on its goal (closer than its radius 0.1), else 0", "({goal} < 0.1).to(global_state.dtype)", 0.0, 1.0),
         ("closest_obstacle", f"distance to the closest agent seen by the lidar ({NAVIGATION_LIDAR_RANGE} when none in range)",
          f"{NAVIGATION_LIDAR_RANGE} - torch.amax(global_state[:, {{lidar0}}:{{lidar1}}], dim=1)", 0.0, NAVIGATION_LIDAR_RANGE)),
    ),
    VmasScenario(
        "balance", 3,
        (_POS, _VEL, ("package_rel", 2, "own position minus the package's position", -INF, INF),
         ("line_rel", 2, "own position minus the line's (centre) position", -INF, INF),
         ("package_goal_rel", 2, "package position minus the package's goal position", -INF, INF),
         ("package_vel", 2, "package velocity", -INF, INF), ("line_vel", 2, "line velocity", -INF, INF),
         ("line_ang_vel", 1, "line angular velocity", -INF, INF),
         ("line_rot", 1, "line rotation modulo pi", 0.0, math.pi)),
        "shared: the decrease in the package's distance to its goal (shaping), and -10 when the package or line "
        "touches the floor",
        "VMAS balance: 3 agents carry a line with a package on it and must bring the package to its goal without "
        "dropping it. The episode terminates when the package reaches the goal or falls. Credit should go to agents "
        "that keep the line level while moving the package towards the goal.",
        (("speed", "own speed", "{speed}", 0.0, INF),
         ("package_distance", "distance from the agent to the package", "{package}", 0.0, INF),
         ("package_goal_distance", "distance from the package to its goal (the same for every agent)", "{package_goal}", 0.0, INF)),
    ),
    VmasScenario(
        "simple_spread", 3,
        (_POS, _VEL, ("landmark_rel", 6, "landmark j's position minus the agent's, (x, y) for j = 0, 1, 2", -INF, INF),
         ("other_rel", 4, "the other agents' positions minus the agent's, (x, y) each, in agent order skipping itself", -INF, INF)),
        "shared: minus the sum over landmarks of the distance to the closest agent, -1 per colliding pair of agents",
        "VMAS port of MPE simple_spread: 3 agents (radius 0.15) must cover 3 landmarks while avoiding collisions. "
        "Credit should go to agents moving to uncovered landmarks and away from each other.",
        (("speed", "own speed", "{speed}", 0.0, INF),
         ("nearest_landmark_distance", "distance to the closest landmark", "{landmark}", 0.0, INF),
         ("nearest_agent_distance", "distance to the closest other agent", "{other}", 0.0, INF)),
    ),
)}


def _features(sc: VmasScenario) -> tuple[Feature, ...]:
    """Render each feature template for every agent and stack them to [B, N]."""
    o, g = sc.obs_dim, "global_state"
    out = []
    for name, meaning, template, low, high in sc.features:
        per_agent = []
        for i in range(sc.n_agents):
            b, base = f"{g}[:, ", i * o

            def at(part: str, k: int = 0) -> int:
                return base + sc.offset(part) + k

            values: dict[str, Any] = {"speed": _norm(b, at("vel"))}
            if sc.name == "navigation":
                values |= {"goal": _norm(b, at("goal_rel")), "lidar0": at("lidar"), "lidar1": at("lidar", 12)}
            if sc.name == "balance":
                values |= {"package": _norm(b, at("package_rel")), "package_goal": _norm(b, at("package_goal_rel"))}
            if sc.name == "simple_spread":
                values |= {
                    "landmark": "torch.amin(torch.stack([" + ", ".join(_norm(b, at("landmark_rel", 2 * j)) for j in range(3)) + "], dim=1), dim=1)",
                    "other": "torch.amin(torch.stack([" + ", ".join(_norm(b, at("other_rel", 2 * j)) for j in range(2)) + "], dim=1), dim=1)",
                }
            per_agent.append(template.format(**values))
        out.append(Feature(name, meaning, "torch.stack([" + ", ".join(per_agent) + "], dim=1)", low, high))
    return tuple(out)


def vmas_card(name: str) -> TaskCard:
    sc = SCENARIOS[name]
    slices, o = [], sc.obs_dim
    for i in range(sc.n_agents):
        at = i * o
        for part, width, meaning, low, high in sc.parts:
            slices.append(StateSlice(f"agent{i}_{part}", at, at + width, f"agent {i}'s observation: {meaning}", low, high))
            at += width
    return TaskCard(
        name=f"vmas_{name}", family="vmas", backend="vmas (torch, vectorised)", n_agents=sc.n_agents, state_dim=sc.n_agents * o,
        obs_dim=o, n_actions=len(ACTIONS), episode_limit=EPISODE_LIMIT, action_meanings=ACTIONS, reward=sc.reward,
        description=sc.description + f" Episodes are truncated after {EPISODE_LIMIT} steps.",
        state_slices=tuple(slices), alive=None, requires_igm=True, features=_features(sc), install_hint=INSTALL,
        notes=("Global state = the agents' observations concatenated, agent-major (VMAS has no global state).",
               "VMAS is GPL-3.0; tfcaf only imports it."),
    )


for _name in SCENARIOS:
    register(Task(vmas_card(_name), "tfcaf.tasks.vmas_tasks:make_vmas_env", requires=("vmas",), install=INSTALL))


class VmasEnv(BatchedEnv):
    """E VMAS worlds of one scenario, stepped in one vectorised torch call on `device`."""

    def __init__(self, card: TaskCard, n_envs: int = 1, device: str = "cpu", seed: int = 0) -> None:
        import torch

        try:
            import vmas
        except ImportError as err:
            raise MissingDependencyError(err.name or "vmas", f"task '{card.name}'", INSTALL) from err
        if n_envs < 1:
            raise UsageError(f"n_envs must be >= 1, got {n_envs}")
        self.card, self.n_envs, self.device, self.seed = card, n_envs, torch.device(device), seed
        self.env = vmas.make_env(card.name.removeprefix("vmas_"), num_envs=n_envs, device=str(self.device),
                                 continuous_actions=False, max_steps=EPISODE_LIMIT, seed=seed, terminated_truncated=True)
        self._avail = torch.ones(n_envs, card.n_agents, card.n_actions, dtype=torch.bool, device=self.device)
        self._ret = torch.zeros(n_envs, device=self.device)
        self._len = torch.zeros(n_envs, dtype=torch.int64, device=self.device)

    def _obs(self, obs: list) -> tuple["torch.Tensor", "torch.Tensor"]:
        o = torch_stack(obs)  # [E, N, O]
        return o, o.reshape(self.n_envs, -1)

    def reset(self, seed: int | None = None) -> EnvStep:
        obs = self.env.reset(seed=self.seed if seed is None else seed)
        self._ret.zero_()
        self._len.zero_()
        o, s = self._obs(obs)
        return first_step(o, s, self._avail)

    def step(self, actions: "torch.Tensor") -> EnvStep:
        import torch

        n, a = self.card.n_agents, self.card.n_actions
        if tuple(actions.shape) != (self.n_envs, n):
            raise ValueError(f"actions must be [E, N] = [{self.n_envs}, {n}], got {list(actions.shape)}")
        actions = actions.to(self.device, torch.int64)
        if bool(((actions < 0) | (actions >= a)).any()):
            raise ValueError(f"actions must be in [0, {a})")
        obs, rews, term, trunc, _ = self.env.step([actions[:, i] for i in range(n)])
        reward = torch.stack(rews, dim=1).mean(1).to(torch.float32)  # [E]
        terminated = term.to(torch.bool)
        truncated = trunc.to(torch.bool) & ~terminated
        done = terminated | truncated
        self._ret += reward
        self._len += 1
        ep_ret, ep_len = self._ret.clone(), self._len.clone()
        f_obs, f_state = self._obs(obs)
        o, s = f_obs, f_state
        if bool(done.any()):
            if bool(done.all()):
                obs = self.env.reset()
            else:
                for i in done.nonzero().flatten().tolist():
                    self.env.reset_at(i, return_observations=False)
                obs = self.env.get_from_scenario(get_observations=True, get_rewards=False, get_infos=False, get_dones=False)[0]
            o, s = self._obs(obs)
            keep = ~done
            o = torch.where(done[:, None, None], o, f_obs)
            s = torch.where(done[:, None], s, f_state)
            self._ret *= keep
            self._len *= keep
        return EnvStep(obs=o, state=s, avail_actions=self._avail, reward=reward, terminated=terminated, truncated=truncated,
                       won=torch.zeros_like(done), episode_return=ep_ret, episode_length=ep_len,
                       final_obs=f_obs, final_state=f_state, final_avail_actions=self._avail)


def torch_stack(obs: list) -> "torch.Tensor":
    import torch

    return torch.stack([x.to(torch.float32) for x in obs], dim=1)


def make_vmas_env(card: TaskCard, n_envs: int = 1, device: str = "cpu", seed: int = 0, **options: Any) -> VmasEnv:
    if options:
        raise UsageError(f"vmas tasks take no options, got {sorted(options)}")
    return VmasEnv(card, n_envs=n_envs, device=device, seed=seed)
