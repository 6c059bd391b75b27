"""Scoring backends, chosen by name through one registry.

>>> backend = create_backend(spec)          # spec.backend == "hf" → HFBackend
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..models import ModelSpec
from .base import ProfileStore, ScoringBackend, TokenizerFacts, TokenScores

_REGISTRY: dict[str, type[ScoringBackend]] = {}
# Built-in backends live in their own modules and are imported on first use (torch is heavy).
_BUILTIN_MODULES = {"hf": ".hf"}


def register_backend(name: str) -> Callable[[type[ScoringBackend]], type[ScoringBackend]]:
    def add(cls: type[ScoringBackend]) -> type[ScoringBackend]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"backend {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def available_backends() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def create_backend(spec: ModelSpec, profiles: ProfileStore | None = None) -> ScoringBackend:
    """The backend ``spec`` names; ``profiles`` (e.g. the token cache) keeps what the backend
    needs to open without loading its tokenizer (see :class:`rdpt_core.backends.base.ProfileStore`)."""
    if spec.backend not in _REGISTRY and spec.backend in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[spec.backend], __name__)
    try:
        cls = _REGISTRY[spec.backend]
    except KeyError:
        raise ValueError(
            f"unknown backend {spec.backend!r}; available: {', '.join(available_backends())}"
        ) from None
    return cls(spec, profiles)


__all__ = [
    "ScoringBackend", "TokenScores", "TokenizerFacts", "create_backend", "register_backend",
    "available_backends",
]
