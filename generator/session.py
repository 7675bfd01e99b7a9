"""One `tfcaf generate` run end to end: resolve the task, open (or resume) the run directory, build the
backend, the vetter and the optional fitness hook, run the loop, write summary.json.

    summary = generate(config, sources)            # a new run
    summary = generate(None, None, resume="RUN")   # continue a killed run with its stored config
    summary["selected"], summary["accepted"], summary["llm_calls"]
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable, Iterator

from tfcaf.errors import InfrastructureError, MissingDependencyError, RejectedError, UsageError
from tfcaf.generator.backends import Backend, BackendSettings, identity, make_backend
from tfcaf.generator.config import GenerateConfig, upgrade_fields
from tfcaf.generator.loop import FitnessFn, GenerateLoop, Progress, VetFn
from tfcaf.generator.rundir import ResponseCache, RunDir
from tfcaf.provenance import versions
from tfcaf.tasks.card import card_to_json
from tfcaf.store import new_run_id, store_dir

FITNESS_HOOK = "tfcaf.trainer.fitness:short_training_fitness"
"""Where the optional short-training fitness lives: fn(graph, card, steps, seed) -> float in [0, 1]."""


def backend_settings(config: GenerateConfig, store: Path | None = None) -> BackendSettings:
    model = config.model
    name = config.resolved_backend
    if config.generator:  # a tuned generator: its folder, served by llama.cpp when it can, else transformers
        from tfcaf.generator.tuning.serve import generator_path, serving_backend

        folder = generator_path(store if store is not None else store_dir(config.store), config.generator)
        model, name = str(folder), serving_backend(folder, config.resolved_backend)
    return BackendSettings(name=name, model=model, base_url=config.base_url,
                           api_key_env=config.api_key_env, send_api_key=config.send_api_key, timeout_s=config.timeout_s,
                           max_retries=config.max_retries, threads=config.threads, device=config.device,
                           context=config.context, sha256_cache=str(store / "cache") if store is not None else None)


@contextlib.contextmanager
def default_vetter(threads: int = 1, store: Path | None = None) -> Iterator[VetFn]:
    """The real vetting pipeline (a warm worker pool) as a vet(text, card) function, using the real
    rollout states of `store` (recorded on the first vetting of a task, see VetOptions.record_states)."""
    try:
        from tfcaf.sandbox.vetting import VetOptions, Vetter
    except ImportError as err:
        raise InfrastructureError(f"the vetting pipeline (tfcaf.sandbox.vetting) cannot be imported: {err}") from err
    with Vetter(options=VetOptions(store=None if store is None else str(store))) as vetter:
        yield vetter.vet


def real_states(task: str, store: Path) -> Any:
    """The task's recorded rollout states in `store` ([M, S] array), or None."""
    try:
        from tfcaf.tasks.samples import load_states

        return load_states(task, store)
    except Exception:  # noqa: BLE001 - optional: micro-tasks fall back to card-range states
        return None


def fitness_hook(steps: int) -> FitnessFn | None:
    """The trainer's short-training fitness when --fitness-steps > 0; a clear error when it is missing."""
    if steps <= 0:
        return None
    module_name, _, attr = FITNESS_HOOK.partition(":")
    if importlib.util.find_spec(module_name) is None:
        raise MissingDependencyError("tfcaf trainer fitness", "--fitness-steps",
                                     f"a trainer exposing {FITNESS_HOOK}; run without --fitness-steps")
    fn = getattr(importlib.import_module(module_name), attr, None)
    if fn is None:
        raise InfrastructureError(f"--fitness-steps needs {FITNESS_HOOK}, which this trainer does not define.")
    return fn


def _open_resumed(store: Path, resume: str) -> tuple[GenerateConfig, RunDir]:
    rundir = RunDir.open(store, resume)
    stored = rundir.read_json("config.json")
    try:
        return GenerateConfig(**upgrade_fields(stored["config"], "stored run setting", warn=False)).check(), rundir
    except (KeyError, TypeError, AttributeError) as err:  # a hand-edited or foreign config.json
        raise RejectedError(f"run {rundir.run_id}: config.json does not hold a generate config ({type(err).__name__}); "
                            "start a new run.") from None


