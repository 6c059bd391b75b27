"""Fuzzing the token cache's handling of damaged entries (issue 12).

Each case stores random token scores under a key (and another entry beside it), damages the
entry (a random truncation, random bit flips at random offsets, random garbage, a random splice,
a valid zip whose numbers were changed, or something else put in the entry's place), then asks
for it back. Every case must end in ``get()`` returning exactly the stored scores or None (and
then ``put()`` repairs the entry); never an exception, never other numbers, never the loss of the
neighbouring entry. Outcomes are reported as Hypothesis events (``--hypothesis-show-statistics``).
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from rdpt_core.backends.base import TokenScores
from rdpt_core.cache import TokenCache, cache_key

# Seeded (derandomize) so a failure reproduces; no "explain" phase, which reruns a failure
# hundreds of times.
FUZZ = settings(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
KEY, NEIGHBOUR_KEY = cache_key("fp", "ctx", "response"), cache_key("fp", "ctx", "another response")


@pytest.fixture(autouse=True, scope="module")
def no_fsync():
    """fsync makes an entry survive a power loss, which these cases do not simulate (test_cache.py
    checks it is called); here it would only cost seconds of disk flushes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)
        yield


@st.composite
def token_scores(draw):
    """Scores the schema allows: ids >= 0, spans [start, end) with 0 <= start <= end, log-probs
    finite and <= 0 except maybe a NaN first one, any flags."""
    n = draw(st.integers(0, 30))
    ints = st.integers(0, 2**40)
    starts = np.array(draw(st.lists(st.integers(0, 500), min_size=n, max_size=n)), np.int64)
    widths = np.array(draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)), np.int64)
    logprobs = np.array(draw(st.lists(st.floats(-1e6, 0.0), min_size=n, max_size=n)), np.float64)
    if n and draw(st.booleans()):
        logprobs[0] = np.nan  # nothing precedes the first token (§4)
    flags = st.lists(st.booleans(), min_size=n, max_size=n)
    return TokenScores(
        token_ids=np.array(draw(st.lists(ints, min_size=n, max_size=n)), np.int64),
        offsets=np.stack([starts, starts + widths], 1).reshape(n, 2),
        logprobs=logprobs, truncated=np.array(draw(flags), bool), straddle=np.array(draw(flags), bool),
    )


def same_scores(got, want):
    return all(
        getattr(got, name).dtype == arr.dtype and getattr(got, name).shape == arr.shape
        and np.array_equal(getattr(got, name), arr, equal_nan=arr.dtype.kind == "f")
        for name, arr in want.to_arrays().items()
    )


def entry_path(cache, key):
    return cache.root / key[:2] / f"{key}.npz"


def check_outcome(cache, scores, neighbour, damage_kind):
    """The contract, with the outcome recorded as an event."""
    event(f"damage: {damage_kind}")
    try:
        got = cache.get(KEY)
    except Exception as err:  # the one thing that must never happen
        event("outcome: crash")
        raise AssertionError(f"get() raised on a {damage_kind} entry: {err!r}") from err
    if got is None:
        event("outcome: clean miss (dropped, re-scored)")
        assert not os.path.lexists(entry_path(cache, KEY)), "a damaged entry was left in place"
    else:
        event("outcome: accepted, exactly the stored scores")
        assert same_scores(got, scores), f"get() served other numbers after {damage_kind}"
    neighbour_now = cache.get(NEIGHBOUR_KEY)
    if neighbour_now is None or not same_scores(neighbour_now, neighbour):
        event("outcome: neighbour entry lost")
        raise AssertionError(f"the neighbouring entry was lost after a {damage_kind} entry")
    cache.put(KEY, scores)  # the re-score's write repairs the entry
    assert same_scores(cache.get(KEY), scores)


@st.composite
def byte_damage(draw):
    """(kind, function from the entry's bytes to the damaged bytes)."""
    kind = draw(st.sampled_from(["truncate", "bit flips", "garbage", "splice"]))
    if kind == "truncate":
        cut = draw(st.integers(0, 2**20))
        return kind, lambda data: data[: cut % len(data)]
    if kind == "bit flips":
        flips = draw(st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 7)), min_size=1, max_size=8))

        def flip(data):
            out = bytearray(data)
            for offset, bit in flips:
                out[offset % len(out)] ^= 1 << bit
            return bytes(out)

        return kind, flip
    if kind == "garbage":
        garbage = draw(st.binary(max_size=3000))
        return kind, lambda data: garbage
    at, patch = draw(st.integers(0, 2**20)), draw(st.binary(min_size=1, max_size=64))
    return kind, lambda data: data[: at % len(data)] + patch + data[at % len(data) + len(patch):]


