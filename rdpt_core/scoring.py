"""From records to the action table (docs/method.md §3–§6, §14).

records → segment (one segmentation for all models) → per model, one at a time: token scores
(from the cache, or one teacher-forced pass) → tokens mapped to actions → per-action sums.

Token → action rule (the only place it lives): a token belongs to the action holding most of
its characters (tie: the earlier action); a zero-width token goes with the action of the next
token; a token that straddles the context/response boundary belongs to the first action and
is flagged. Action probability is the geometric mean ``exp(mean(logp))`` of its tokens; an
action without a scored token gets NaN.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from .backends import ScoringBackend, TokenScores, create_backend
from .batching import plan_groups
from .cache import TokenCache, cache_key
from .models import ModelSpec
from .provenance import NAMED_TEACHER, add_best_teacher
from .records import Record
from .segment import Action, marker_set, segment

ROLES = ("teacher", "student", "distilled")
# Several named teachers (docs/method.md §18) take roles "teacher_<name>" instead of "teacher".
_TEACHER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


def teacher_role(name: str) -> str:
    """The role of the teacher called ``name`` in a several-teacher job."""
    if not _TEACHER_NAME.fullmatch(name):
        raise ValueError(f"teacher name {name!r}: use 1-32 letters, digits, '_' or '-', starting with a letter "
                         "or digit")
    return NAMED_TEACHER + name


def job_roles(roles: Iterable[str]) -> list[str]:
    """``roles`` in scoring and column order: named teachers as given, then teacher, student,
    distilled. Refuses unknown roles, a single named teacher, and named teachers mixed with an
    unnamed one."""
    roles = list(roles)
    named = [r for r in roles if r.startswith(NAMED_TEACHER)]
    for role in named:
        teacher_role(role[len(NAMED_TEACHER):])
    unknown = sorted(set(roles) - set(ROLES) - set(named))
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; roles are {', '.join(ROLES)} or teacher_<name>")
    if len(named) == 1 or (named and "teacher" in roles):
        raise ValueError("name teachers only when there are two or more, and then name every teacher "
                         f"(got {', '.join(named + [r for r in roles if r == 'teacher'])})")
    return role_order(roles)


def role_order(roles: Iterable[str]) -> list[str]:
    """Named teachers as given, then teacher, student, distilled, then any other role as given
    (no checks: for display)."""
    roles = list(dict.fromkeys(roles))
    named = [r for r in roles if r.startswith(NAMED_TEACHER)]
    return named + [r for r in ROLES if r in roles] + [r for r in roles if r not in ROLES and r not in named]
BASE_COLUMNS = [
    "record_id", "question_id", "action_index", "start", "end", "text", "kind", "correct",
    "source", "n_chars",
]


def role_columns(role: str) -> list[str]:
    return [f"n_tokens_{role}", f"sum_logp_{role}", f"p_{role}", f"truncated_{role}", f"straddle_{role}"]


class ProgressBar(Protocol):
    def update(self, n: int = 1) -> object: ...
    def close(self) -> object: ...


ProgressFactory = Callable[[str, int], ProgressBar]  # (description, total) -> bar


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def no_progress(desc: str, total: int) -> ProgressBar:
    return _NoProgress()


# ---- token → action ---------------------------------------------------------------------------
def assign_tokens(offsets: np.ndarray, bounds: np.ndarray, straddle: np.ndarray | None = None) -> np.ndarray:
    """Action index of every token.

    ``offsets``: int ``[n, 2]`` token spans in the response; ``bounds``: int ``[m + 1]`` action
    starts followed by the response length (actions tile the response).
    """
    n, m = len(offsets), len(bounds) - 1
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if m <= 0:
        raise ValueError("cannot assign tokens to a response without actions")
    starts, ends = bounds[:-1], bounds[1:]
    s = np.clip(offsets[:, 0], 0, bounds[-1])
    e = np.clip(offsets[:, 1], 0, bounds[-1])
    first = np.minimum(np.searchsorted(ends, s, side="right"), m - 1)  # action holding char s
    last = np.minimum(np.searchsorted(ends, np.maximum(e - 1, s), side="right"), m - 1)
    owner = first.copy()
    for i in np.flatnonzero(last > first):  # rare: a token spanning actions
        ks = np.arange(first[i], last[i] + 1)
        overlap = np.minimum(e[i], ends[ks]) - np.maximum(s[i], starts[ks])
        owner[i] = ks[int(np.argmax(overlap))]  # argmax takes the first maximum: earlier wins
    zero_width = e <= s
    for i in np.flatnonzero(zero_width)[::-1]:  # backwards, so runs of them follow the next token
        if i + 1 < n:
            owner[i] = owner[i + 1]
    if straddle is not None:
        owner[np.asarray(straddle, dtype=bool)] = 0
    return owner


@dataclass(frozen=True)
class ActionScores:
    """Per-action sums for one role: arrays of length ``m`` (number of actions)."""

    n_tokens: np.ndarray
    sum_logp: np.ndarray
    truncated: np.ndarray
    straddle: np.ndarray

    @property
    def p(self) -> np.ndarray:
        """Geometric mean of the token probabilities; NaN for an action without tokens."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_tokens > 0, np.exp(self.sum_logp / np.maximum(self.n_tokens, 1)), np.nan)


