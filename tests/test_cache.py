import os
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rdpt_core.backends.base import TokenScores
from rdpt_core.cache import TokenCache, cache_key, clear_cache, default_cache_dir, user_cache_dir

REPO = Path(__file__).resolve().parent.parent


def sample(n=4):
    return TokenScores(
        token_ids=np.arange(n), offsets=np.stack([np.arange(n), np.arange(n) + 1], 1),
        logprobs=np.linspace(-3, -0.1, n), truncated=np.array([False] * (n - 1) + [True]),
        straddle=np.array([True] + [False] * (n - 1)),
    )


def test_round_trip_is_exact(tmp_path):
    cache = TokenCache(tmp_path)
    key = cache_key("fp", "ctx", "resp")
    assert cache.get(key) is None and cache.misses == 1
    cache.put(key, sample())
    got = cache.get(key)
    for name, arr in sample().to_arrays().items():
        assert np.array_equal(getattr(got, name), arr)
    assert cache.hits == 1
    assert not list(tmp_path.rglob(".tmp-*"))  # atomic write leaves no temporary file


def test_key_separates_every_part():
    keys = {
        cache_key("fp", "ab", "c"), cache_key("fp", "a", "bc"), cache_key("fp2", "ab", "c"),
        cache_key("fp", "ab", "c "),
    }
    assert len(keys) == 4


def test_corrupt_entry_is_dropped_and_reported_as_a_miss(tmp_path):
    cache = TokenCache(tmp_path)
    key = cache_key("fp", "c", "r")
    cache.put(key, sample())
    path = next(tmp_path.rglob(f"{key}.npz"))
    path.write_bytes(b"not a zip file")
    assert cache.get(key) is None
    assert not path.exists()


