"""Token → action mapping and the action table; real-model checks against a plain forward pass."""

import math
import threading

import numpy as np
import pytest

from rdpt_core.backends.base import ScoringBackend, TokenScores
from rdpt_core.records import Record
from rdpt_core.scoring import ScoredCorpus, action_scores, action_table, assign_tokens, score_records
from rdpt_core.segment import segment


def bounds_of(*lengths):
    return np.cumsum([0, *lengths])


def test_majority_of_characters_wins():
    bounds = bounds_of(5, 5)  # actions [0,5) [5,10)
    offsets = np.array([[0, 3], [3, 6], [4, 9], [9, 10]])
    assert assign_tokens(offsets, bounds).tolist() == [0, 0, 1, 1]


def test_tie_goes_to_the_earlier_action():
    offsets = np.array([[3, 7]])  # 2 chars in each action
    assert assign_tokens(offsets, bounds_of(5, 5)).tolist() == [0]


def test_token_spanning_three_actions_goes_to_the_largest_share():
    offsets = np.array([[1, 9]])  # overlaps: a0 1 char, a1 2 chars, a2 5 chars
    assert assign_tokens(offsets, bounds_of(2, 2, 10)).tolist() == [2]


def test_zero_width_tokens_follow_the_next_token():
    offsets = np.array([[0, 2], [5, 5], [5, 5], [6, 9], [9, 9]])
    # the trailing zero-width token has no next token: it stays where its position is
    assert assign_tokens(offsets, bounds_of(3, 7)).tolist() == [0, 1, 1, 1, 1]
    # a zero-width token at an action's start that precedes a token of the previous action
    offsets = np.array([[3, 3], [2, 3]])
    assert assign_tokens(offsets, bounds_of(3, 7)).tolist() == [0, 0]


def test_straddling_token_goes_to_the_first_action():
    offsets = np.array([[0, 5], [5, 8]])  # clipped span of a token that began in the context
    straddle = np.array([True, False])
    assert assign_tokens(offsets, bounds_of(2, 6), straddle).tolist() == [0, 1]
    assert assign_tokens(offsets, bounds_of(2, 6)).tolist() == [1, 1]


def fake_scores(offsets, logprobs, truncated=None, straddle=None):
    n = len(offsets)
    return TokenScores(
        token_ids=np.arange(n), offsets=np.array(offsets).reshape(-1, 2), logprobs=np.array(logprobs, float),
        truncated=np.zeros(n, bool) if truncated is None else np.array(truncated),
        straddle=np.zeros(n, bool) if straddle is None else np.array(straddle),
    )


def test_action_probability_is_the_geometric_mean_and_empty_actions_are_nan():
    actions = segment("Ab. Cd. Ef.", markers=[])  # [0,3) [3,7) [7,11)
    tokens = fake_scores([[0, 3], [3, 5], [5, 7]], [math.log(0.5), math.log(0.2), math.log(0.8)],
                         truncated=[False, False, True])
    s = action_scores(tokens, actions)
    assert s.n_tokens.tolist() == [1, 2, 0]
    assert s.p[0] == pytest.approx(0.5)
    assert s.p[1] == pytest.approx(math.sqrt(0.2 * 0.8))
    assert math.isnan(s.p[2])
    assert s.truncated.tolist() == [False, True, False]


def test_first_token_without_context_is_not_counted():
    actions = segment("Hi. Yo.", markers=[])
    tokens = fake_scores([[0, 3], [3, 7]], [np.nan, math.log(0.25)])
    s = action_scores(tokens, actions)
    assert s.n_tokens.tolist() == [0, 1] and math.isnan(s.p[0]) and s.p[1] == pytest.approx(0.25)


def test_action_table_columns_and_cumulative_tokens():
    rec = Record("r1", "q1", "P", "Ab. Cd.", correct=True, source="D")
    acts = {"r1": segment(rec.response, markers=[])}
    tok = fake_scores([[0, 1], [1, 3], [3, 7]], np.log([0.5, 0.5, 0.5]))
    per_role = {role: {"r1": action_scores(tok, acts["r1"])} for role in ("teacher", "student", "distilled")}
    table = action_table([rec], acts, per_role)
    for col in ["record_id", "question_id", "action_index", "start", "end", "text", "kind", "correct",
                "n_tokens_teacher", "sum_logp_student", "p_distilled", "cum_tokens"]:
        assert col in table.columns
    assert table["cum_tokens"].tolist() == [2, 3]
    assert table["correct"].tolist() == [True, True]
    assert table["p_teacher"].tolist() == pytest.approx([0.5, 0.5])


