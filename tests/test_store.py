import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rdpt_core.backends.base import TokenScores
from rdpt_core.records import Record
from rdpt_core.scoring import ScoredCorpus
from rdpt_core.atomic import atomic_path, remove_leftovers
from rdpt_core.store import check_action_table, load_corpus, read_table, save_corpus, write_table


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


def test_named_teachers_keep_their_job_order_through_a_save(tmp_path):
    """Role order decides the columns, which of two tied teachers is 'best' and each teacher's
    colour: a round trip must not sort the roles (the token file is stored sorted by role)."""
    rec = Record("a", "q", "P", "One. Two.", True, "D")
    tie = scores([[0, 4], [4, 9]], [0.5, 0.5])
    tokens = {"teacher_zed": {"a": tie}, "teacher_amy": {"a": tie}, "student": {"a": scores([[0, 9]], [0.1])}}
    corpus = ScoredCorpus([rec], tokens, (), {"teacher_zed": "Z", "teacher_amy": "A", "student": "S"})
    save_corpus(corpus, tmp_path)
    again = load_corpus(tmp_path)
    assert list(again.tokens) == ["teacher_zed", "teacher_amy", "student"]
    table = again.actions("paper")
    pd.testing.assert_frame_equal(table, corpus.actions("paper"))
    assert [c for c in table.columns if c.startswith("p_teacher_")] == ["p_teacher_zed", "p_teacher_amy"]
    assert table["best_teacher"].tolist() == ["zed", "zed"]  # a tie goes to the first in job order


def test_the_scores_identity_is_saved_with_the_corpus_and_checked_when_read(tmp_path):
    import json

    recs = [Record("a", "q1", "P", "One.")]
    tokens = {"teacher": {"a": scores([[0, 4]], [0.5])}}
    corpus = ScoredCorpus(recs, tokens, (), {"teacher": "T"}, {"teacher": "fp-chat"})
    save_corpus(corpus, tmp_path / "c")
    assert load_corpus(tmp_path / "c").fingerprints == {"teacher": "fp-chat"}
    meta_file = tmp_path / "c" / "corpus.json"
    meta = json.loads(meta_file.read_text())
    del meta["fingerprints"]  # a corpus saved before fingerprints were kept
    meta_file.write_text(json.dumps(meta))
    assert load_corpus(tmp_path / "c").fingerprints == {}
    for bad, message in (({"teacher": 3}, "fingerprint string"), ({"student": "x"}, "roles without a model")):
        meta_file.write_text(json.dumps({**meta, "fingerprints": bad}))
        with pytest.raises(ValueError, match=f"corpus.json: field 'fingerprints' .*{message}"):
            load_corpus(tmp_path / "c")


def test_merging_corpora_replaces_same_ids_and_refuses_other_models():
    a = ScoredCorpus([Record("a", "q", "P", "One.")], {"teacher": {"a": scores([[0, 4]], [0.5])}}, (), {"teacher": "T"})
    b = ScoredCorpus([Record("a", "q", "P", "One."), Record("b", "q", "P", "Two.")],
                     {"teacher": {"a": scores([[0, 4]], [0.25]), "b": scores([[0, 4]], [0.75])}}, ("<x>",), {"teacher": "T"})
    m = a.merged(b)
    assert [r.record_id for r in m.records] == ["a", "b"]
    assert m.actions()["p_teacher"].tolist() == [0.25, 0.75]
    assert "<x>" in m.markers
    with pytest.raises(ValueError, match="different models"):
        a.merged(ScoredCorpus([], {}, (), {"teacher": "other"}))


# ---- atomic outputs ------------------------------------------------------------------------------


def small_corpus(label):
    recs = [Record(f"{label}{i}", "q", "P", f"Answer {label} {i}.") for i in range(3)]
    tokens = {"teacher": {r.record_id: scores([[0, len(r.response)]], [0.5]) for r in recs}}
    return ScoredCorpus(recs, tokens, (), {"teacher": "T"})


def test_a_save_that_fails_halfway_leaves_the_previous_corpus_whole(tmp_path, monkeypatch):
    target = tmp_path / "corpus"
    save_corpus(small_corpus("old"), target)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail)  # records.jsonl is written, tokens fail
    with pytest.raises(OSError, match="No space"):
        save_corpus(small_corpus("new"), target)
    again = load_corpus(target)
    assert [r.record_id for r in again.records] == ["old0", "old1", "old2"]
    assert set(again.tokens["teacher"]) == {"old0", "old1", "old2"}
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # no temporary left behind


