"""rdpt_lab/stages.py: a stage runs once, is skipped when its output exists unless redone, and
its time, result and the versions that computed it land in the manifest."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata

from rdpt_lab.stages import StageRunner


def _runner(tmp_path, calls: list[str]) -> tuple[StageRunner, Callable[[], None]]:
    runner = StageRunner(tmp_path / "manifest.json", "t", log=lambda _m: None)
    done = tmp_path / "out.txt"

    def run_stage() -> None:
        def work() -> dict:
            calls.append("ran")
            done.write_text("x")
            return {"n": len(calls)}

        runner.stage("make", done, work)

    return runner, run_stage


def test_a_stage_runs_once_and_records_time_result_and_versions(tmp_path):
    calls: list[str] = []
    runner, run_stage = _runner(tmp_path, calls)
    run_stage()
    run_stage()
    assert calls == ["ran"] and runner.ran == ["make"] and runner.skipped == ["make"]
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["stages"]["make"] == {"n": 1} and saved["stage_seconds"]["make"] >= 0
    assert saved["stage_versions"]["make"]["torch"] == metadata.version("torch")
    assert saved["stage_versions"]["make"]["peft"] == metadata.version("peft")


def test_redo_runs_a_finished_stage_again_and_a_new_runner_keeps_the_manifest(tmp_path):
    calls: list[str] = []
    _, run_stage = _runner(tmp_path, calls)
    run_stage()
    again, run_again = _runner(tmp_path, calls)
    again.redo = {"make"}
    run_again()
    assert calls == ["ran", "ran"]
    assert json.loads((tmp_path / "manifest.json").read_text())["stages"]["make"] == {"n": 2}
