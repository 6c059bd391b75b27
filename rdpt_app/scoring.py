"""Scoring from the app: the Models page's choices → specs → backends → the working corpus."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from rdpt_core.backends import ScoringBackend
from rdpt_core.jobs import ScoringJob
from rdpt_core.models import ModelSpec, resolve_spec
from rdpt_core.records import Record
from rdpt_core.scoring import job_roles, score_corpus, teacher_role

from .loaders import backend
from .state import default_choice, merge_into_corpus
from .widgets import StreamlitProgress

SPEC_FIELDS = ("dtype", "quantization", "device", "template", "raw_template", "trust_remote_code")


def model_roles() -> list[str]:
    """The roles the Models page describes, in job order: the named teachers (or the one
    teacher), the student, the distilled model."""
    names = st.session_state.teachers
    return [*([teacher_role(name) for name in names] if names else ["teacher"]), "student", "distilled"]


def choice_of(role: str) -> dict:
    """The Models page's settings for ``role`` (a new named teacher starts as the teacher)."""
    return st.session_state.choices.setdefault(role, default_choice(role))


def spec_for(role: str) -> ModelSpec | None:
    """The ModelSpec the Models page describes for ``role`` (None when the role is off).
    Raises ValueError / FileNotFoundError for a setting that cannot be used."""
    choice = choice_of(role)
    if not choice.get("enabled", True):
        return None
    return resolve_spec(choice["name"], **{k: choice[k] for k in SPEC_FIELDS})


def roles_available() -> list[str]:
    return [role for role in model_roles() if choice_of(role).get("enabled", True)]


def specs_and_backends() -> tuple[dict[str, ModelSpec], dict[str, ScoringBackend]]:
    specs = {role: spec for role in job_roles(model_roles()) if (spec := spec_for(role)) is not None}
    return specs, {role: backend(spec) for role, spec in specs.items()}


def score_into_corpus(records: Sequence[Record]) -> None:
    """Score ``records`` with the chosen models (a progress bar per model; the token cache on
    disk) and merge them into the working corpus."""
    specs, backends = specs_and_backends()
    corpus, _ = score_corpus(records, specs, backends=backends, progress=StreamlitProgress)
    merge_into_corpus(corpus)


def start_background_scoring(records: Sequence[Record]) -> ScoringJob:
    """Start a :class:`~rdpt_core.jobs.ScoringJob` for ``records`` with the chosen models."""
    specs, backends = specs_and_backends()
    return ScoringJob(list(records), specs, backends=backends).start()
