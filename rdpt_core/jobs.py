"""A scoring job in a background thread: progress (records, tokens/s, time left), cancel, resume.

The job is :func:`~rdpt_core.scoring.score_corpus` run in a thread. Every scored record lands in
the token cache at once, so a cancelled or interrupted job loses nothing, and starting the same
job again repeats nothing (the done records come from the cache).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .backends import ScoringBackend
from .backends.base import TokenScores
from .cache import TokenCache
from .models import ModelSpec
from .records import Record
from .scoring import ScoredCorpus, ScoringCancelled, ScoringReport, job_roles, score_corpus


@dataclass
class JobProgress:
    """A snapshot of a job, safe to read from another thread."""

    state: str = "pending"  # pending | running | done | cancelled | failed
    role: str = ""
    roles: tuple[str, ...] = ()
    records_done: int = 0  # summed over roles
    records_total: int = 0
    fresh: int = 0
    tokens_scored: int = 0  # tokens scored fresh (cache hits cost nothing)
    started: float = 0.0
    finished: float = 0.0
    error: str = ""
    per_role: dict[str, int] = field(default_factory=dict)

    @property
    def elapsed(self) -> float:
        end = self.finished or time.monotonic()
        return end - self.started if self.started else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_scored / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def records_per_second(self) -> float:
        return self.records_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def seconds_left(self) -> float:
        rate = self.records_per_second
        return (self.records_total - self.records_done) / rate if rate > 0 else float("nan")


class ScoringJob:
    """Score ``records`` under ``specs`` in a daemon thread; poll :attr:`progress`."""

    def __init__(self, records: Sequence[Record], specs: Mapping[str, ModelSpec], *,
                 cache: TokenCache | None = None, backends: Mapping[str, ScoringBackend] | None = None) -> None:
        self.records = list(records)
        self.specs = dict(specs)
        self.cache = cache
        self.backends = backends
        roles = tuple(job_roles(self.specs))
        self.progress = JobProgress(roles=roles, records_total=len(self.records) * len(roles))
        self.result: tuple[ScoredCorpus, ScoringReport] | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rdpt-scoring")

    def start(self) -> ScoringJob:
        self.progress.state, self.progress.started = "running", time.monotonic()
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _on_record(self, role: str, scores: TokenScores, fresh: bool) -> None:
        with self._lock:
            p = self.progress
            p.role = role
            p.records_done += 1
            p.per_role[role] = p.per_role.get(role, 0) + 1
            if fresh:
                p.fresh += 1
                p.tokens_scored += scores.n_tokens

    def _run(self) -> None:
        try:
            self.result = score_corpus(self.records, self.specs, cache=self.cache, backends=self.backends,
                                       should_stop=self._cancel.is_set, on_record=self._on_record)
            self.progress.state = "done"
        except ScoringCancelled:
            self.progress.state = "cancelled"
        except Exception as err:  # reported to the page, which shows it
            self.progress.state, self.progress.error = "failed", f"{type(err).__name__}: {err}"
        finally:
            self.progress.finished = time.monotonic()