# ---- where the cache lives --------------------------------------------------------------------
@pytest.fixture
def fake_home(tmp_path, monkeypatch):
    """A home directory of its own, and none of the variables that move the cache."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))  # what Path.home() reads on Windows
    for name in ("RDPT_CACHE_DIR", "XDG_CACHE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_rdpt_cache_dir_wins_over_everything(fake_home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("RDPT_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    assert TokenCache().root == tmp_path / "mine"
    monkeypatch.setenv("RDPT_CACHE_DIR", "~/somewhere")
    assert default_cache_dir() == fake_home / "somewhere"  # ~ expanded


def test_xdg_cache_home_is_honoured_on_linux(fake_home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir(platform="linux") == tmp_path / "xdg" / "rdpt-explorer"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # the XDG spec: ignore a relative path
    assert user_cache_dir(platform="linux") == fake_home / ".cache" / "rdpt-explorer"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert user_cache_dir(platform="linux") == fake_home / ".cache" / "rdpt-explorer"


def test_default_is_under_the_home_dir_and_never_inside_the_repo(fake_home):
    default = default_cache_dir()
    assert default == user_cache_dir()
    assert default.is_relative_to(fake_home)
    assert not default.resolve().is_relative_to(REPO)
    cache = TokenCache()
    cache.put(cache_key("fp", "c", "r"), sample())
    written = list(fake_home.rglob("*.npz"))
    assert len(written) == 1 and written[0].is_relative_to(default)


def test_default_with_the_real_home_is_outside_the_repo(monkeypatch):
    monkeypatch.delenv("RDPT_CACHE_DIR", raising=False)
    default = default_cache_dir()
    assert not default.resolve().is_relative_to(REPO)
    assert "site-packages" not in default.parts


@pytest.mark.parametrize("platform, env, expected", [
    ("linux", {}, "home/.cache/rdpt-explorer"),
    ("linux", {"XDG_CACHE_HOME": "/xdg"}, "/xdg/rdpt-explorer"),
    ("freebsd14", {}, "home/.cache/rdpt-explorer"),
    ("darwin", {"XDG_CACHE_HOME": "/xdg"}, "home/Library/Caches/rdpt-explorer"),
    ("win32", {"LOCALAPPDATA": "/appdata/local"}, "/appdata/local/rdpt-explorer/Cache"),
    ("win32", {}, "home/AppData/Local/rdpt-explorer/Cache"),
])
def test_per_platform_rule(platform, env, expected):
    got = user_cache_dir(platform=platform, env=env, home=Path("home"))
    assert got == Path(expected)


def test_clear_cache_removes_only_cache_entries(tmp_path):
    cache = TokenCache(tmp_path)
    for i in range(3):
        cache.put(cache_key("fp", "c", str(i)), sample())
    (tmp_path / "notes.txt").write_text("keep me")
    (tmp_path / "ab").mkdir(exist_ok=True)
    (tmp_path / "ab" / "other.txt").write_text("keep me too")
    assert clear_cache(tmp_path) == 3
    assert not list(tmp_path.rglob("*.npz"))
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "ab" / "other.txt").exists()
    assert clear_cache(tmp_path / "missing") == 0


def test_clear_cache_removes_an_emptied_cache_dir(tmp_path):
    root = tmp_path / "cache"
    TokenCache(root).put(cache_key("fp", "c", "r"), sample())
    assert clear_cache(root) == 1
    assert not root.exists()


# ---- backend profiles (issue 14) --------------------------------------------------------------
FP = "0123456789abcdef0123456789abcdef"
PROFILE = {"vocab_size": 10, "bos_token": None, "adds_bos": False, "pad_id": 0, "chat_template": "{{ x }}",
           "special_tokens_map": {"eos_token": "</s>"}, "special_tokens": ["</s>"], "context_window": 512}


def test_profiles_round_trip_and_a_damaged_one_is_dropped(tmp_path):
    cache = TokenCache(tmp_path)
    assert cache.get_profile(FP) is None
    cache.put_profile(FP, PROFILE)
    assert cache.get_profile(FP) == PROFILE
    path = tmp_path / "profiles" / f"{FP}.json"
    path.write_text(path.read_text().replace("512", "513"))  # another window: the digest no longer matches
    assert cache.get_profile(FP) is None and not path.exists()
    cache.put_profile(FP, PROFILE)
    path.write_bytes(b"\xff not json")
    assert cache.get_profile(FP) is None and not path.exists()
    other = "f" * 32
    cache.put_profile(other, PROFILE)
    (tmp_path / "profiles" / f"{other}.json").replace(path)  # another model's profile in this one's place
    assert cache.get_profile(FP) is None
    with pytest.raises(ValueError, match="not a model fingerprint"):
        cache.get_profile("../../etc/passwd")


def test_clear_cache_removes_profiles_too(tmp_path):
    cache = TokenCache(tmp_path)
    cache.put(cache_key("fp", "c", "r"), sample())
    cache.put_profile(FP, PROFILE)
    assert clear_cache(tmp_path) == 2
    assert not tmp_path.exists()


# ---- damaged entries (issue 12) ---------------------------------------------------------------
# Every damaged entry must end as a miss (None, the entry dropped and logged with its key) or,
# when the damage touched nothing the numbers depend on, as exactly the stored scores; and a
# put() afterwards must repair it. Never an exception, never other numbers.
def entry_path(cache, key):
    return cache.root / key[:2] / f"{key}.npz"


def assert_same_scores(got, want):
    for name, arr in want.to_arrays().items():
        got_arr = getattr(got, name)
        assert got_arr.shape == arr.shape, name
        assert np.array_equal(got_arr, arr, equal_nan=got_arr.dtype.kind == "f"), name


def stored(tmp_path, scores=None, key=None):
    """A cache under ``tmp_path`` holding one entry; returns (cache, key, entry path, its bytes)."""
    cache = TokenCache(tmp_path)
    key = key or cache_key("fp", "ctx", "resp")
    cache.put(key, scores if scores is not None else sample())
    path = entry_path(cache, key)
    return cache, key, path, path.read_bytes()


def assert_dropped_then_repaired(cache, key, caplog, level="WARNING"):
    with caplog.at_level(level, logger="rdpt_core.cache"):
        assert cache.get(key) is None
    assert key in caplog.text  # the drop is logged with the entry's key
    assert not os.path.lexists(entry_path(cache, key))
    cache.put(key, sample())
    assert_same_scores(cache.get(key), sample())


@pytest.mark.parametrize("damage", [
    pytest.param(lambda data: b"", id="zero-bytes"),
    pytest.param(lambda data: data[: len(data) // 2], id="truncated-half"),
    pytest.param(lambda data: data[:29], id="truncated-in-the-zip-header"),
    pytest.param(lambda data: bytes(random.Random(0).randrange(256) for _ in data), id="garbage"),
    pytest.param(lambda data: b"PK\x03\x04" + bytes(200), id="zip-magic-then-zeros"),
])
def test_damaged_entry_is_dropped_logged_and_repaired(tmp_path, caplog, damage):
    cache, key, path, data = stored(tmp_path)
    path.write_bytes(damage(data))
    assert_dropped_then_repaired(cache, key, caplog)


@pytest.mark.parametrize("offset", range(30))  # the 30 fixed bytes of the first local zip header
def test_a_flipped_byte_in_the_zip_header_never_raises(tmp_path, offset):
    cache, key, path, data = stored(tmp_path)
    damaged = bytearray(data)
    damaged[offset] ^= 0xFF
    path.write_bytes(bytes(damaged))
    got = cache.get(key)
    if got is not None:  # the byte was one the numbers do not depend on (e.g. a timestamp)
        assert_same_scores(got, sample())
    cache.put(key, sample())
    assert_same_scores(cache.get(key), sample())


def test_directory_in_the_entry_place_is_dropped_and_put_repairs_it(tmp_path, caplog):
    cache, key, path, _ = stored(tmp_path)
    path.unlink()
    (path / "inner").mkdir(parents=True)
    assert_dropped_then_repaired(cache, key, caplog)


def test_put_over_a_directory_in_the_entry_place_replaces_it(tmp_path):
    cache = TokenCache(tmp_path)
    key = cache_key("fp", "c", "r")
    entry_path(cache, key).mkdir(parents=True)
    cache.put(key, sample())
    assert_same_scores(cache.get(key), sample())


def test_symlinked_entry_is_dropped_without_touching_its_target(tmp_path, caplog):
    cache, key, path, data = stored(tmp_path / "cache")
    target = tmp_path / "elsewhere.npz"
    target.write_bytes(data)
    path.unlink()
    path.symlink_to(target)
    assert_dropped_then_repaired(cache, key, caplog)
    assert target.read_bytes() == data


def rewrite_members(path, **changes):
    """Rewrite the entry at ``path`` as a *valid* zip whose members are the old ones with
    ``changes`` applied: damage that the zip's own CRCs cannot see."""
    with np.load(path) as data:
        members = {name: data[name] for name in data.files}
    members.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **members)


