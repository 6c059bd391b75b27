import math

import numpy as np
import pandas as pd

from rdpt_core.backends.base import TokenScores
from rdpt_core.records import Record
from rdpt_core.scoring import ScoredCorpus
from rdpt_core.store import load_corpus, save_corpus


def scores(offsets, probs):
    n = len(offsets)
    return TokenScores(np.arange(n), np.array(offsets), np.log(probs), np.zeros(n, bool), np.zeros(n, bool))


def test_round_trip_rebuilds_the_same_action_tables(tmp_path):
    recs = [Record("a", "q1", "P", "One. Two.<eos>", True, "D", {"k": 1}),
            Record("b", "q1", "P", "Three.\n\nFour.", False, "D")]
    tokens = {
        "teacher": {"a": scores([[0, 4], [4, 9], [9, 14]], [0.5, 0.25, 0.9]),
                    "b": scores([[0, 6], [6, 14]], [0.1, 0.2])},
        "student": {"a": scores([[0, 9], [9, 14]], [0.3, 0.6]), "b": scores([[0, 14]], [0.4])},
    }
    corpus = ScoredCorpus(recs, tokens, ("<eos>",), {"teacher": "T", "student": "S"})
    save_corpus(corpus, tmp_path)
    again = load_corpus(tmp_path)
    assert again.records == recs and again.markers == ("<eos>",) and again.models == corpus.models
    for segmenter in ("paper", "paragraph"):
        pd.testing.assert_frame_equal(corpus.actions(segmenter), again.actions(segmenter))
    table = again.actions("paper")
    assert table["text"].tolist() == ["One.", " Two.", "<eos>", "Three.", "\n\nFour."]
    # by hand: action " Two." holds the token [4, 9) only for the teacher
    assert table["p_teacher"].iloc[1] == 0.25
    # the student's [0, 9) token has 5 of its 9 characters in " Two.", none left for "One."
    assert math.isnan(table["p_student"].iloc[0]) and table["p_student"].iloc[1] == 0.3
    assert table.groupby("record_id")["kind"].apply(list).to_dict()["a"] == ["sentence", "sentence", "special"]
    assert again.actions("paragraph")["text"].tolist() == ["One. Two.", "<eos>", "Three.", "\n\nFour."]


def test_merging_corpora_replaces_same_ids_and_refuses_other_models():
    a = ScoredCorpus([Record("a", "q", "P", "One.")], {"teacher": {"a": scores([[0, 4]], [0.5])}}, (), {"teacher": "T"})
    b = ScoredCorpus([Record("a", "q", "P", "One."), Record("b", "q", "P", "Two.")],
                     {"teacher": {"a": scores([[0, 4]], [0.25]), "b": scores([[0, 4]], [0.75])}}, ("<x>",), {"teacher": "T"})
    m = a.merged(b)
    assert [r.record_id for r in m.records] == ["a", "b"]
    assert m.actions()["p_teacher"].tolist() == [0.25, 0.75]
    assert "<x>" in m.markers
    import pytest

    with pytest.raises(ValueError, match="different models"):
        a.merged(ScoredCorpus([], {}, (), {"teacher": "other"}))