class CountingBackend:
    """A stand-in backend: fixed per-character log-probs, counts how often it 'loads'."""

    def __init__(self, label):
        from rdpt_core.models import ModelSpec

        self.spec = ModelSpec(path=label, name=label)
        self.load_count = 0
        self.fingerprint = f"fake-{label}"
        self.lock = threading.RLock()  # the backend interface: one pass over the model at a time

    def facts(self):
        from rdpt_core.backends.base import TokenizerFacts

        return TokenizerFacts(10, None, False, False, ("<eos>",), None)

    def render_context(self, prompt):
        return prompt + "\n"

    def score(self, context, response):
        self.load_count += 1
        n = len(response)
        return fake_scores([[i, i + 1] for i in range(n)], np.full(n, math.log(0.5)))

    def unload(self):
        pass

    score_batches = ScoringBackend.score_batches  # the interface's default: one record per batch


def test_job_scores_each_model_once_and_serves_reruns_from_the_cache(tmp_path):
    from rdpt_core.cache import TokenCache

    recs = [Record("a", "q", "P", "One. Two.<eos>"), Record("b", "q", "P", "Three.")]
    t, s = CountingBackend("t"), CountingBackend("s")
    backends = {"teacher": t, "student": s, "distilled": t}
    specs = {role: b.spec for role, b in backends.items()}
    table, report = score_records(recs, specs, backends=backends, cache=TokenCache(tmp_path))
    assert report.fresh == {"teacher": 2, "student": 2, "distilled": 0}
    assert table["text"].tolist() == ["One.", " Two.", "<eos>", "Three."]
    assert table["kind"].tolist() == ["sentence", "sentence", "special", "sentence"]
    t.load_count = s.load_count = 0
    _, again = score_records(recs, specs, backends=backends, cache=TokenCache(tmp_path))
    assert again.cached == {"teacher": 2, "student": 2, "distilled": 2}
    assert t.load_count == 0 and s.load_count == 0


class OverflowingBackend(CountingBackend):
    """Returns a log-prob above 0 for the record "bad": numbers no model can produce."""

    def score(self, context, response):
        scores = super().score(context, response)
        if response.startswith("Bad"):
            scores.logprobs[1] = 0.5
        return scores


def test_impossible_numbers_stop_the_job_naming_role_model_and_record(tmp_path):
    from rdpt_core.cache import TokenCache

    recs = [Record("good", "q", "P", "One."), Record("bad", "q", "P", "Bad.")]
    teacher = OverflowingBackend("t")
    with pytest.raises(ValueError, match=r"teacher \(t\), record 'bad': .*log-prob"):
        score_records(recs, {"teacher": teacher.spec}, backends={"teacher": teacher}, cache=TokenCache(tmp_path))
    # the good record scored before it stays cached: a rerun after the fix resumes from there
    assert TokenCache(tmp_path).get(_key(teacher, recs[0])) is not None


def _key(backend, record):
    from rdpt_core.cache import cache_key

    return cache_key(backend.fingerprint, backend.render_context(record.prompt), record.response)


def test_job_rejects_duplicate_ids_and_unknown_roles(tmp_path):
    recs = [Record("a", "q", "P", "x"), Record("a", "q", "P", "y")]
    b = CountingBackend("t")
    with pytest.raises(ValueError, match="unique"):
        score_records(recs, {"teacher": b.spec}, backends={"teacher": b})
    with pytest.raises(ValueError, match="unknown role"):
        score_records(recs[:1], {"judge": b.spec}, backends={"judge": b})



class ConstantBackend(CountingBackend):
    """Every token at probability ``p``."""

    def __init__(self, label, p):
        super().__init__(label)
        self.p = p

    def score(self, context, response):
        scores = super().score(context, response)
        scores.logprobs[:] = math.log(self.p)
        return scores


def test_a_several_teacher_job_scores_each_named_teacher_and_adds_the_best(tmp_path):
    from rdpt_core.cache import TokenCache
    from rdpt_core.scoring import teacher_role

    recs = [Record("a", "q", "P", "One. Two."), Record("b", "q", "P", "Three.")]
    backends = {teacher_role("steps"): ConstantBackend("x", 0.3), teacher_role("narrative"): ConstantBackend("y", 0.6),
                "student": ConstantBackend("s", 0.1)}
    table, report = score_records(recs, {r: b.spec for r, b in backends.items()}, backends=backends,
                                  cache=TokenCache(tmp_path))
    assert report.fresh == {"teacher_steps": 2, "teacher_narrative": 2, "student": 2}
    columns = list(table.columns)
    # teachers in the job's order, then the student; the best teacher's columns at the end
    assert columns.index("p_teacher_steps") < columns.index("p_teacher_narrative") < columns.index("p_student")
    assert columns[-3:] == ["p_teacher", "best_teacher", "teacher_margin"]
    assert np.allclose(table["p_teacher"], 0.6) and set(table["best_teacher"]) == {"narrative"}
    assert np.allclose(table["teacher_margin"], 0.3)