def test_changed_numbers_in_a_valid_zip_are_caught_by_the_checksum(tmp_path, caplog):
    cache, key, path, _ = stored(tmp_path)
    logprobs = sample().logprobs.copy()
    logprobs[1] -= 1.0  # still a plausible log-prob: only a checksum can tell
    rewrite_members(path, logprobs=logprobs)
    assert_dropped_then_repaired(cache, key, caplog)


def test_a_single_flipped_bit_in_the_data_region_is_caught(tmp_path, caplog):
    cache, key, path, data = stored(tmp_path)
    with np.load(path) as members:
        logprobs = members["logprobs"].copy()
    logprobs.view(np.uint8)[3] ^= 0x01  # one bit of one float, with the zip CRCs made to match
    rewrite_members(path, logprobs=logprobs)
    assert_dropped_then_repaired(cache, key, caplog)


def test_the_entry_of_another_key_is_not_served(tmp_path, caplog):
    other = sample(6)
    cache, key, path, _ = stored(tmp_path)
    other_key = cache_key("fp", "ctx", "another response")
    cache.put(other_key, other)
    path.write_bytes(entry_path(cache, other_key).read_bytes())  # e.g. a file copied by hand
    assert_dropped_then_repaired(cache, key, caplog)
    assert_same_scores(cache.get(other_key), other)


def test_an_entry_without_a_checksum_is_stale_and_scored_again(tmp_path, caplog):
    cache, key, path, _ = stored(tmp_path)
    with open(path, "wb") as f:  # the format written before checksums (issue 12)
        np.savez(f, **sample().to_arrays())
    assert_dropped_then_repaired(cache, key, caplog, level="INFO")  # expected once per old entry
    assert "stale" in caplog.text


def impossible(field, value, index=1):
    arrays = {name: arr.copy() for name, arr in sample().to_arrays().items()}
    arrays[field][index] = value
    return arrays


