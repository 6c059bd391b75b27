"""Saved working datasets: round trip, atomic overwrite, listing, deletion, hostile ids."""

import json

import numpy as np
import pytest

from conftest import DEMO
from rdpt_core.records import Origin, Record
from rdpt_core.store import load_corpus
from rdpt_core.workspace import Workspace


def records():
    return [Record("a", "q1", "What is 1+1?", "It is 2. Done.", True, "m", {"k": 1}),
            Record("b", "q1", "What is 1+1?", "<script>x</script> 3.", False, None)]


def test_round_trip_keeps_records_origins_and_scores(tmp_path):
    ws = Workspace(tmp_path / "ws")
    demo = load_corpus(DEMO)
    subset = demo.records[:3]
    scored = type(demo)(subset, {role: {r.record_id: by[r.record_id] for r in subset} for role, by in demo.tokens.items()},
                        demo.markers, demo.models)
    origins = {"a": Origin(4, {"prompt": "What is 1+1?", "answer": "It is 2. Done.", "extra": [1, 2]}, None)}
    dataset_id = ws.save("My upload: x.csv", [*records(), *subset], scored, origins)
    assert dataset_id.startswith("my-upload-x-csv-")
    loaded = ws.load(dataset_id)
    assert loaded.name == "My upload: x.csv" and loaded.records == [*records(), *subset]
    assert loaded.origins == origins
    assert loaded.corpus.models == demo.models and [r.record_id for r in loaded.corpus.records] == [r.record_id for r in subset]
    for role, by_record in scored.tokens.items():
        for rid, s in by_record.items():
            np.testing.assert_array_equal(loaded.corpus.tokens[role][rid].logprobs, s.logprobs)
    [listed] = ws.saved()
    assert (listed.dataset_id, listed.n_records, listed.n_scored) == (dataset_id, 5, 3)


def test_overwrite_replaces_the_whole_folder_and_leaves_no_temporaries(tmp_path):
    ws = Workspace(tmp_path)
    dataset_id = ws.save("d", records())
    ws.save("d renamed", records()[:1], dataset_id=dataset_id)
    loaded = ws.load(dataset_id)
    assert loaded.name == "d renamed" and len(loaded.records) == 1 and loaded.corpus is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [dataset_id]
    assert json.loads((tmp_path / dataset_id / "dataset.json").read_text())["n_records"] == 1


def test_concurrent_saves_of_one_dataset_leave_one_whole_version(tmp_path):
    """Two sessions saving the same dataset at once: each save replaces the folder whole, so
    the result is one writer's complete version, never a mix or an error."""
    import threading

    ws = Workspace(tmp_path)
    dataset_id = ws.save("d", records())
    errors: list[BaseException] = []

    def keep_saving(n_records: int) -> None:
        try:
            for _ in range(25):
                ws.save(f"{n_records} records", records()[:n_records], dataset_id=dataset_id)
        except BaseException as err:  # collected: a thread's exception would otherwise vanish
            errors.append(err)

    writers = [threading.Thread(target=keep_saving, args=(n,)) for n in (1, 2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    assert errors == []
    loaded = ws.load(dataset_id)
    assert loaded.name == f"{len(loaded.records)} records"  # name and records from one save
    assert sorted(p.name for p in tmp_path.iterdir()) == [dataset_id]


def test_listing_is_newest_first_and_delete_removes(tmp_path):
    ws = Workspace(tmp_path)
    first = ws.save("first", records())
    second = ws.save("second", records())
    assert [d.dataset_id for d in ws.saved()] == [second, first]
    ws.delete(first)
    assert [d.dataset_id for d in ws.saved()] == [second] and first not in ws
    with pytest.raises(KeyError, match="no saved dataset"):
        ws.load(first)


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "A B"])
def test_ids_from_links_cannot_leave_the_workspace(tmp_path, bad):
    ws = Workspace(tmp_path)
    assert bad not in ws
    with pytest.raises(KeyError):
        ws.load(bad)


def test_an_empty_workspace_lists_nothing(tmp_path):
    assert Workspace(tmp_path / "never-made").saved() == []