@pytest.mark.parametrize(("roles", "message"), [
    (["teacher_a", "student"], "two or more"),
    (["teacher_a", "teacher_b", "teacher"], "name every teacher"),
    (["teacher_a b", "teacher_c"], "teacher name 'a b'"),
    (["teacher_", "teacher_c"], "teacher name ''"),
])
def test_named_teachers_are_checked_before_any_work(roles, message):
    from rdpt_core.scoring import job_roles

    with pytest.raises(ValueError, match=message):
        job_roles(roles)
    assert job_roles(["distilled", "teacher_z", "student", "teacher_a"]) == ["teacher_z", "teacher_a", "student",
                                                                          "distilled"]


# ---- real packaged models against a plain transformers forward pass --------------------------
from conftest import reference_spans, skythought_rows  # noqa: E402


def real_records(n_chars: int = 1800) -> list:
    """Real responses from the repo's SkyThought copy, cut to keep the test fast."""
    distilled = skythought_rows("aime24.sky-t1-correct-5k-27b")
    student = skythought_rows("math500.gemma-2-27b-it")
    picks = [(distilled[0], "d0"), (distilled[5], "d5"), (student[3], "s3")]
    return [Record(f"{tag}", str(row["idx"]), row["question"], row["code"][0][:n_chars], bool(row["score"][0]))
            for row, tag in picks]


EXOTIC = Record(
    "exotic", "x", "计算 3+4。",
    "好的，我们来算：3 + 4 = 7。 Then we check 😀🎉! Résumé: ✓ done.\n\n最终答案是 7。 Ok 👍🏽 done.",
)


def check_against_reference(backend, ref, records, tmp_path):
    from rdpt_core.cache import TokenCache

    spec = backend.spec
    table, _ = score_records(records, {"teacher": spec}, backends={"teacher": backend},
                             cache=TokenCache(tmp_path))
    markers = [*backend.facts().special_tokens, "<think>", "</think>", "<|begin_of_thought|>",
               "<|end_of_thought|>", "<|begin_of_solution|>", "<|end_of_solution|>"]
    checked = 0
    for rec in records:
        rows = table[table.record_id == rec.record_id].sort_values("action_index")
        spans = reference_spans(rec.response, markers)
        assert list(zip(rows.start, rows.end)) == spans, rec.record_id
        want, counts = ref.action_probs(backend.render_context(rec.prompt), rec.response, spans)
        assert rows["n_tokens_teacher"].tolist() == counts, rec.record_id
        got = rows["p_teacher"].to_numpy()
        assert np.allclose(got, want, atol=1e-4, rtol=0, equal_nan=True), (
            rec.record_id, float(np.nanmax(np.abs(got - np.array(want)))))
        checked += len(rows)
    return checked


@pytest.mark.slow
def test_smollm2_action_probs_match_a_plain_forward_pass(smollm2, smollm2_ref, tmp_path):
    assert check_against_reference(smollm2, smollm2_ref, [*real_records(), EXOTIC], tmp_path) > 40


@pytest.mark.slow
def test_gemma_action_probs_match_a_plain_forward_pass(gemma, gemma_ref, tmp_path):
    assert check_against_reference(gemma, gemma_ref, [*real_records(), EXOTIC], tmp_path) > 40


# ---- issue 12: a corpus's identity is its backends' fingerprints, not their labels -------------
def _scored(records, label, fingerprint, tmp_path):
    """``records`` scored as teacher by a stand-in labelled ``label`` whose settings give ``fingerprint``."""
    from rdpt_core.cache import TokenCache
    from rdpt_core.scoring import score_corpus

    backend = CountingBackend(label)
    backend.fingerprint = fingerprint
    corpus, _ = score_corpus(records, {"teacher": backend.spec}, backends={"teacher": backend},
                             cache=TokenCache(tmp_path / fingerprint))
    return corpus


def test_corpora_scored_with_one_label_but_other_settings_are_never_merged(tmp_path):
    """A zoo label stays the same when the template or dtype changes: merging must compare the
    backend fingerprints, or chat- and raw-template scores end up in one table."""
    a, b = [Record("a", "q", "P", "One.")], [Record("b", "q", "P", "Two.")]
    chat = _scored(a, "smollm2-135m-instruct", "fp-chat", tmp_path)
    raw = _scored(b, "smollm2-135m-instruct", "fp-raw", tmp_path)
    assert chat.fingerprints == {"teacher": "fp-chat"} and chat.models == raw.models
    assert not chat.scored_alike(raw)
    with pytest.raises(ValueError, match=r"teacher \(smollm2-135m-instruct\): settings fp-chat vs fp-raw"):
        chat.merged(raw)
    same = chat.merged(_scored(b, "smollm2-135m-instruct", "fp-chat", tmp_path))
    assert [r.record_id for r in same.records] == ["a", "b"] and same.fingerprints == {"teacher": "fp-chat"}
    # a corpus saved without fingerprints matches only another one without them
    legacy = ScoredCorpus(chat.records, chat.tokens, chat.markers, dict(chat.models))
    assert not legacy.scored_alike(chat) and legacy.scored_alike(ScoredCorpus([], {}, (), dict(chat.models)))


