"""`smac_<map>` tasks on JaxMARL's SMAX: registration (always) and the batched adapter (needs JAX).

All E environments advance in one jitted, vmapped call that also normalises the state, computes the
available actions, auto-resets finished episodes (keeping the terminal obs/state in final_*) and packs
everything into one float32 array [E, K]; torch receives it in one zero-copy transfer (dlpack) and
slices views out of it. The jitted functions are cached per (map, last_actions): JAX compiles them
once per process for each E (8-32 s each on 2 CPU cores).

Example:
    >>> env = make_env("smac_3m", n_envs=64)            # doctest: +SKIP
    >>> out = env.reset(seed=0); out.state.shape        # doctest: +SKIP
    torch.Size([64, 72])
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from typing import TYPE_CHECKING, Any

from tfcaf.errors import MissingDependencyError, UsageError
from tfcaf.tasks.card import TaskCard
from tfcaf.tasks.env import BatchedEnv, EnvStep
from tfcaf.tasks.registry import Task, register
from tfcaf.tasks.smax_cards import (
    EPISODE_LIMIT, MAP_SIZE, SMAC_MAPS_MISSING_FROM_SMAX, SMAC_REWARD_SCALE, SMAX_MAPS, UNIT_HEALTH, UNIT_TYPES,
    UNIT_WEAPON_COOLDOWN, SmaxLayout, parse_task_name, smax_card,
)

if TYPE_CHECKING:
    import torch

INSTALL = "python3 -m pip install 'jaxmarl>=0.1'"

for _name in SMAX_MAPS:
    register(Task(smax_card(_name), "tfcaf.tasks.smax:make_smax_env", requires=("jax", "jaxmarl"), install=INSTALL))


def unknown_map_message(name: str) -> str | None:
    """A helpful message for an unknown `smac_*` name (e.g. a SMAC map that SMAX lacks), else None."""
    if not name.startswith("smac_"):
        return None
    map_name = parse_task_name(name)[0]
    why = " SMAX (JaxMARL) has no such scenario" + (" (it needs unit types SMAX lacks)" if map_name in SMAC_MAPS_MISSING_FROM_SMAX else "")
    return (f"unknown SMAC map '{map_name}':{why}. Available SMAX maps: {', '.join(SMAX_MAPS)} "
            "(as tasks smac_<map>).")


@contextlib.contextmanager
def _quiet_stdout() -> Any:
    """Silence fd 1 (jaxmarl's import resets sys.stdout, so redirecting sys.stdout alone is not enough)."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _import_jax() -> tuple[Any, Any, Any]:
    """jax, jax.numpy and jaxmarl's SMAX module, without letting JAX grab a GPU or print to stdout."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        import jax
        import jax.numpy as jnp

        with _quiet_stdout():  # jaxmarl prints about optional submodules, which would corrupt --json output
            from jaxmarl.environments.smax import heuristic_enemy_smax_env as smax_mod
    except ImportError as err:
        raise MissingDependencyError(err.name or "jaxmarl", "SMAX tasks (smac_*)", INSTALL) from err
    return jax, jnp, smax_mod


@functools.lru_cache(maxsize=None)
def compiled(map_name: str, last_actions: bool) -> "SmaxFunctions":
    """The jitted reset/step functions of one map, built once per process (JAX caches per E)."""
    return SmaxFunctions(map_name, last_actions)


class SmaxFunctions:
    """Pure JAX functions for one map: `reset(keys[E]) -> (carry, packed)`, `step(carry, actions[E, N]) -> (carry, packed)`.

    packed [E, K] float32 = obs [N*O] | state [S] | avail [N*A] | reward, terminated, truncated, won,
    episode_return, episode_length | final_obs [N*O] | final_state [S] | final_avail [N*A].
    """

    def __init__(self, map_name: str, last_actions: bool) -> None:
        jax, jnp, smax_mod = _import_jax()
        from jaxmarl.environments.smax.smax_env import map_name_to_scenario

        self.smap = SMAX_MAPS[map_name]
        self.env = smax_mod.HeuristicEnemySMAX(scenario=map_name_to_scenario(map_name))
        n, m, a = self.smap.n_allies, self.smap.n_enemies, self.smap.n_actions
        self.layout = SmaxLayout(n, m, a, last_actions)
        self.obs_dim = int(self.env.observation_spaces[self.env.agents[0]].shape[0])
        self.n, self.m, self.a, self.s = n, m, a, self.layout.state_dim
        self.width = 2 * (n * self.obs_dim + self.s + n * a) + 6
        health = jnp.asarray(UNIT_HEALTH, dtype=jnp.float32)
        cooldown = jnp.asarray(UNIT_WEAPON_COOLDOWN, dtype=jnp.float32)
        env, agents = self.env, self.env.agents

        def norm_state(st: Any, last: Any) -> Any:  # SMAX State, last [N, A] -> [S]
            alive = st.unit_alive  # [U]
            types = st.unit_types.astype(jnp.int32)  # [U]
            hp = jnp.where(alive, st.unit_health / health[types], 0.0)
            # collision pushes can leave a unit briefly outside the map (walls kill it next world step): clip
            pos = jnp.where(alive[:, None], jnp.clip(st.unit_positions / MAP_SIZE, 0.0, 1.0), 0.0)  # [U, 2]
            cd = jnp.where(alive, jnp.clip(st.unit_weapon_cooldowns / cooldown[types], 0.0, 1.0), 0.0)
            onehot = jnp.where(alive[:, None], jax.nn.one_hot(types, len(UNIT_TYPES)), 0.0)  # [U, T]
            parts = [hp[:n], hp[n:], pos[:n, 0], pos[:n, 1], pos[n:, 0], pos[n:, 1], cd[:n], cd[n:],
                     onehot[:n].reshape(-1), onehot[n:].reshape(-1), st.unit_teams.astype(jnp.float32),
                     types.astype(jnp.float32)]
            if last_actions:
                parts.append(last.reshape(-1))
            return jnp.concatenate([p.astype(jnp.float32) for p in parts])

        def obs_avail(obs: Any, st: Any) -> tuple[Any, Any]:  # -> [N, O], [N, A]
            avail = env.get_avail_actions(st)  # must run inside vmap: batched states break it
            return (jnp.stack([obs[ag] for ag in agents]).astype(jnp.float32),
                    jnp.stack([avail[ag] for ag in agents]).astype(jnp.float32))

        def reset_one(key: Any) -> tuple[Any, Any]:
            obs, st = env.reset(key)
            last = jnp.zeros((n, a), jnp.float32)
            o, av = obs_avail(obs, st)
            s = norm_state(st.state, last)
            zeros = jnp.zeros((6,), jnp.float32)
            carry = (key, st, last, jnp.float32(0.0), jnp.float32(0.0))
            return carry, jnp.concatenate([o.reshape(-1), s, av.reshape(-1), zeros, o.reshape(-1), s, av.reshape(-1)])

        def step_one(carry: Any, actions: Any, scale: Any) -> tuple[Any, Any]:
            key, st, last, ep_ret, ep_len = carry
            key, k_step, k_reset = jax.random.split(key, 3)
            obs, st2, rewards, dones, _ = env.step_env(k_step, st, {ag: actions[i] for i, ag in enumerate(agents)})
            reward = rewards[agents[0]].astype(jnp.float32) * scale
            alive = st2.state.unit_alive
            allies_dead, enemies_dead = ~jnp.any(alive[:n]), ~jnp.any(alive[n:])
            ep_ret2, ep_len2 = ep_ret + reward, ep_len + 1.0
            terminated = allies_dead | enemies_dead
            # SMAX checks its step limit before counting the step (episodes would last limit + 1 steps):
            # truncate at the card's limit ourselves.
            truncated = ~terminated & (dones["__all__"] | (ep_len2 >= EPISODE_LIMIT))
            done = terminated | truncated
            won = enemies_dead & ~allies_dead
            last2 = jax.nn.one_hot(actions, a, dtype=jnp.float32)  # [N, A]
            f_obs, f_avail = obs_avail(obs, st2)
            f_state = norm_state(st2.state, last2)
            obs_r, st_r = env.reset(k_reset)
            r_obs, r_avail = obs_avail(obs_r, st_r)
            zero_last = jnp.zeros_like(last2)
            r_state = norm_state(st_r.state, zero_last)
            nxt = jax.tree.map(lambda r, s: jnp.where(done, r, s), st_r, st2)
            pick = lambda r, s: jnp.where(done, r, s)  # noqa: E731
            flags = jnp.stack([reward, terminated.astype(jnp.float32), truncated.astype(jnp.float32),
                               won.astype(jnp.float32), ep_ret2, ep_len2])
            packed = jnp.concatenate([pick(r_obs, f_obs).reshape(-1), pick(r_state, f_state), pick(r_avail, f_avail).reshape(-1),
                                      flags, f_obs.reshape(-1), f_state, f_avail.reshape(-1)])
            new_carry = (key, nxt, pick(zero_last, last2), jnp.where(done, 0.0, ep_ret2), jnp.where(done, 0.0, ep_len2))
            return new_carry, packed

        self.reset = jax.jit(jax.vmap(reset_one))
        self.step = jax.jit(jax.vmap(step_one, in_axes=(0, 0, None)))
        self.raw_step = jax.jit(jax.vmap(env.step))
        """SMAX's own auto-resetting step, vmapped (the benchmark's baseline)."""


def _to_torch(x: Any, device: "torch.device") -> "torch.Tensor":
    """One JAX array -> torch, zero-copy where both live on the same device (dlpack)."""
    import torch

    t = torch.utils.dlpack.from_dlpack(x)
    return t if t.device == device else t.to(device, non_blocking=True)


class SmaxEnv(BatchedEnv):
    """E SMAX battles of one map against the heuristic enemy, stepped in one jitted call."""

    def __init__(self, card: TaskCard, n_envs: int = 1, device: str = "cpu", seed: int = 0,
                 last_actions: bool = False, smac_reward: bool = False) -> None:
        import torch

        map_name = parse_task_name(card.name)[0]
        if map_name not in SMAX_MAPS:
            raise UsageError(unknown_map_message(card.name) or card.name)
        if n_envs < 1:
            raise UsageError(f"n_envs must be >= 1, got {n_envs}")
        self.card = smax_card(map_name, last_actions=last_actions, smac_reward=smac_reward)
        self.n_envs, self.device, self.seed = n_envs, torch.device(device), seed
        self.fns = compiled(map_name, last_actions)
        self._scale = SMAC_REWARD_SCALE if smac_reward else 1.0
        self._scale_dev: Any = None  # a JAX scalar, made once (not per step)
        self._carry: Any = None
        f = self.fns
        no, s, na = f.n * f.obs_dim, f.s, f.n * f.a
        self._cuts = [no, s, na, 1, 1, 1, 1, 1, 1, no, s, na]

    def _unpack(self, packed: Any) -> EnvStep:
        import torch

        f, e = self.fns, self.n_envs
        flat = _to_torch(packed, self.device)  # [E, K]
        (obs, state, avail, reward, term, trunc, won, ep_ret, ep_len, f_obs, f_state, f_avail) = torch.split(flat, self._cuts, dim=1)
        return EnvStep(obs=obs.reshape(e, f.n, f.obs_dim), state=state, avail_actions=avail.reshape(e, f.n, f.a) > 0.5,
                       reward=reward[:, 0], terminated=term[:, 0] > 0.5, truncated=trunc[:, 0] > 0.5, won=won[:, 0] > 0.5,
                       episode_return=ep_ret[:, 0], episode_length=ep_len[:, 0].to(torch.int64),
                       final_obs=f_obs.reshape(e, f.n, f.obs_dim), final_state=f_state,
                       final_avail_actions=f_avail.reshape(e, f.n, f.a) > 0.5)

    def reset(self, seed: int | None = None) -> EnvStep:
        import jax

        seed = self.seed if seed is None else seed
        keys = jax.random.split(jax.random.PRNGKey(seed), self.n_envs)
        self._carry, packed = self.fns.reset(keys)
        # SMAX's reset leaves weak-typed leaves; stepping once here would retrace, so normalise them
        self._carry = jax.tree.map(lambda x: x.astype(x.dtype), self._carry)
        return self._unpack(packed)

    def step(self, actions: "torch.Tensor") -> EnvStep:
        import jax.numpy as jnp
        import numpy as np

        if self._carry is None:
            raise UsageError("call reset() before step()")
        if tuple(actions.shape) != (self.n_envs, self.fns.n):
            raise ValueError(f"actions must be [E, N] = [{self.n_envs}, {self.fns.n}], got {list(actions.shape)}")
        host = actions.detach().to("cpu").numpy()
        if (host < 0).any() or (host >= self.fns.a).any():
            raise ValueError(f"actions must be in [0, {self.fns.a})")
        acts = jnp.asarray(host.astype(np.int32))
        if self._scale_dev is None:
            self._scale_dev = jnp.asarray(self._scale, dtype=jnp.float32)
        self._carry, packed = self.fns.step(self._carry, acts, self._scale_dev)
        return self._unpack(packed)

    def raw_state(self) -> Any:
        """SMAX's own (un-normalised) world state [E, 12 U] of the current step, as numpy (for tests)."""
        import jax
        import numpy as np

        return np.asarray(jax.vmap(self.fns.env.get_world_state)(self._carry[1]))

    def unit_alive(self) -> Any:
        """SMAX's own alive flags [E, U] (allies then enemies) of the current step, as numpy (for tests)."""
        import numpy as np

        return np.asarray(self._carry[1].state.unit_alive)


