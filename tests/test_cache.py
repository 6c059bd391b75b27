import numpy as np

from rdpt_core.backends.base import TokenScores
from rdpt_core.cache import TokenCache, cache_key


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