def action_scores(tokens: TokenScores, actions: Sequence[Action]) -> ActionScores:
    m = len(actions)
    bounds = np.array([a.start for a in actions] + [actions[-1].end if actions else 0], dtype=np.int64)
    owner = assign_tokens(tokens.offsets, bounds, tokens.straddle)
    scored = np.isfinite(tokens.logprobs)  # the very first token of a sequence has no logp
    return ActionScores(
        n_tokens=np.bincount(owner[scored], minlength=m).astype(np.int64),
        sum_logp=np.bincount(owner[scored], weights=tokens.logprobs[scored], minlength=m),
        truncated=np.bincount(owner, weights=tokens.truncated, minlength=m) > 0,
        straddle=np.bincount(owner, weights=tokens.straddle, minlength=m) > 0,
    )


# ---- the job ----------------------------------------------------------------------------------
@dataclass
class ScoringReport:
    """What a job did: per role, how many records were scored fresh vs served by the cache."""

    fresh: dict[str, int]
    cached: dict[str, int]
    model_loads: dict[str, int]


def build_backends(specs: Mapping[str, ModelSpec], cache: TokenCache | None = None) -> dict[str, ScoringBackend]:
    """One backend per distinct spec (two roles with the same model share it). With ``cache``,
    a backend whose profile it holds opens without loading its tokenizer."""
    by_spec: dict[ModelSpec, ScoringBackend] = {}
    for spec in specs.values():
        if spec not in by_spec:
            by_spec[spec] = create_backend(spec, cache)
    return {role: by_spec[spec] for role, spec in specs.items()}


class ScoringCancelled(RuntimeError):
    """Raised when ``should_stop`` says so; every record scored so far is in the cache."""


RecordCallback = Callable[[str, TokenScores, bool], None]  # (role, token scores, fresh?)


GROUP_CHARS = 32_000  # characters (context + response) per group of records: ~8k tokens


def score_role(
    backend: ScoringBackend, records: Sequence[Record], cache: TokenCache, role: str,
    progress: ProgressFactory = no_progress, should_stop: Callable[[], bool] | None = None,
    on_record: RecordCallback | None = None, batch_tokens: int | None = None,
    group_chars: int = GROUP_CHARS,
) -> tuple[dict[str, TokenScores], int]:
    """Token scores of every record under one model, with a progress bar; returns them and how
    many were fresh. Records the cache holds are served first; the rest are scored in the
    groups of :func:`plan_role` (each in the backend's batches of ``batch_tokens``), and each
    finished batch goes to the cache at once, so a cancelled (``should_stop``, checked between
    batches) or killed job resumes from there. The model is freed at the end: one model in
    memory at a time."""
    bar = progress(f"{role}: {backend.spec.label}", len(records))
    # The pass owns the model from its first record to the unload that ends it: another job on
    # the same (shared) backend waits here instead of loading a second copy or freeing this one.
    with backend.lock:
        try:
            plan = plan_role(backend, records, cache, group_chars)
            found: dict[str, TokenScores] = {}
            for rid, scores in plan.cached.items():
                found[rid] = scores
                bar.update(1)
                if on_record is not None:
                    on_record(role, scores, False)
            for group in plan.groups:
                for record, scores in score_group(backend, group, cache, role, batch_tokens, should_stop):
                    found[record.record_id] = scores
                    bar.update(1)
                    if on_record is not None:
                        on_record(role, scores, True)
        finally:
            bar.close()
            backend.unload()
    return {r.record_id: found[r.record_id] for r in records}, len(records) - len(plan.cached)


@dataclass(frozen=True)
class RolePlan:
    """A role's work: the scores the cache already holds (by record id) and the other records
    in groups, each group a list of ``(record, rendered context, cache key)``."""

    cached: dict[str, TokenScores]
    groups: list[list[tuple[Record, str, str]]]


