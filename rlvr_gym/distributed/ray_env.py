"""`RayVectorEnv`: a Gymnasium vector env whose sub-envs live in Ray actors spread over a
cluster, so each sub-env's verifier (a code sandbox included) runs on the node of its env.

It behaves as `gymnasium.vector.SyncVectorEnv` built from the same env fns (observations,
rewards, terminations, truncations, infos, autoreset modes, spaces), with every sub-env's
`reset`/`step` running at once. `score_batch` shards `rlvr_gym.agents.rollout.score` over the
sub-envs; `rollout.score(vector_env, ...)` uses it, so agents score through the cluster
without knowing. Needs `pip install "rlvr-gym[ray]"`, and rlvr-gym on every node.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from rlvr_gym.distributed.ray_verifier import (
    check_workers,
    connect,
    error_verdict,
    failure_reason,
    import_ray,
    spans,
    wait_started,
)
from rlvr_gym.types import Problem


def _make(env_id: str, kwargs: Mapping[str, Any]) -> gym.Env:
    """`gym.make(env_id, **kwargs)` in an actor (importing this module registered the rlvr
    ids)."""
    return gym.make(env_id, **kwargs)


class _EnvWorker:
    """A Ray actor holding one sub-env, built in the actor's process from its env fn."""

    def __init__(self, env_fn: Callable[[], gym.Env]) -> None:
        self.env = env_fn()

    def where(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}

    def spaces(self) -> tuple[gym.Space, gym.Space, dict[str, Any], str | None]:
        return (self.env.observation_space, self.env.action_space, dict(self.env.metadata),
                self.env.render_mode)

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[Any, dict]:
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any, autoreset: bool, mode: str
             ) -> tuple[Any, float, bool, bool, list[dict[str, Any]]]:
        """One sub-env's part of `SyncVectorEnv.step`: the observation, reward, flags and
        the infos to add to the vector's infos, in order."""
        if mode == AutoresetMode.NEXT_STEP.value and autoreset:
            obs, info = self.env.reset()
            return obs, 0.0, False, False, [info]
        if mode == AutoresetMode.DISABLED.value and autoreset:
            raise ResetNeeded("autoreset_mode='disabled': reset this sub-env (reset_mask) "
                              "before stepping it again")
        obs, reward, terminated, truncated, info = self.env.step(action)
        infos = []
        if mode == AutoresetMode.SAME_STEP.value and (terminated or truncated):
            infos.append({"final_obs": obs, "final_info": info})
            obs, info = self.env.reset()
        return obs, float(reward), bool(terminated), bool(truncated), infos + [info]

    def call(self, name: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        function = self.env.get_wrapper_attr(name)
        return function(*args, **kwargs) if callable(function) else function

    def set_attr(self, name: str, value: Any) -> None:
        self.env.set_wrapper_attr(name, value)

    def render(self) -> Any:
        return self.env.render()

    def score(self, problems: list[str | Problem], actions: list[str], prefixes: list[str]
              ) -> list[Any]:
        from rlvr_gym.agents.rollout import score

        return score(self.env, problems, actions, prefixes)

    def close(self) -> None:
        self.env.close()


class RayVectorEnv(VectorEnv):
    """A vector env of `num_envs` sub-envs, each built inside its own Ray actor.

    Same results as `SyncVectorEnv(env_fns, copy=copy, autoreset_mode=autoreset_mode)` (its
    "same" observation mode): `reset`, `step`, `call`, `get_attr`, `set_attr`, `render` and
    `close` run on all sub-envs at once (all submitted, then gathered in order).

    Args:
        env_fns: callables that build the sub-envs (run in the actors, so they must pickle),
            or an env id: `num_envs` sub-envs `gym.make(env_fns, **env_kwargs)`.
        num_envs: sub-envs for an env id; with env fns, None or their number.
        env_kwargs: `gym.make` kwargs of an env id.
        copy: return copies of the observations (as SyncVectorEnv).
        autoreset_mode: as SyncVectorEnv: an `AutoresetMode` or its value ("NextStep",
            "SameStep", "Disabled").
        max_retries: retries of a `reset` or `score_batch` call whose actor died (Ray restarts
            the actor with a fresh env). A `step` is never retried: the sub-env's episode is
            lost, and the step raises RuntimeError (or the fresh env's ResetNeeded) saying to
            `reset()`, after which the vector env goes on.
        num_cpus: Ray CPUs each actor asks for.
        scheduling_strategy: Ray's placement of the actors ("SPREAD": over the nodes).
        address: the cluster to join if this process is not connected to Ray (see
            `rlvr_gym.distributed.ray_verifier.connect`).
        start_timeout_s: how long to wait for the actors to start before RuntimeError.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]] | str,
                 num_envs: int | None = None, *, env_kwargs: Mapping[str, Any] | None = None,
                 copy: bool = True, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 max_retries: int = 2, num_cpus: float = 1.0, scheduling_strategy: Any = "SPREAD",
                 address: str | None = None, start_timeout_s: float = 120.0) -> None:
        fns = _env_fns(env_fns, num_envs, env_kwargs)
        check_workers(len(fns), max_retries, num_cpus, "num_envs")
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        if not start_timeout_s > 0:
            raise ValueError(f"start_timeout_s must be positive seconds, got {start_timeout_s!r}")
        ray = connect(address)
        self.copy = copy
        self.max_retries = max_retries
        self.num_envs = len(fns)
        worker = ray.remote(_EnvWorker).options(
            num_cpus=num_cpus, scheduling_strategy=scheduling_strategy, max_restarts=-1,
            max_task_retries=0)
        # The env fns in the object store, held for the actors' restarts while this lives.
        self._fns = [ray.put(fn) for fn in fns]
        self._actors: list[Any] = [worker.remote(fn) for fn in self._fns]
        wait_started(ray, self._actors, start_timeout_s, "sub-env workers", num_cpus)
        spaces = self._gather([actor.spaces.remote() for actor in self._actors], "building")
        self.single_observation_space, self.single_action_space, metadata, self.render_mode = \
            spaces[0]
        for obs_space, action_space, _, _ in spaces:
            if obs_space != self.single_observation_space \
                    or action_space != self.single_action_space:
                self.close()
                raise RuntimeError("the sub-envs' observation or action spaces differ; build "
                                   "every sub-env with the same spaces")
        self.metadata = {**metadata, "autoreset_mode": self.autoreset_mode}
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._observations: Any = create_empty_array(self.single_observation_space,
                                                     n=self.num_envs, fn=np.zeros)
        self._rewards = np.zeros((self.num_envs,), dtype=np.float64)
        self._terminations = np.zeros((self.num_envs,), dtype=np.bool_)
        self._truncations = np.zeros((self.num_envs,), dtype=np.bool_)
        self._autoreset_envs = np.zeros((self.num_envs,), dtype=np.bool_)
        self._scored = False  # score_batch replaced the episodes: reset() before step()

    def workers(self) -> list[dict[str, Any]]:
        """Where each sub-env's actor runs now: `{"pid", "node_id"}`."""
        return self._gather([actor.where.remote() for actor in self._live()], "where")

    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the sub-envs (all, or those of `options["reset_mask"]`), as SyncVectorEnv:
        `seed` None, an int (sub-env i gets seed + i) or one per sub-env."""
        seeds = [None] * self.num_envs if seed is None else \
            [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"If seeds are passed as a list the length must match "
                             f"num_envs={self.num_envs} but got length={len(seeds)}.")
        options = dict(options) if options is not None else None
        mask = np.ones((self.num_envs,), dtype=np.bool_)
        if options is not None and "reset_mask" in options:
            mask = options.pop("reset_mask")
            if not isinstance(mask, np.ndarray) or mask.shape != (self.num_envs,) \
                    or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"options['reset_mask'] must be a numpy bool array of shape "
                                 f"({self.num_envs},) with at least one True value")
        else:
            self._scored = False
        self._terminations[mask] = False
        self._truncations[mask] = False
        self._autoreset_envs[mask] = False
        picked = [i for i in range(self.num_envs) if mask[i]]
        actors = self._live()
        results = self._gather(
            [actors[i].reset.options(max_task_retries=self.max_retries).remote(seeds[i], options)
             for i in picked], "reset")
        obs = self._last_obs()
        infos: dict[str, Any] = {}
        for i, (ob, info) in zip(picked, results, strict=True):
            obs[i] = ob
            infos = self._add_info(infos, info, i)
        self._observations = concatenate(self.single_observation_space, obs, self._observations)
        return (deepcopy(self._observations) if self.copy else self._observations), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        """Step every sub-env at once, with SyncVectorEnv's autoreset behaviour. A sub-env
        whose actor died loses its episode: RuntimeError (or ResetNeeded) says to
        `reset()`."""
        if self._scored:
            raise ResetNeeded("score_batch used the sub-envs for scoring: call reset() before "
                              "step()")
        actions = list(iterate(self.action_space, actions))
        actors = self._live()
        results = self._gather(
            [actor.step.remote(action, bool(self._autoreset_envs[i]), self.autoreset_mode.value)
             for i, (actor, action) in enumerate(zip(actors, actions, strict=True))], "step")
        infos: dict[str, Any] = {}
        obs = []
        for i, (ob, reward, terminated, truncated, env_infos) in enumerate(results):
            obs.append(ob)
            self._rewards[i], self._terminations[i], self._truncations[i] = \
                reward, terminated, truncated
            for info in env_infos:
                infos = self._add_info(infos, info, i)
        self._observations = concatenate(self.single_observation_space, obs, self._observations)
        self._autoreset_envs = np.logical_or(self._terminations, self._truncations)
        return ((deepcopy(self._observations) if self.copy else self._observations),
                np.copy(self._rewards), np.copy(self._terminations), np.copy(self._truncations),
                infos)

    def score_batch(self, problems: Sequence[str | Problem], actions: Sequence[str],
                    prefixes: Sequence[str] | None = None) -> list[Any]:
        """`rlvr_gym.agents.rollout.score` of the pairs, sharded in contiguous runs over the
        sub-envs (each run scored by its actor on its env, so verification happens where the
        env lives) and returned in input order: the same `Scored`s as `score` on one local
        env of the same kind. A run whose actor died is retried up to `max_retries` times,
        then each of its pairs is `Scored(0.0, usable=False, correct=False)` with an `error`
        verdict naming the failure. The sub-envs' episodes are used up: `reset()` before the
        next `step()`."""
        from rlvr_gym.agents.rollout import Scored

        prefixes = list(prefixes) if prefixes is not None else [""] * len(actions)
        if not len(problems) == len(actions) == len(prefixes):
            raise ValueError(f"got {len(problems)} problems, {len(actions)} actions and "
                             f"{len(prefixes)} prefixes; give one of each per sample")
        actors = self._live()
        ray = import_ray()
        self._scored = True
        runs = spans(len(actions), len(actors))
        refs = [actor.score.options(max_task_retries=self.max_retries).remote(
                    list(problems[lo:hi]), list(actions[lo:hi]), prefixes[lo:hi])
                for actor, (lo, hi) in zip(actors, runs, strict=False)]
        out: list[Any] = []
        for ref, (lo, hi) in zip(refs, runs, strict=True):
            try:
                out += ray.get(ref)
            except ray.exceptions.RayTaskError:
                raise  # the env refused the input (an unknown problem id): as `score` locally
            except ray.exceptions.RayError as exc:
                verdict = error_verdict(failure_reason(exc, self.max_retries))
                out += [Scored(0.0, False, False, verdict)] * (hi - lo)
        return out

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """`name` of each sub-env: called with the arguments if it is a method."""
        return tuple(self._gather([actor.call.remote(name, args, kwargs)
                                   for actor in self._live()], f"call({name!r})"))

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """The attribute `name` of each sub-env."""
        return self.call(name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Set `name` on each sub-env: one value per sub-env (a list or tuple), or one for
        all."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"Values must be a list or tuple with length equal to the number "
                             f"of environments. Got `{len(values)}` values for "
                             f"{self.num_envs} environments.")
        self._gather([actor.set_attr.remote(name, value)
                      for actor, value in zip(self._live(), values, strict=True)],
                     f"set_attr({name!r})")

    def render(self) -> tuple[Any, ...]:
        """Each sub-env's `render()`."""
        return tuple(self._gather([actor.render.remote() for actor in self._live()], "render"))

    def close_extras(self, **kwargs: Any) -> None:
        """Close the sub-envs (their verifiers) and stop the actors."""
        actors, self._actors = getattr(self, "_actors", []), []
        if not actors:
            return
        ray = import_ray()
        try:
            ray.wait([actor.close.remote() for actor in actors], num_returns=len(actors),
                     timeout=30)
        finally:
            for actor in actors:
                ray.kill(actor)

    def __repr__(self) -> str:
        return f"RayVectorEnv(num_envs={self.num_envs})"

    def _live(self) -> list[Any]:
        if not self._actors:
            raise RuntimeError("this RayVectorEnv is closed; build a new one")
        return self._actors

    def _last_obs(self) -> list[Any]:
        """The sub-envs' current observations, one per sub-env."""
        return list(iterate(self.observation_space, self._observations))

    def _gather(self, refs: list[Any], what: str) -> list[Any]:
        """`ray.get(refs)`; an exception of the env is raised as it is, a dead actor is
        RuntimeError naming the fix."""
        ray = import_ray()
        try:
            return list(ray.get(refs))
        except ray.exceptions.RayTaskError:
            raise
        except ray.exceptions.RayError as exc:
            raise RuntimeError(f"a sub-env's Ray actor failed during {what} "
                               f"({type(exc).__name__}); Ray restarts it with a fresh env: call "
                               "reset() to go on") from exc


def _env_fns(env_fns: Sequence[Callable[[], gym.Env]] | str, num_envs: int | None,
             env_kwargs: Mapping[str, Any] | None) -> list[Callable[[], gym.Env]]:
    """The env fns of `RayVectorEnv`'s arguments, or ValueError naming the fix."""
    if isinstance(env_fns, str):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1 with an env id, got {num_envs!r}")
        return [functools.partial(_make, env_fns, dict(env_kwargs or {}))] * num_envs
    if env_kwargs is not None:
        raise ValueError("env_kwargs go with an env id; put them in your env fns instead")
    fns = list(env_fns)
    if not fns or not all(callable(fn) for fn in fns):
        raise ValueError("env_fns must be a non-empty sequence of callables that build the "
                         "sub-envs (or an env id with num_envs)")
    if num_envs is not None and num_envs != len(fns):
        raise ValueError(f"num_envs={num_envs} but {len(fns)} env fns; leave num_envs out")
    return fns