IMPOSSIBLE = [
    pytest.param(impossible("logprobs", 0.5), "logprobs", id="positive-logprob"),
    pytest.param(impossible("logprobs", np.inf), "logprobs", id="infinite-logprob"),
    pytest.param(impossible("logprobs", -np.inf), "logprobs", id="minus-infinite-logprob"),
    pytest.param(impossible("logprobs", np.nan, index=2), "logprobs", id="nan-after-the-first-token"),
    pytest.param(impossible("offsets", [3, 1]), "offsets", id="span-ending-before-it-starts"),
    pytest.param(impossible("offsets", [-1, 1]), "offsets", id="negative-offset"),
    pytest.param(impossible("token_ids", -5), "token_ids", id="negative-token-id"),
]


@pytest.mark.parametrize("arrays, field", IMPOSSIBLE)
def test_put_refuses_numbers_the_schema_rules_out(tmp_path, arrays, field):
    cache = TokenCache(tmp_path)
    key = cache_key("fp", "c", "r")
    with pytest.raises(ValueError, match=rf"{key}.*{field}"):
        cache.put(key, TokenScores(**arrays))
    assert cache.get(key) is None  # nothing was written


@pytest.mark.parametrize("arrays, field", IMPOSSIBLE)
def test_get_drops_an_entry_with_numbers_the_schema_rules_out(tmp_path, caplog, arrays, field):
    from rdpt_core.cache import entry_digest

    cache, key, path, _ = stored(tmp_path)
    # a checksum that matches: only the value checks stand between these numbers and the caller
    rewrite_members(path, **arrays, digest=np.frombuffer(entry_digest(key, arrays), np.uint8))
    assert_dropped_then_repaired(cache, key, caplog)
    assert field in caplog.text


def test_get_drops_an_entry_whose_dtype_or_shape_is_off(tmp_path, caplog):
    from rdpt_core.cache import entry_digest

    cache, key, path, _ = stored(tmp_path)
    arrays = sample().to_arrays()
    arrays["logprobs"] = arrays["logprobs"].astype(np.float16)  # what the digest covers, if wrong
    rewrite_members(path, **arrays, digest=np.frombuffer(entry_digest(key, arrays), np.uint8))
    assert_dropped_then_repaired(cache, key, caplog)
    arrays = sample().to_arrays()
    arrays["straddle"] = arrays["straddle"][:-1]  # lengths that disagree
    rewrite_members(entry_path(cache, key), **arrays,
                    digest=np.frombuffer(entry_digest(key, arrays), np.uint8))
    assert_dropped_then_repaired(cache, key, caplog)


def test_an_empty_response_round_trips(tmp_path):
    empty = TokenScores(token_ids=np.zeros(0, np.int64), offsets=np.zeros((0, 2), np.int64),
                        logprobs=np.zeros(0), truncated=np.zeros(0, bool), straddle=np.zeros(0, bool))
    cache, key, _, _ = stored(tmp_path, scores=empty)
    assert_same_scores(cache.get(key), empty)


def test_a_nan_first_logprob_round_trips(tmp_path):
    scores = sample()
    scores.logprobs[0] = np.nan  # the schema's one NaN: nothing precedes the first token
    cache, key, _, _ = stored(tmp_path, scores=scores)
    assert_same_scores(cache.get(key), scores)


def test_cache_dir_that_is_a_file_is_a_clear_error_at_construction(tmp_path):
    a_file = tmp_path / "scores.txt"
    a_file.write_text("not a directory")
    for root in (a_file, a_file / "sub"):
        with pytest.raises(ValueError, match=re.escape(str(a_file))):
            TokenCache(root)