def plan_role(backend: ScoringBackend, records: Sequence[Record], cache: TokenCache,
              group_chars: int = GROUP_CHARS) -> RolePlan:
    """Look every record up in the cache (no model needed) and put the missing ones in
    length-sorted groups (:func:`rdpt_core.batching.plan_groups`). The local and the Ray engine
    both score these groups, so they run the same batches."""
    cached: dict[str, TokenScores] = {}
    missing: list[tuple[Record, str, str]] = []
    for record in records:
        context = backend.render_context(record.prompt)
        key = cache_key(backend.fingerprint, context, record.response)
        scores = cache.get(key)
        if scores is None:
            missing.append((record, context, key))
        else:
            cached[record.record_id] = scores
    sizes = [len(context) + len(record.response) for record, context, _ in missing]
    return RolePlan(cached, [[missing[i] for i in group] for group in plan_groups(sizes, group_chars)])


def score_group(
    backend: ScoringBackend, group: Sequence[tuple[Record, str, str]], cache: TokenCache, role: str,
    batch_tokens: int | None = None, should_stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[Record, TokenScores]]:
    """Score one group, putting each finished record in the cache as its batch completes."""
    batches = backend.score_batches([(context, record.response) for record, context, _ in group], batch_tokens)
    while True:
        if should_stop is not None and should_stop():
            raise ScoringCancelled(f"cancelled during {role}")
        done = next(batches, None)
        if done is None:
            return
        for index, scores in done:
            record, _, key = group[index]
            try:  # the cache refuses impossible numbers (NaN, > 0): say whose they are
                cache.put(key, scores)
            except ValueError as err:
                raise ValueError(f"{role} ({backend.spec.label}), record {record.record_id!r}: {err}") from err
            yield record, scores


@dataclass
class ScoredCorpus:
    """Records with their token-level scores per role: everything the action table (for any
    segmenter) is derived from, cheaply. ``markers`` are the special markers of the job.

    ``models`` holds each role's label (for people); ``fingerprints`` each role's backend
    fingerprint, the identity of the numbers (weights, dtype, quantization, template, window…:
    :func:`rdpt_core.models.fingerprint`). A label stays the same when only a setting changes,
    so two corpora are *scored alike*, and may be merged, only when every role has the same
    label and the same fingerprint. A role whose fingerprint is unknown (a corpus saved before
    fingerprints were kept) matches only another unknown one: mixing it with known scores could
    put chat- and raw-template numbers in one table, so such corpora are kept apart."""

    records: list[Record]
    tokens: dict[str, dict[str, TokenScores]]  # role -> record_id -> token scores
    markers: tuple[str, ...]
    models: dict[str, str]  # role -> model label
    fingerprints: dict[str, str] = field(default_factory=dict)  # role -> backend fingerprint

    def actions(self, segmenter: str = "paper") -> pd.DataFrame:
        segments = {r.record_id: segment(r.response, self.markers, segmenter) for r in self.records}
        per_role = {
            role: {rid: action_scores(by_record[rid], segments[rid]) for rid in by_record if segments[rid]}
            for role, by_record in self.tokens.items()
        }
        table = action_table(self.records, segments, per_role)
        # kept by Parquet
        table.attrs.update(models=dict(self.models), fingerprints=dict(self.fingerprints), segmenter=segmenter)
        return table

    def scoring_differences(self, other: ScoredCorpus) -> list[str]:
        """Why ``other`` was not scored like this corpus (empty: scored alike)."""
        if self.models != other.models:
            return [f"models {self.models} vs {other.models}"]
        return [
            f"{role} ({label}): settings {self.fingerprints.get(role, 'unknown')} vs "
            f"{other.fingerprints.get(role, 'unknown')}"
            for role, label in self.models.items()
            if self.fingerprints.get(role) != other.fingerprints.get(role)
        ]

    def scored_alike(self, other: ScoredCorpus) -> bool:
        return not self.scoring_differences(other)

    def merged(self, other: ScoredCorpus) -> ScoredCorpus:
        """This corpus plus ``other`` (scored alike, see the class); records of ``other``
        replace same ids. Corpora scored differently raise ValueError naming the roles."""
        differences = self.scoring_differences(other)
        if differences:
            raise ValueError("cannot merge corpora scored by different models or settings: " + "; ".join(differences))
        new_ids = {r.record_id for r in other.records}
        records = [r for r in self.records if r.record_id not in new_ids] + list(other.records)
        tokens = {role: {**self.tokens.get(role, {}), **other.tokens.get(role, {})} for role in self.models}
        return ScoredCorpus(records, tokens, marker_set([*self.markers, *other.markers]), dict(self.models),
                            dict(self.fingerprints))