@settings(FUZZ, max_examples=150)
@given(scores=token_scores(), neighbour=token_scores(), damage=byte_damage())
def test_fuzz_damaged_bytes_give_the_stored_scores_or_a_miss(scores, neighbour, damage):
    kind, damaged = damage
    with tempfile.TemporaryDirectory() as root:
        cache = TokenCache(root)
        cache.put(KEY, scores)
        cache.put(NEIGHBOUR_KEY, neighbour)
        path = entry_path(cache, KEY)
        path.write_bytes(damaged(path.read_bytes()))
        check_outcome(cache, scores, neighbour, kind)


@settings(FUZZ, max_examples=50)
@given(scores=token_scores(), neighbour=token_scores(), field=st.sampled_from(
    ["token_ids", "offsets", "logprobs", "truncated", "straddle"]), seed=st.integers(0, 2**32 - 1))
def test_fuzz_changed_numbers_in_a_valid_zip_are_never_served(scores, neighbour, field, seed):
    """Damage the zip's CRCs cannot see: the member rewritten whole, the stored checksum kept."""
    with tempfile.TemporaryDirectory() as root:
        cache = TokenCache(root)
        cache.put(KEY, scores)
        cache.put(NEIGHBOUR_KEY, neighbour)
        path = entry_path(cache, KEY)
        with np.load(path) as data:
            members = {name: data[name].copy() for name in data.files}
        raw = members[field].view(np.uint8).reshape(-1)
        if raw.size:  # flip one random bit of the array's bytes; an empty array is left as is
            rng = np.random.default_rng(seed)
            raw[rng.integers(raw.size)] ^= np.uint8(1 << int(rng.integers(8)))
        with open(path, "wb") as f:
            np.savez(f, **members)
        check_outcome(cache, scores, neighbour, f"changed {field} in a valid zip")


def place_directory(path, tmp):
    path.unlink()
    (path / "inner").mkdir(parents=True)


def place_symlink_to_a_copy(path, tmp):
    copy = tmp / "copy.npz"
    copy.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(copy)


def place_symlink_to_the_neighbour(path, tmp):
    path.unlink()
    path.symlink_to(path.parent.parent / NEIGHBOUR_KEY[:2] / f"{NEIGHBOUR_KEY}.npz")


def place_copy_of_the_neighbour(path, tmp):
    path.write_bytes((path.parent.parent / NEIGHBOUR_KEY[:2] / f"{NEIGHBOUR_KEY}.npz").read_bytes())


def place_dangling_symlink(path, tmp):
    path.unlink()
    path.symlink_to(tmp / "nowhere.npz")


def place_symlink_loop(path, tmp):
    path.unlink()
    path.symlink_to(path)


def place_symlink_to_a_directory(path, tmp):
    path.unlink()
    (tmp / "a-dir").mkdir()
    path.symlink_to(tmp / "a-dir")


def place_symlink_to_dev_zero(path, tmp):
    path.unlink()
    path.symlink_to("/dev/zero")


def place_fifo(path, tmp):
    path.unlink()
    os.mkfifo(path)


def place_zero_bytes(path, tmp):
    path.write_bytes(b"")


PLACEMENTS = [place_directory, place_symlink_to_a_copy, place_symlink_to_the_neighbour, place_copy_of_the_neighbour,
              place_dangling_symlink, place_symlink_loop, place_symlink_to_a_directory, place_symlink_to_dev_zero,
              place_fifo, place_zero_bytes]


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges and FIFOs do not exist on Windows")
@pytest.mark.parametrize("place", PLACEMENTS, ids=lambda place: place.__name__)
@settings(FUZZ, max_examples=6)  # x 10 placements: 60 cases, every placement covered
@given(scores=token_scores(), neighbour=token_scores())
def test_fuzz_things_in_the_entry_place_give_the_stored_scores_or_a_miss(scores, neighbour, place):
    with tempfile.TemporaryDirectory() as work:
        tmp = Path(work)
        cache = TokenCache(tmp / "cache")
        cache.put(KEY, scores)
        cache.put(NEIGHBOUR_KEY, neighbour)
        place(entry_path(cache, KEY), tmp)
        targets = {p: p.read_bytes() for p in tmp.iterdir() if p.is_file() and p.name != "cache"}
        check_outcome(cache, scores, neighbour, place.__name__.removeprefix("place_").replace("_", " "))
        assert all(p.read_bytes() == data for p, data in targets.items())  # link targets untouched
