import threading
import time

import pytest

from test_scoring import CountingBackend

from rdpt_core.cache import TokenCache
from rdpt_core.jobs import ScoringJob
from rdpt_core.records import Record


class GatedBackend(CountingBackend):
    """Scores one record each time the test opens the gate."""

    def __init__(self, label, gate):
        super().__init__(label)
        self.gate = gate

    def score(self, context, response):
        assert self.gate.acquire(timeout=10)
        return super().score(context, response)


def test_job_reports_progress_cancels_and_resumes_from_the_cache(tmp_path):
    recs = [Record(f"r{i}", "q", "P", f"Answer {i}. Done.") for i in range(4)]
    gate = threading.Semaphore(0)
    t, s = GatedBackend("t", gate), GatedBackend("s", gate)
    backends = {"teacher": t, "student": s}
    specs = {role: b.spec for role, b in backends.items()}
    job = ScoringJob(recs, specs, cache=TokenCache(tmp_path), backends=backends).start()
    gate.release(2)  # let two teacher records through, then cancel
    deadline = time.monotonic() + 10
    while job.progress.records_done < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    gate.release(1)  # the record in flight finishes; the job stops before the next
    assert job.wait(10)
    p = job.progress
    assert p.state == "cancelled" and job.result is None
    assert p.records_total == 8 and p.records_done == 3 and p.fresh == 3
    assert p.tokens_scored == sum(len(r.response) for r in recs[:3])  # one token per char here
    assert p.tokens_per_second > 0

    # resume: the three done records come from the cache, only the rest is scored
    t.load_count = s.load_count = 0
    gate.release(5)
    again = ScoringJob(recs, specs, cache=TokenCache(tmp_path), backends=backends).start()
    assert again.wait(10) and again.progress.state == "done"
    corpus, report = again.result
    assert report.fresh == {"teacher": 1, "student": 4} and report.cached == {"teacher": 3, "student": 0}
    assert t.load_count == 1 and s.load_count == 4
    assert again.progress.per_role == {"teacher": 4, "student": 4}
    assert len(corpus.actions()) == 8


def test_a_failing_job_reports_its_error(tmp_path):
    class Broken(CountingBackend):
        def score(self, context, response):
            raise RuntimeError("out of memory")

    b = Broken("t")
    job = ScoringJob([Record("a", "q", "P", "x")], {"teacher": b.spec}, cache=TokenCache(tmp_path),
                     backends={"teacher": b}).start()
    assert job.wait(10)
    assert job.progress.state == "failed" and "out of memory" in job.progress.error


@pytest.mark.slow
def test_two_jobs_on_one_real_model_at_once_equal_a_sequential_run(smollm2_spec, tmp_path):
    """Two sessions (or a background job and the explorer's *Score it*) share one cached backend:
    each job frees the model when its pass ends, and must not do so under the other's pass."""
    import numpy as np

    from rdpt_core.backends import create_backend
    from rdpt_core.scoring import score_corpus

    records = [Record(f"r{i}", f"q{i}", f"What is {i} + {i}?", f"{i} + {i} = {2 * i}. So the answer is {2 * i}. " * 4)
               for i in range(6)]
    specs = {"teacher": smollm2_spec}
    shared = create_backend(smollm2_spec)
    active, most = [0], [0]  # forward passes inside the model at once
    forward = shared._batch_log_probs

    def watched(*args, **kwargs):
        active[0] += 1
        most[0] = max(most[0], active[0])
        try:
            return forward(*args, **kwargs)
        finally:
            active[0] -= 1

    shared._batch_log_probs = watched
    jobs = [ScoringJob(part, specs, cache=TokenCache(tmp_path / name), backends={"teacher": shared})
            for name, part in (("a", records), ("b", records[::-1]))]
    for job in jobs:
        job.start()
    assert all(job.wait(600) for job in jobs)
    assert [job.progress.state for job in jobs] == ["done", "done"], [job.progress.error for job in jobs]
    sequential, _ = score_corpus(records, specs, cache=TokenCache(tmp_path / "seq"),
                                 backends={"teacher": create_backend(smollm2_spec)})
    for job in jobs:
        corpus, report = job.result
        assert report.fresh["teacher"] == len(records)  # each job really scored, from its own cache
        for rid, want in sequential.tokens["teacher"].items():
            got = corpus.tokens["teacher"][rid]
            np.testing.assert_array_equal(got.token_ids, want.token_ids)
            np.testing.assert_allclose(got.logprobs, want.logprobs, rtol=0, atol=1e-9)
    assert not shared.is_loaded  # freed once the last pass ended
    # one owner at a time: each job's pass loads the model once and no pass runs beside another
    assert most[0] == 1 and shared.load_count == 2