# ---- writes: atomic and durable ---------------------------------------------------------------
def test_put_fsyncs_the_new_entry_before_renaming_it_into_place(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    cache, key, path, _ = stored(tmp_path)
    entry_inode = path.stat().st_ino
    assert ("replace", entry_inode) in events
    assert events.index(("fsync", entry_inode)) < events.index(("replace", entry_inode))


def test_an_interrupted_put_leaves_the_old_entry_and_no_temporary_file(tmp_path, monkeypatch):
    cache, key, path, data = stored(tmp_path)

    def power_cut(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="simulated crash"):
        cache.put(key, sample(6))
    monkeypatch.undo()
    assert path.read_bytes() == data
    assert not list(tmp_path.rglob(".tmp-*"))
    assert_same_scores(cache.get(key), sample())


def test_dropping_a_corrupt_entry_spares_one_a_writer_just_put_in_its_place(tmp_path, monkeypatch):
    cache, key, path, _ = stored(tmp_path)
    path.write_bytes(b"PK\x03\x04" + bytes(100))  # corrupt, but it reaches the zip reader
    real_zipfile = zipfile.ZipFile
    raced = []

    def zipfile_racing_a_writer(file, mode="r", *args, **kwargs):
        if mode == "r" and not raced:  # another process repairs the entry mid-read
            raced.append(True)
            TokenCache(tmp_path).put(key, sample())
        return real_zipfile(file, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile, "ZipFile", zipfile_racing_a_writer)
    assert cache.get(key) is None  # what it read was corrupt
    monkeypatch.undo()
    assert raced
    assert_same_scores(cache.get(key), sample())  # the writer's fresh entry survived the drop


# ---- two processes, one cache dir -------------------------------------------------------------
N_SHARED_KEYS = 4


def scores_for(i):
    """The scores both processes compute for input ``i`` (deterministic, like a real model)."""
    n = 3 + i
    rng = np.random.default_rng(i)
    return TokenScores(
        token_ids=rng.integers(0, 50_000, n), offsets=np.stack([np.arange(n), np.arange(n) + 1], 1),
        logprobs=-rng.exponential(2.0, n), truncated=rng.random(n) < 0.5, straddle=np.arange(n) == 0,
    )


def shared_keys():
    return [cache_key("fp", "ctx", f"response {i}") for i in range(N_SHARED_KEYS)]


def same_scores(got, want):
    return all(
        getattr(got, name).shape == arr.shape and np.array_equal(getattr(got, name), arr, equal_nan=arr.dtype.kind == "f")
        for name, arr in want.to_arrays().items()
    )


def concurrent_worker(root, role, rounds, go_file):
    """Run in a child process: a writer puts every shared key each round, then reads it back;
    a reader only reads, all the while the writers write. Prints how many reads were hits, wrong, and how many drops were logged."""
    import json
    import logging
    import time

    drops = []
    handler = logging.Handler()
    handler.emit = drops.append  # type: ignore[method-assign]
    logging.getLogger("rdpt_core.cache").addHandler(handler)
    cache = TokenCache(root)
    Path(f"{go_file}.{os.getpid()}.ready").touch()
    while not os.path.exists(go_file):  # start together, so the writes really overlap
        time.sleep(0.001)
    hits = wrong = 0
    rounds_done = 0
    # a writer does its rounds; a reader reads until every writer has finished (the stop file)
    while rounds_done < rounds if role == "writer" else not os.path.exists(f"{go_file}.stop"):
        rounds_done += 1
        for i, key in enumerate(shared_keys()):
            if role == "writer":
                cache.put(key, scores_for(i))
            got = cache.get(key)
            hits += got is not None
            wrong += got is not None and not same_scores(got, scores_for(i))
    print(json.dumps({"hits": hits, "wrong": wrong, "drops": len(drops)}))


def test_two_processes_writing_the_same_keys_leave_identical_sound_entries(tmp_path):
    import json
    import subprocess
    import sys
    import time

    root, go_file = tmp_path / "cache", tmp_path / "go"
    code = ("import sys; sys.path.insert(0, sys.argv[5]); from test_cache import concurrent_worker; "
            "concurrent_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])")
    roles = ["writer", "writer", "reader"]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(root), role, "60", str(go_file), str(REPO / "tests")],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for role in roles
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.*.ready"))) < len(procs) and time.monotonic() < deadline:
        time.sleep(0.01)  # every process imported and waiting: the go below starts them together
    go_file.touch()
    reports = []
    for proc in procs:
        if proc is procs[-1]:
            Path(f"{go_file}.stop").touch()  # the writers are done: the reader may stop
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    assert all(r["wrong"] == 0 and r["drops"] == 0 for r in reports), reports
    assert all(r["hits"] > 0 for r in reports), reports  # the reader did read entries mid-write
    cache = TokenCache(root)
    for i, key in enumerate(shared_keys()):
        assert same_scores(cache.get(key), scores_for(i))
    assert cache.misses == 0
    assert not list(root.rglob(".tmp-*"))