def _ensure_states(vet: Any, card: Any, progress: Progress | None) -> None:
    """Record the task's real rollout states before the first candidate when the store has none."""
    owner = getattr(vet, "__self__", None)
    ensure = getattr(owner, "ensure_states", None)
    if callable(ensure):
        if progress is not None:
            progress("status", text=f"recording real states of {card.name}")
        ensure(card.name)


def _create_run(config: GenerateConfig, sources: dict[str, str] | None, store: Path, card: Any,
                model: dict[str, Any] | None = None) -> RunDir:
    rundir = RunDir.create(store, card.name, new_run_id())
    rundir.write_json("config.json", {"config": config.to_json(), "sources": sources or {},
                                      "mode": config.resolved_mode, "max_tokens": config.resolved_max_tokens})
    rundir.write_json("card.json", card_to_json(card))
    rundir.write_json("versions.json", versions())
    rundir.write_json("model.json", model or {})
    rundir.append({"type": "run_started", "task": card.name, "backend": (model or {}).get("backend", config.resolved_backend),
                   "generator": config.generator, "mode": config.resolved_mode,
                   "model_identity": model or {}, "goal": config.resolved_goals(card)})
    return rundir


def generate(config: GenerateConfig | None, sources: dict[str, str] | None = None, *, resume: str | None = None,
             store: str | Path | None = None, backend: Backend | None = None, vet: VetFn | None = None,
             progress: Progress | None = None,
             on_start: Callable[[GenerateConfig, RunDir], None] | None = None) -> dict[str, Any]:
    """Run or resume a generate run; returns the summary (also written to summary.json).

    `store` only matters with `resume` (a new run takes the store from its config)."""
    from tfcaf.runtime import configure_torch
    from tfcaf.tasks.registry import get_card

    if config is None and not resume:
        raise UsageError("generate needs a config or --resume RUN.")
    store_path = store_dir(config.store if config else store)
    rundir: RunDir | None = None
    if resume:
        config, rundir = _open_resumed(store_path, resume)
    assert config is not None
    card = get_card(config.task)
    configure_torch(config.threads)
    fitness = fitness_hook(config.fitness_steps)
    own_backend = backend is None
    try:
        if backend is None:  # a bad model or endpoint setting fails here, before a run directory exists
            backend = make_backend(backend_settings(config, store_path))
        model = identity(backend)
        if rundir is None:
            rundir = _create_run(config, sources, store_path, card, model)
        else:
            rundir.append({"type": "run_resumed", "model_identity": model})
        if on_start is not None:
            on_start(config, rundir)
        with contextlib.ExitStack() as stack:
            if vet is None:
                vet = stack.enter_context(default_vetter(config.threads, store_path))
                _ensure_states(vet, card, progress)
            loop = GenerateLoop(config, card, backend, vet, rundir,
                                cache=ResponseCache(store_path / "cache" / "llm"), fitness=fitness, progress=progress,
                                states=real_states(card.name, store_path))
            try:
                result = loop.run()
            except InfrastructureError as err:
                rundir.append({"type": "run_aborted", "reason": str(err), **loop.llm.stats.to_json()})
                raise
    finally:
        if own_backend and backend is not None:
            backend.close()
    summary: dict[str, Any] = {
        "run_id": rundir.run_id, "run_dir": str(rundir.path), "task": card.name,
        "backend": getattr(backend, "name", config.resolved_backend),
        "generator": config.generator,
        "model": backend.model, "mode": config.resolved_mode, "candidates": len(result.candidates),
        "accepted": result.accepted, "selected": result.selected,
        "selected_score": next((c.score for c in result.candidates if c.cid == result.selected), None),
        **result.stats.to_json(), "wall_s": round(result.wall_s, 3),
        "first_accepted_s": None if result.first_accepted_s is None else round(result.first_accepted_s, 3),
        "stopped": result.stopped, "resumed": bool(resume),
    }
    summary["calls_per_accepted"] = round(summary["llm_calls"] / result.accepted, 3) if result.accepted else None
    rundir.write_json("summary.json", summary)
    rundir.append({"type": "run_finished", **{k: summary[k] for k in ("accepted", "selected", "llm_calls", "tokens")}})
    return summary