def check_job(records: Sequence[Record], specs: Mapping[str, ModelSpec]) -> None:
    """Known roles and unique record ids, before any work starts."""
    job_roles(specs)
    ids = [r.record_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("record_id values must be unique within one job")


def score_corpus(
    records: Sequence[Record],
    specs: Mapping[str, ModelSpec],
    *,
    extra_markers: Sequence[str] = (),
    cache: TokenCache | None = None,
    progress: ProgressFactory = no_progress,
    backends: Mapping[str, ScoringBackend] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_record: RecordCallback | None = None,
    batch_tokens: int | None = None,
    group_chars: int = GROUP_CHARS,
) -> tuple[ScoredCorpus, ScoringReport]:
    """Token scores of ``records`` under every role in ``specs``.

    Models are loaded one at a time (lazily, only on a cache miss) and freed before the next.
    The markers are the reasoning markers, every tokenizer's special tokens and
    ``extra_markers``, so one segmentation serves all models. ``batch_tokens`` bounds a forward
    batch's padded tokens (None: each backend's default for its device).
    """
    check_job(records, specs)
    cache = cache if cache is not None else TokenCache()
    backends = dict(backends) if backends is not None else build_backends(specs, cache)
    tokens: dict[str, dict[str, TokenScores]] = {}
    report = ScoringReport({}, {}, {})
    for role in job_roles(specs):
        backend = backends[role]
        loads_before = backend.load_count
        # A role sharing this model later finds its scores in the cache: no second load.
        tokens[role], fresh = score_role(backend, records, cache, role, progress, should_stop, on_record,
                                         batch_tokens, group_chars)
        report.fresh[role] = fresh
        report.cached[role] = len(records) - fresh
        report.model_loads[role] = backend.load_count - loads_before
    return assemble_corpus(records, tokens, backends, extra_markers), report


def assemble_corpus(records: Sequence[Record], tokens: dict[str, dict[str, TokenScores]],
                    backends: Mapping[str, ScoringBackend], extra_markers: Sequence[str] = ()) -> ScoredCorpus:
    """The corpus of ``records`` and their token scores per role (in job order): markers from
    the reasoning markers, every tokenizer's special tokens and ``extra_markers``; each role's
    label and fingerprint from its backend."""
    special = [t for b in backends.values() for t in b.facts().special_tokens]
    return ScoredCorpus(list(records), tokens, marker_set([*special, *extra_markers]),
                        {role: backends[role].spec.label for role in tokens},
                        {role: backends[role].fingerprint for role in tokens})


def score_records(
    records: Sequence[Record],
    specs: Mapping[str, ModelSpec],
    *,
    segmenter: str = "paper",
    **kwargs,
) -> tuple[pd.DataFrame, ScoringReport]:
    """:func:`score_corpus`, then the action table of ``segmenter``."""
    corpus, report = score_corpus(records, specs, **kwargs)
    return corpus.actions(segmenter), report


def action_table(
    records: Sequence[Record], actions: Mapping[str, list[Action]],
    per_role: Mapping[str, Mapping[str, ActionScores]],
) -> pd.DataFrame:
    """Assemble the action table of docs/method.md §14: one row per action, per-role columns, ``cum_tokens``."""
    frames = []
    for record in records:
        acts = actions[record.record_id]
        if not acts:
            continue
        frame = {
            "record_id": record.record_id,
            "question_id": record.question_id,
            "action_index": np.arange(len(acts), dtype=np.int64),
            "start": np.array([a.start for a in acts], dtype=np.int64),
            "end": np.array([a.end for a in acts], dtype=np.int64),
            "text": [a.text for a in acts],
            "kind": [a.kind for a in acts],
            "correct": record.correct,
            "source": record.source,
            "n_chars": np.array([a.end - a.start for a in acts], dtype=np.int64),
        }
        for role in job_roles(per_role):  # fixed column order
            s = per_role[role][record.record_id]
            frame.update(dict(zip(role_columns(role), (s.n_tokens, s.sum_logp, s.p, s.truncated, s.straddle))))
        cum_role = "distilled" if "distilled" in per_role else "student" if "student" in per_role else None
        if cum_role:
            frame["cum_tokens"] = np.cumsum(per_role[cum_role][record.record_id].n_tokens)
        frames.append(pd.DataFrame(frame))
    if not frames:
        cols = BASE_COLUMNS + [c for role in per_role for c in role_columns(role)] + ["cum_tokens"]
        return pd.DataFrame(columns=cols)
    table = pd.concat(frames, ignore_index=True)
    table["correct"] = table["correct"].astype("boolean")
    return add_best_teacher(table)
