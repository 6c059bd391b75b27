"""The one interface every scoring backend implements.

A backend turns ``(context, response)`` into per-token log-probabilities of the *response*
tokens under one model, teacher-forced, with each token's character span in the response.
Backends are registered by name (see ``rdpt_core.backends``); adding vLLM or llama.cpp is one
new module with one class.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..models import ModelSpec


@dataclass(frozen=True)
class TokenScores:
    """Teacher-forced scores of the response tokens of one ``(context, response)`` pair.

    All arrays have length ``n`` = number of response tokens, in sequence order.

    * ``token_ids``  int64 ``[n]``   – vocabulary ids.
    * ``offsets``    int64 ``[n, 2]`` – ``[start, end)`` character span in the *response*
      (clipped at 0 for a token that straddles the context/response boundary; ``start == end``
      for zero-width tokens).
    * ``logprobs``   float64 ``[n]``  – natural-log probability of each token given everything
      before it; NaN when nothing precedes the token (empty context, no BOS).
    * ``truncated``  bool ``[n]``     – scored with a cut left context (sliding window).
    * ``straddle``   bool ``[n]``     – the token begins inside the context.
    """

    token_ids: np.ndarray
    offsets: np.ndarray
    logprobs: np.ndarray
    truncated: np.ndarray
    straddle: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.token_ids)
        shapes = {
            "offsets": (self.offsets.shape, (n, 2)),
            "logprobs": (self.logprobs.shape, (n,)),
            "truncated": (self.truncated.shape, (n,)),
            "straddle": (self.straddle.shape, (n,)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"TokenScores.{name} has shape {got}, expected {want}")

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "token_ids": self.token_ids, "offsets": self.offsets, "logprobs": self.logprobs,
            "truncated": self.truncated, "straddle": self.straddle,
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> TokenScores:
        return cls(
            token_ids=np.asarray(arrays["token_ids"], dtype=np.int64),
            offsets=np.asarray(arrays["offsets"], dtype=np.int64).reshape(-1, 2),
            logprobs=np.asarray(arrays["logprobs"], dtype=np.float64),
            truncated=np.asarray(arrays["truncated"], dtype=bool),
            straddle=np.asarray(arrays["straddle"], dtype=bool),
        )


@dataclass(frozen=True)
class TokenizerFacts:
    """What the app shows about a tokenizer once it is loaded."""

    vocab_size: int
    bos_token: str | None
    adds_bos: bool
    has_chat_template: bool
    special_tokens: tuple[str, ...]
    context_window: int | None


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample responses. ``stop_regex``: a sequence stops once its text matches, and
    the text is cut at the end of the first match (e.g. after "The answer is 12.")."""

    n: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    seed: int = 0
    batch_size: int = 8
    stop_regex: str | None = None

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("n, max_new_tokens and batch_size must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")


@dataclass(frozen=True)
class Generated:
    """One sampled response: its text and whether the token limit cut it (it ended with neither
    an end-of-sequence token nor a ``stop_regex`` match)."""

    text: str
    truncated: bool


class ProfileStore(Protocol):
    """Where a backend keeps, per fingerprint, what it needs to open without loading its
    tokenizer (its *profile*: chat template, special tokens, …) between runs; the token cache
    is one (:class:`rdpt_core.cache.TokenCache`)."""

    def get_profile(self, fingerprint: str) -> dict[str, Any] | None: ...
    def put_profile(self, fingerprint: str, profile: dict[str, Any]) -> None: ...


class ScoringBackend(ABC):
    """Scores responses under one model. The tokenizer is light and loaded at once; the
    weights are loaded lazily on the first :meth:`score` and freed by :meth:`unload`, so a
    job whose scores are all cached never loads a model.

    One backend may be shared by several threads (app sessions, a background job). Whoever
    runs a pass over the weights — a scoring pass over many records, a generation — holds
    :attr:`lock` from the first call to the :meth:`unload` that ends it, so a pass never
    has the model loaded twice or freed under it; other passes wait their turn."""

    name: str = ""

    def __init__(self, spec: ModelSpec, profiles: ProfileStore | None = None) -> None:
        self.spec = spec
        self.load_count = 0  # times the weights were loaded; a fully cached job leaves it at 0
        self.lock = threading.RLock()  # the model's one owner at a time (re-entrant)

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """Stable id of the numbers this backend produces: the token cache's key part and a
        scored corpus's identity per role. It must change with every setting that changes a
        log-prob (weights and their revision, adapter, dtype, quantization, template mode and
        raw template, window) and with nothing else."""

    @abstractmethod
    def facts(self) -> TokenizerFacts: ...

    @abstractmethod
    def render_context(self, prompt: str) -> str:
        """The model's own rendering of the prompt (chat template or raw template)."""

    @abstractmethod
    def score(self, context: str, response: str) -> TokenScores:
        """Teacher-forced log-probs of ``response`` after ``context`` (loads the model)."""

    def score_batches(
        self, pairs: Sequence[tuple[str, str]], batch_tokens: int | None = None,
    ) -> Iterator[list[tuple[int, TokenScores]]]:
        """Score many ``(context, response)`` pairs, yielding after each forward batch the
        pairs it completed, as ``(index into pairs, scores)``; every pair is yielded exactly
        once. ``batch_tokens`` bounds the padded tokens of one batch (None: the backend's
        default for its device). This default scores one pair at a time; a backend that can
        batch overrides it, with numbers equal to :meth:`score`'s up to float rounding."""
        for index, (context, response) in enumerate(pairs):
            yield [(index, self.score(context, response))]

    @property
    @abstractmethod
    def is_loaded(self) -> bool: ...

    @abstractmethod
    def unload(self) -> None:
        """Free the weights (and GPU memory); the tokenizer stays."""

    def generate(
        self, contexts: Sequence[str], settings: SamplingSettings,
        on_batch: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[list[str]]:
        """``settings.n`` sampled responses per context (fewer if ``should_stop`` cancels).
        ``on_batch(done, total)`` reports progress in sequences. Optional for a backend."""
        return [[g.text for g in row] for row in self.generate_detailed(contexts, settings, on_batch, should_stop)]

    def generate_detailed(
        self, contexts: Sequence[str], settings: SamplingSettings,
        on_batch: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[list[Generated]]:
        """As :meth:`generate`, each response with whether the token limit cut it."""
        raise NotImplementedError(f"backend {self.name!r} cannot generate")
