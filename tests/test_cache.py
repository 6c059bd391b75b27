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