def test_the_app_keeps_a_corpus_scored_with_other_settings_apart(tmp_path, monkeypatch):
    """Scoring more records after changing the template replaces the working corpus instead of
    merging the two (the Models page keeps the label)."""
    import streamlit as st

    from rdpt_app import state

    chat = _scored([Record("a", "q", "P", "One.")], "smollm2-135m-instruct", "fp-chat", tmp_path)
    raw = _scored([Record("b", "q", "P", "Two.")], "smollm2-135m-instruct", "fp-raw", tmp_path)
    monkeypatch.setattr(state, "_save", lambda: None)  # the workspace is not what is tested here
    st.session_state["corpus"] = chat
    try:
        state.merge_into_corpus(raw)
        assert st.session_state["corpus"] is raw
        state.merge_into_corpus(_scored([Record("c", "q", "P", "Three.")], "smollm2-135m-instruct", "fp-raw",
                                        tmp_path))
        assert [r.record_id for r in st.session_state["corpus"].records] == ["b", "c"]
    finally:
        del st.session_state["corpus"]


def _corpus(logprobs, offsets=((0, 2), (2, 4)), response="A. B", fingerprint="fp"):
    rec = Record("r", "q", "P", response)
    return ScoredCorpus([rec], {"teacher": {"r": fake_scores(offsets, logprobs)}}, (), {"teacher": "m"},
                        {"teacher": fingerprint})


def test_corpus_key_changes_with_any_score_or_setting_at_the_same_ids_and_lengths():
    """The derived-table cache is shared by every session: a key that misses a change serves
    another corpus's table."""
    from rdpt_app.loaders import corpus_key

    base = _corpus([np.log(0.5), np.log(0.25)])
    variants = {
        "scores swapped (same sum)": _corpus([np.log(0.25), np.log(0.5)]),
        "tokens re-split (same sum)": _corpus([np.log(0.5), np.log(0.25)], offsets=((0, 1), (1, 4))),
        "response edited (same length)": _corpus([np.log(0.5), np.log(0.25)], response="A! B"),
        "other settings, same label": _corpus([np.log(0.5), np.log(0.25)], fingerprint="fp-raw"),
    }
    keys = {what: corpus_key(c) for what, c in variants.items()}
    assert corpus_key(_corpus([np.log(0.5), np.log(0.25)])) == corpus_key(base)
    assert [what for what, key in keys.items() if key == corpus_key(base)] == []
    # a first token without a log-prob (NaN) is not one with log-prob 0: same nansum, other table
    assert corpus_key(_corpus([np.nan, np.log(0.25)])) != corpus_key(_corpus([0.0, np.log(0.25)]))
    # each of these changes what a derived table shows, so the key must follow
    assert not base.actions().equals(variants["scores swapped (same sum)"].actions())


def test_the_apps_shared_backend_is_keyed_on_the_checkpoints_files_too(tmp_path):
    """``backend_for`` is shared by every session: a checkpoint directory whose weights change
    must get a new backend, not the one made (and fingerprinted) for the old files."""
    from rdpt_app.loaders import spec_key
    from rdpt_core.models import ModelSpec

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"a" * 100)
    spec = ModelSpec(path=str(tmp_path))
    before = spec_key(spec)
    assert spec_key(spec) == before
    (tmp_path / "model.safetensors").write_bytes(b"b" * 100)
    assert spec_key(spec) != before


def test_corpus_key_hashes_each_corpus_object_once_and_forgets_it_when_it_dies(monkeypatch):
    """Hashing every token of a big corpus on each slider step made the pages slow: the key is
    remembered per object (corpora are never changed in place), and only while it lives."""
    import gc

    from rdpt_app import loaders

    hashed = []
    content_key = loaders.content_key
    monkeypatch.setattr(loaders, "content_key", lambda c: hashed.append(id(c)) or content_key(c))
    corpus, twin = _corpus([np.log(0.5), np.log(0.25)]), _corpus([np.log(0.5), np.log(0.25)])
    assert loaders.corpus_key(corpus) == loaders.corpus_key(corpus) == loaders.corpus_key(twin)
    assert hashed == [id(corpus), id(twin)]  # once per object; equal content, equal key
    gone = id(twin)
    del twin
    gc.collect()
    assert gone not in loaders._CONTENT_KEYS and id(corpus) in loaders._CONTENT_KEYS
