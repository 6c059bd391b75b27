import threading
import time

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
