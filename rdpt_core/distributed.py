"""Scoring on Ray Data: the local engine's work, spread over an actor pool (docs/scale.md).

Per role, one model at a time, as the local engine does:

1. on the driver, :func:`rdpt_core.scoring.plan_role` looks every record up in the token cache
   (tokenizer only, no model) and puts the missing ones in length-sorted groups; records already
   cached are never dispatched, so a killed run resumes where it stopped;
2. the groups become a Ray Dataset, one row per group, and ``map_batches`` hands each row to an
   actor of a pool; every actor loads the model once and scores its groups with the backend's
   own batches (:meth:`ScoringBackend.score_batches`), so it runs the very forward passes the
   local engine runs and produces the same numbers;
3. the driver streams the results into the token cache as they arrive, and keeps them.

The corpus is then assembled from the scores the plan found cached and those the actors sent
(:func:`rdpt_core.scoring.assemble_corpus`, as the local engine does): the cache is read once.
``ray`` is imported only here, and only when this engine runs.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backends import ScoringBackend, TokenScores, create_backend
from .cache import TokenCache
from .models import ModelSpec
from .records import Record
from .scoring import (
    GROUP_CHARS, ProgressFactory, RolePlan, ScoredCorpus, ScoringReport, assemble_corpus, build_backends, check_job,
    job_roles, no_progress, plan_role,
)


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide. ``address``: a running cluster (``ray://…`` or ``host:port``); None
    uses ``RAY_ADDRESS`` if set, else starts a local cluster for this run. ``actors`` model
    replicas per role, each with ``cpus_per_actor`` CPU threads and ``gpus_per_actor`` GPUs."""

    address: str | None = None
    actors: int = 2
    cpus_per_actor: int = 1
    gpus_per_actor: float = 0.0

    def __post_init__(self) -> None:
        if self.actors < 1 or self.cpus_per_actor < 1 or self.gpus_per_actor < 0:
            raise ValueError("actors and cpus_per_actor must be at least 1, gpus_per_actor at least 0")


def pack_scores(scores: TokenScores) -> bytes:
    """One record's token scores as bytes (an uncompressed ``.npz``): exact, and one Arrow
    binary value whatever the response's length."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = scores.to_arrays()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def unpack_scores(data: bytes) -> TokenScores:
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return TokenScores.from_arrays(arrays)


class GroupScorer:
    """A Ray actor: one model, loaded on the first group and kept until the pool ends."""

    def __init__(self, spec: dict[str, Any], threads: int, batch_tokens: int | None) -> None:
        import torch

        torch.set_num_threads(threads)
        self.backend: ScoringBackend = create_backend(ModelSpec(**spec))
        self.batch_tokens = batch_tokens

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids: list[str] = []
        payloads: list[bytes] = []
        for record_ids, contexts, responses in zip(batch["record_ids"], batch["contexts"], batch["responses"]):
            pairs = list(zip((str(c) for c in contexts), (str(r) for r in responses)))
            by_index: dict[int, TokenScores] = {}
            for done in self.backend.score_batches(pairs, self.batch_tokens):
                by_index.update(done)
            ids.extend(str(record_ids[i]) for i in range(len(pairs)))
            payloads.extend(pack_scores(by_index[i]) for i in range(len(pairs)))
        return {"record_id": np.array(ids, dtype=object), "payload": np.array(payloads, dtype=object),
                "fingerprint": np.array([self.backend.fingerprint] * len(ids), dtype=object)}


def _connect(settings: RaySettings) -> bool:
    """Join the cluster (or start a local one); True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=settings.address, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    from ray.data import DataContext

    import logging

    logging.getLogger("ray").setLevel(logging.WARNING)  # no per-dataset INFO lines amid the run's bar
    context = DataContext.get_current()
    context.enable_progress_bars = False  # the run's own bar (per role, in records) is enough
    context.print_on_execution_start = False
    return True


def _score_role_on_ray(backend: ScoringBackend, plan: RolePlan, cache: TokenCache, role: str,
                       settings: RaySettings, batch_tokens: int | None,
                       progress: ProgressFactory) -> dict[str, TokenScores]:
    """Score ``plan``'s groups on the actors; each result goes to the cache as it arrives and
    is returned too (by record id), so the driver never reads it back."""
    import ray

    rows = [{"record_ids": [r.record_id for r, _, _ in group], "contexts": [c for _, c, _ in group],
             "responses": [r.response for r, _, _ in group]} for group in plan.groups]
    keys = {r.record_id: key for group in plan.groups for r, _, key in group}
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    scored = dataset.map_batches(
        GroupScorer, batch_size=1, concurrency=settings.actors, num_cpus=settings.cpus_per_actor,
        num_gpus=settings.gpus_per_actor or None,
        fn_constructor_kwargs={"spec": backend.spec.to_dict(), "threads": settings.cpus_per_actor,
                               "batch_tokens": batch_tokens},
    )
    bar = progress(f"{role}: {backend.spec.label} (ray, {settings.actors} actors)", len(keys))
    fresh: dict[str, TokenScores] = {}
    try:
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            for record_id, payload, worker_fingerprint in zip(batch["record_id"], batch["payload"], batch["fingerprint"]):
                if worker_fingerprint != backend.fingerprint:
                    raise RuntimeError(
                        f"{role} ({backend.spec.label}): a Ray worker sees other model files or settings than the "
                        f"driver (fingerprint {worker_fingerprint} vs {backend.fingerprint}); give every node the "
                        "same model directory, or a hub id")
                scores = unpack_scores(payload)
                try:
                    cache.put(keys[str(record_id)], scores)
                except ValueError as err:
                    raise ValueError(f"{role} ({backend.spec.label}), record {str(record_id)!r}: {err}") from err
                fresh[str(record_id)] = scores
                bar.update(1)
    finally:
        bar.close()
    return fresh


def score_corpus_ray(
    records: Sequence[Record], specs: Mapping[str, ModelSpec], settings: RaySettings = RaySettings(), *,
    extra_markers: Sequence[str] = (), cache: TokenCache | None = None, progress: ProgressFactory = no_progress,
    batch_tokens: int | None = None, group_chars: int = GROUP_CHARS,
) -> tuple[ScoredCorpus, ScoringReport]:
    """:func:`rdpt_core.scoring.score_corpus` on Ray: the same corpus and report (``fresh``:
    records scored by the actors; ``model_loads``: actors started per role)."""
    import ray

    check_job(records, specs)
    cache = cache if cache is not None else TokenCache()
    backends = build_backends(specs, cache)  # tokenizers at most: the driver never loads a model
    started = _connect(settings)
    fresh: dict[str, int] = {}
    loads: dict[str, int] = {}
    tokens: dict[str, dict[str, TokenScores]] = {}
    try:
        for role in job_roles(specs):
            plan = plan_role(backends[role], records, cache, group_chars)
            fresh[role] = sum(len(group) for group in plan.groups)
            loads[role] = min(settings.actors, len(plan.groups))
            scored = _score_role_on_ray(backends[role], plan, cache, role, settings, batch_tokens, progress) \
                if plan.groups else {}
            found = {**plan.cached, **scored}
            tokens[role] = {r.record_id: found[r.record_id] for r in records}
    finally:
        if started:
            ray.shutdown()
    corpus = assemble_corpus(records, tokens, backends, extra_markers)
    return corpus, ScoringReport(fresh, {role: len(records) - n for role, n in fresh.items()}, loads)
