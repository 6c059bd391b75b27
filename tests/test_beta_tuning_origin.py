"""The β-tuning page's "Agreement with known origin" panel (Streamlit AppTest, no browser).

The corpus is built by hand: one token per character, every token of an action carrying
log p of that action's chosen probability, so each model's action probability (the geometric
mean of its tokens, docs/method.md §6) is the number written below. The expected tables are
counted by hand from those numbers, not computed by rdpt_core.
"""

import math

import numpy as np
import pytest
from test_app import page, with_dataset

from rdpt_core.backends.base import TokenScores
from rdpt_core.records import Record
from rdpt_core.scoring import ScoredCorpus

NAN = float("nan")
PATTERN = r"Plan:|Step \d+ of \d+:|Check:"
# per response: its actions as (text, p_T, p_S, p_D); the paper's rule cuts them exactly here
RESPONSES = {
    "r1": [("Plan: add the apples.", 0.95, 0.3, 0.8),  # style, Δ_TS 0.65: Teacher
           (" Step 2 of 5: 3 + 4 = 7.", 0.6, 0.5, 0.9),  # style, Δ_TS 0.1: Teacher at β 0.05, then Boosted
           (" So the answer is 7.", 0.5, 0.5, 0.5)],  # Shared
    "r2": [("Check: 7 is right.", 0.2, 0.7, 0.6),  # style, Δ_TS −0.5: Student at β ≤ 0.2, then Boosted
           (" We add them.", 0.8, 0.4, 0.7),  # Δ_TS 0.4: Teacher at β ≤ 0.2, then Boosted
           (" Then plan: lower case.", 0.3, 0.33, 0.3)],  # case matters; Shared
    "r3": [("I think Plan: is not at the start.", 0.4, 0.9, 0.5),  # Δ_TS −0.5: Student, then Boosted
           (" Check: unscored.", NAN, 0.5, 0.5)],  # style, no p_T: Unscored
}
ROLES = ("teacher", "student", "distilled")


def scores(actions: list[tuple[str, float, float, float]], role: int) -> TokenScores:
    logp = np.concatenate([np.full(len(text), math.log(p[role]) if not math.isnan(p[role]) else NAN)
                           for text, *p in actions])
    n = len(logp)
    return TokenScores(np.arange(n), np.stack([np.arange(n), np.arange(n) + 1], 1), logp,
                       np.zeros(n, bool), np.zeros(n, bool))


def corpus() -> ScoredCorpus:
    records = [Record(rid, rid, "How many apples?", "".join(a[0] for a in acts), True, "distilled")
               for rid, acts in RESPONSES.items()]
    tokens = {role: {rid: scores(acts, k) for rid, acts in RESPONSES.items()} for k, role in enumerate(ROLES)}
    return ScoredCorpus(records, tokens, (), {role: role[0] for role in ROLES})


def opened(**state):
    c = corpus()
    assert c.actions("paper")["text"].tolist() == [a[0] for acts in RESPONSES.values() for a in acts]
    at = with_dataset(c.records, c, "origin test")
    for key, value in state.items():
        at.session_state[key] = value
    at = page("beta_tuning", at).run()
    assert not at.exception, [e.value for e in at.exception]
    at.text_input(key="beta_grid").input("0.05, 0.2, 0.6").run()
    return at


def frame_with(at, column: str):
    return next((d.value for d in at.dataframe if column in d.value.columns), None)


def test_empty_pattern_explains_and_shows_no_table():
    at = opened(beta=0.2)
    assert at.text_input(key="w_known_origin_pattern").value == ""
    assert frame_with(at, "teacher_recall") is None and frame_with(at, "share_of_teacher_style") is None
    assert any("teacher-style" in m.value for m in [*at.markdown, *at.caption, *at.info])


def test_typed_pattern_shows_hand_counted_agreement_and_confusion():
    at = opened(beta=0.2)
    at.text_input(key="w_known_origin_pattern").input(PATTERN).run()
    assert not at.exception and not at.error
    agreement = frame_with(at, "teacher_recall")
    # styled and scored: r1a0, r1a1, r2a0 (3); other scored: r1a2, r2a1, r2a2, r3a0 (4)
    assert agreement["beta"].tolist() == [0.05, 0.2, 0.6]
    assert agreement["n_teacher_style"].tolist() == [3, 3, 3] and agreement["n_other"].tolist() == [4, 4, 4]
    assert agreement["teacher_recall"].tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    assert agreement["teacher_or_boosted_recall"].tolist() == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert agreement["teacher_precision"].tolist() == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert agreement["other_as_teacher"].tolist() == pytest.approx([1 / 4, 1 / 4, 0.0])
    # confusion at the sidebar's β = 0.2 (α = 0.1)
    confusion = frame_with(at, "share_of_teacher_style")
    assert confusion.index.tolist() == ["Boosted", "Shared", "Student", "Teacher"]
    assert confusion["teacher_style"].tolist() == [1, 0, 1, 1] and confusion["other"].tolist() == [0, 2, 1, 1]
    captions = " ".join(c.value for c in at.caption)
    assert "Unit: actions" in captions
    # per response: r1 has 2 styled (1 Teacher), r2 has 1 (0 Teacher): mean share 0.25 over 2 responses
    assert "2 responses" in captions and "0.25" in captions
    assert at.session_state["known_origin_pattern"] == PATTERN


def test_a_demo_default_prefills_the_pattern():
    at = opened(beta=0.2, known_origin_default=PATTERN)
    assert at.text_input(key="w_known_origin_pattern").value == PATTERN
    assert frame_with(at, "teacher_recall")["n_teacher_style"].tolist() == [3, 3, 3]


def test_a_bad_regex_is_an_error_and_the_rest_of_the_page_stays():
    at = opened(beta=0.2)
    at.text_input(key="w_known_origin_pattern").input("Plan:(").run()
    assert not at.exception
    assert any("missing" in e.value and "Plan" in e.value for e in at.error)
    assert frame_with(at, "teacher_recall") is None
    assert frame_with(at, 0.2) is not None  # the overlap table (one column per β) is still drawn
    # valid but matches an empty opening: every action is teacher-style, and the page says so
    at.text_input(key="w_known_origin_pattern").input("Plan:|").run()
    assert not at.error and any("every action" in w.value for w in at.warning)
    assert frame_with(at, "teacher_recall")["n_other"].tolist() == [0, 0, 0]


def test_the_demo_fills_in_its_teacher_style_and_another_dataset_clears_it():
    from conftest import DEMO
    from test_app import app, button

    from rdpt_core.origin import known_origin, origin_confusion
    from rdpt_core.provenance import classify_table
    from rdpt_core.store import load_corpus
    from rdpt_lab.multistep import TEACHER_STYLE_RE

    at = page("beta_tuning", app()).run()  # the app opens on the demo
    assert at.text_input(key="w_known_origin_pattern").value == TEACHER_STYLE_RE.pattern
    table = classify_table(load_corpus(DEMO).actions("paper"), 0.1, at.session_state["beta"])
    want = origin_confusion(table, "cls", known_origin(table["text"], TEACHER_STYLE_RE.pattern))
    shown = frame_with(at, "share_of_teacher_style")
    assert shown is not None and shown["teacher_style"].tolist() == want["teacher_style"].tolist()
    # the MATH500 subset has no known teacher style: its panel starts empty
    at.switch_page("pages/home_page.py").run()
    button(at, "home_open_math500-subset").click().run()
    at = page("beta_tuning", at).run()
    assert at.text_input(key="w_known_origin_pattern").value == ""
