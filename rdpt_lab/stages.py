"""Resumable stages for the lab's long runs (the lineage, the selection experiment).

A stage is skipped when its output exists, so a killed run resumes where it stopped; each
stage's time and result go into a JSON manifest, written atomically after every stage.
"""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rdpt_core.atomic import atomic_path


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON at ``path``, atomically (a temporary name, then a rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def versions() -> dict[str, str]:
    """The versions of what computes the lab's numbers."""
    names = ["torch", "transformers", "peft", "tokenizers", "numpy", "pandas"]
    return {n: metadata.version(n) for n in names} | {"python": platform.python_version()}


class StageRunner:
    """Runs named stages once each. ``manifest``: ``stage_seconds``, ``stages`` (results) and
    ``stage_versions`` (:func:`versions` of the run that made it) by name, plus whatever a
    subclass adds; ``ran`` / ``skipped``: this object's
    calls, by name."""

    def __init__(self, manifest_path: Path, tag: str, log: Callable[[str], None] = print) -> None:
        self.manifest_path, self.tag, self.log = manifest_path, tag, log
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        self.manifest.setdefault("stage_seconds", {})
        self.manifest.setdefault("stages", {})
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.redo: set[str] = set()  # stages to run even when their outputs exist

    def save(self) -> None:
        write_json(self.manifest_path, self.manifest)

    def stage(self, name: str, done: Path, work: Callable[[], Any]) -> None:
        """Run ``work`` unless ``done`` exists (and the stage is not in :attr:`redo`); time it and
        keep its result (if not None)."""
        if done.exists() and name not in self.redo:
            self.skipped.append(name)
            self.log(f"[{self.tag}] {name}: done ({done.relative_to(self.manifest_path.parent)} exists)")
            return
        self.log(f"[{self.tag}] {name} ...")
        started = time.perf_counter()
        result = work()
        self.manifest["stage_seconds"][name] = round(time.perf_counter() - started, 1)
        self.manifest.setdefault("stage_versions", {})[name] = versions()
        if result is not None:
            self.manifest["stages"][name] = result
        self.save()
        self.ran.append(name)
        self.log(f"[{self.tag}] {name} done in {self.manifest['stage_seconds'][name]} s")