def test_a_save_replaces_the_whole_corpus_directory(tmp_path):
    target = tmp_path / "corpus"
    save_corpus(small_corpus("old"), target)
    (target / "stale.txt").write_text("from an older layout")
    save_corpus(small_corpus("new"), target)
    assert sorted(p.name for p in target.iterdir()) == ["corpus.json", "records.jsonl", "tokens.parquet"]
    assert [r.record_id for r in load_corpus(target).records] == ["new0", "new1", "new2"]
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_atomic_path_writes_beside_the_target_and_renames_only_on_success(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".csv" and tmp != target
        tmp.write_text("new, half")
        assert target.read_text() == "old"  # nothing at the target until the block ends
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_leftovers_of_dead_runs_are_removed_and_a_live_runs_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    target = tmp_path / "t.parquet"
    dead_file = tmp_path / f".t.parquet.tmp-{dead_pid}-0123abcd.parquet"
    dead_dir = tmp_path / f".t.parquet.old-{dead_pid}-89abcdef.parquet"
    live_file = tmp_path / f".t.parquet.tmp-{os.getpid()}-aaaabbbb.parquet"
    other = tmp_path / f".u.parquet.tmp-{dead_pid}-0123abcd.parquet"  # another target's
    dead_file.write_text("x")
    dead_dir.mkdir()
    (dead_dir / "records.jsonl").write_text("x")
    live_file.write_text("x")
    other.write_text("x")
    assert sorted(remove_leftovers(target)) == sorted([dead_file, dead_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live_file.name, other.name])


# ---- tables by extension -------------------------------------------------------------------------
def test_a_csv_table_reads_back_equal_to_the_parquet_one(tmp_path):
    """Text columns stay text in CSV: an answer "NA", "None", "1" or "" is not a missing value."""
    table = pd.DataFrame({
        "record_id": ["1", "007", "NA", "x"], "question_id": ["None", "2", "2", ""],
        "action_index": [0, 1, 0, 0], "text": ["NA", "", "1.50", "a,\n\"quoted\""],
        "correct": pd.array([True, None, False, True], dtype="boolean"),
        "p_teacher": [0.1, float("nan"), 1 / 3, 2 ** -40],
    })
    for ext in ("parquet", "csv", "CSV"):
        write_table(table, tmp_path / f"t.{ext}")
        pd.testing.assert_frame_equal(read_table(tmp_path / f"t.{ext}"), table, check_dtype=ext == "parquet")
    csv = read_table(tmp_path / "t.csv")
    assert csv["text"].tolist() == ["NA", "", "1.50", "a,\n\"quoted\""] and csv["p_teacher"].iloc[2] == 1 / 3


@pytest.mark.parametrize("name", ["t.txt", "t", "t.jsonl", "t.parquet.bak"])
def test_an_unknown_table_extension_is_refused_naming_the_file(tmp_path, name):
    with pytest.raises(ValueError, match=rf"{name}: cannot tell the table format"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_check_action_table_names_the_first_bad_row_and_field(tmp_path):
    good = pd.DataFrame({"record_id": ["a", "a"], "p_teacher": [0.5, None], "p_student": [0.0, 1.0]})
    check_action_table(good, "t.csv", ["p_teacher", "p_student"])  # NaN is fine: Unscored
    with pytest.raises(ValueError, match=r"t.csv: not an action table .* 'p_student'"):
        check_action_table(good.drop(columns="p_student"), "t.csv", ["p_teacher", "p_student"])
    bad = good.assign(p_student=[0.2, "high"])
    with pytest.raises(ValueError, match=r"t.csv, row 2, field 'p_student': 'high' is not a probability"):
        check_action_table(bad, "t.csv", [])
    with pytest.raises(ValueError, match=r"t.csv, row 1, field 'p_teacher': .*inf.* is not a probability"):
        check_action_table(good.assign(p_teacher=[float("inf"), 0.5]), "t.csv", [])
    with pytest.raises(ValueError, match=r"t.csv, row 1, field 'p_student': True is not a probability"):
        check_action_table(good.assign(p_student=[True, False]), "t.csv", [])
    with pytest.raises(ValueError, match=r"t.csv, row 2, field 'action_index': 'x' is not a number"):
        check_action_table(good.assign(action_index=[0, "x"]), "t.csv", [])


def test_a_correct_column_that_is_not_true_or_false_names_its_row(tmp_path):
    (tmp_path / "t.csv").write_text("record_id,correct\na,True\nb,maybe\n")
    with pytest.raises(ValueError, match=r"t.csv, row 2, field 'correct': 'maybe' is not true, false or empty"):
        read_table(tmp_path / "t.csv")


@pytest.mark.parametrize("corpus_dir", ["demo/steps/corpus", "demo/steps/teacher_corpus", "data/math500_subset/corpus"])
def test_committed_corpora_name_the_fingerprints_of_the_models_that_scored_them(corpus_dir):
    """The bundled corpora were scored by the packaged models at their default settings (their
    numbers are re-checked against fresh scores in tests/test_lab.py and by
    scripts/stamp_fingerprints.py): their saved identity must be what those models have here, or
    scoring more records into them would start a separate corpus."""
    from conftest import REPO

    from rdpt_core.backends import create_backend
    from rdpt_core.models import resolve_spec

    corpus = load_corpus(REPO / corpus_dir)
    assert set(corpus.fingerprints) == set(corpus.models)
    assert corpus.fingerprints == {role: create_backend(resolve_spec(label)).fingerprint
                                   for role, label in corpus.models.items()}