def make_smax_env(card: TaskCard, n_envs: int = 1, device: str = "cpu", seed: int = 0, **options: Any) -> SmaxEnv:
    """Registry factory; options: last_actions (bool), smac_reward (bool), or the same as name suffixes
    ('smac_3m+last_actions+smac_reward'); env.card always describes what the env returns."""
    unknown = set(options) - {"last_actions", "smac_reward"}
    if unknown:
        raise UsageError(f"smac tasks take the options last_actions and smac_reward, not {sorted(unknown)}")
    _, la, sr = parse_task_name(card.name)
    return SmaxEnv(card, n_envs=n_envs, device=device, seed=seed,
                   last_actions=bool(options.get("last_actions", la)), smac_reward=bool(options.get("smac_reward", sr)))


def resolve_variant(name: str) -> Task | None:
    """'smac_<map>+last_actions', '+smac_reward' (or both): the variant task of a registered map, else None."""
    if not name.startswith("smac_") or "+" not in name:
        return None
    map_name, last, smac = parse_task_name(name)
    flags = name.split("+")[1:]
    if map_name not in SMAX_MAPS or not flags or any(f not in ("last_actions", "smac_reward") for f in flags):
        return None
    card = smax_card(map_name, last_actions=last, smac_reward=smac)
    if card.name != name:  # canonical flag order only, so one variant has one name
        return None
    return Task(card, "tfcaf.tasks.smax:make_smax_env", requires=("jax", "jaxmarl"), install=INSTALL)


def _register_hint() -> None:
    from tfcaf.tasks.registry import TASK_RESOLVERS, UNKNOWN_NAME_HINTS

    TASK_RESOLVERS.append(resolve_variant)
    UNKNOWN_NAME_HINTS.append(unknown_map_message)


_register_hint()
