"""On-disk cache of token-level scores, the only expensive result in the pipeline.

Key: sha256 of (model fingerprint, rendered context, response). Everything downstream
(actions, classes, statistics) is cheap and re-derived. Each entry is one ``.npz`` file,
written to a temporary file and renamed into place, so an interrupted job never leaves a
half-written entry and concurrent writers of the same key are harmless.

Where: ``$RDPT_CACHE_DIR``, else the per-user cache directory (``~/.cache/rdpt-explorer`` on
Linux; see :func:`user_cache_dir`), never inside the package. ``make clean-cache`` empties it.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .backends.base import TokenScores

CACHE_VERSION = "1"
APP_NAME = "rdpt-explorer"


def user_cache_dir(
    app: str = APP_NAME, *, platform: str | None = None, env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Path:
    """The per-user cache directory of ``app``, by the rule platformdirs follows:

    * Linux and other Unix: ``$XDG_CACHE_HOME/<app>`` when that variable holds an absolute path
      (the XDG spec says to ignore a relative one), else ``~/.cache/<app>``;
    * macOS: ``~/Library/Caches/<app>``;
    * Windows: ``%LOCALAPPDATA%\\<app>\\Cache`` (``~\\AppData\\Local`` when the variable is unset).

    ``platform``, ``env`` and ``home`` default to ``sys.platform``, ``os.environ`` and
    ``Path.home()``; they are parameters so the rule can be tested for every platform anywhere.
    """
    platform = sys.platform if platform is None else platform
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    if platform == "win32":
        local = env.get("LOCALAPPDATA", "").strip()
        return (Path(local) if local else home / "AppData" / "Local") / app / "Cache"
    if platform == "darwin":
        return home / "Library" / "Caches" / app
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".cache") / app


def default_cache_dir() -> Path:
    """``$RDPT_CACHE_DIR`` when set (``~`` expanded), else :func:`user_cache_dir`: a per-user
    directory outside the package, so an installed copy never writes into site-packages."""
    override = os.environ.get("RDPT_CACHE_DIR", "").strip()
    return Path(override).expanduser() if override else user_cache_dir()


def clear_cache(root: str | Path | None = None) -> int:
    """Delete the cache's entries under ``root`` (default :func:`default_cache_dir`) and return
    how many files went. Only what :class:`TokenCache` writes is touched (``??/<key>.npz`` and
    leftover ``??/.tmp-*`` files), then the directories left empty, so a cache dir pointed at a
    folder that holds other files loses nothing else."""
    root = Path(root) if root is not None else default_cache_dir()
    if not root.is_dir():
        return 0
    removed = 0
    for sub in root.glob("??"):
        if not sub.is_dir():
            continue
        for path in [*sub.glob("*.npz"), *sub.glob(".tmp-*")]:
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        if not any(sub.iterdir()):
            sub.rmdir()
    if not any(root.iterdir()):
        root.rmdir()
    return removed


def cache_key(model_fingerprint: str, context: str, response: str) -> str:
    h = hashlib.sha256()
    for part in (CACHE_VERSION, model_fingerprint, context, response):
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: no ambiguous joins
        h.update(data)
    return h.hexdigest()


class TokenCache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> TokenScores | None:
        path = self._path(key)
        try:
            with np.load(path) as data:
                scores = TokenScores.from_arrays(data)
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # corrupt entry: drop it and score again
            self.misses += 1
            return None
        self.hits += 1
        return scores

    def put(self, key: str, scores: TokenScores) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        # Numeric arrays only (np.load reads them back with allow_pickle=False); passing it by
        # name also keeps the ** unpacking from being matched against that bool parameter.
        np.savez(buf, allow_pickle=False, **scores.to_arrays())
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.getvalue())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __contains__(self, key: str) -> bool:
        return self._path(key).exists()
