"""On-disk cache of token-level scores, the only expensive result in the pipeline.

Key: sha256 of (model fingerprint, rendered context, response). Everything downstream
(actions, classes, statistics) is cheap and re-derived. Each entry is one ``.npz`` file,
written to a temporary file and renamed into place, so an interrupted job never leaves a
half-written entry and concurrent writers of the same key are harmless.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .backends.base import TokenScores
from .models import PROJECT_ROOT

CACHE_VERSION = "1"


def default_cache_dir() -> Path:
    return Path(os.environ.get("RDPT_CACHE_DIR", PROJECT_ROOT / ".rdpt_cache"))


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
