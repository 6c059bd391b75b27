"""On-disk cache of token-level scores, the only expensive result in the pipeline.

Key: sha256 of (model fingerprint, rendered context, response). Everything downstream
(actions, classes, statistics) is cheap and re-derived. Each entry is one ``.npz`` file at
``<root>/<key[:2]>/<key>.npz``.

An entry is served only when it passes every check below; anything else (a 0-byte file left by a
rename that outran its data after a power loss, a truncated or bit-flipped file, garbage, a
directory, symlink or FIFO in the entry's place, another key's entry copied over it, an entry
without a checksum from before issue 12) is *dropped*, logged with its key, and reported as a
miss so the caller scores again and :meth:`TokenCache.put` repairs it. Never an exception, never
other numbers. The checks, and why each one:

* a regular file (opened without following symlinks, non-blocking): a FIFO or a link to
  ``/dev/zero`` must not hang or flood the reader;
* a zip of exactly the five arrays plus ``digest``, read by our own strict ``.npy`` reader: the
  declared dtype, rank and shape must match the schema and the data length, so a damaged header
  can neither reinterpret the bytes nor make numpy allocate from a bogus shape;
* ``digest`` = sha256 over the entry's key and every array's name, dtype, shape and bytes (see
  :func:`entry_digest`): catches any change to the numbers, even one the zip's CRC32 would miss
  (a flip before the CRC was computed, an entry rewritten whole), and an entry that belongs to
  another key;
* the values the schema allows (:func:`scores_problem`): equal lengths, ids and span starts
  ``>= 0``, ``start <= end``, log-probs finite and ``<= 0`` except a NaN first token (nothing
  precedes it, §4). ``put`` refuses scores that fail these, so a valid digest never covers them.

Writes go to a temporary file in the entry's directory, are flushed and fsynced, then renamed
over the entry with ``os.replace`` (atomic), and the directory is fsynced: a reader sees the old
entry or the new one, never part of one, and after a power loss the entry is whole or absent.
Two processes writing the same key write the same arrays and digest (only the zip's timestamps
differ), each through its own temporary file, so whichever rename lands last wins harmlessly. A reader that finds a damaged entry deletes it only if it is still the very file
it read (same device and inode), so it never deletes a sound entry a writer has just renamed
into place.

Where: ``$RDPT_CACHE_DIR``, else the per-user cache directory (``~/.cache/rdpt-explorer`` on
Linux; see :func:`user_cache_dir`), never inside the package. ``make clean-cache`` empties it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .backends.base import TokenScores

log = logging.getLogger(__name__)

# Part of every key: bump only when the numbers a backend produces change. 2: batched scoring pads
# every window to a multiple of 64 tokens (docs/engine.md, "Batches"), which moves fp32 log-probs by
# up to ~4e-5 nats from version 1's unpadded passes.
CACHE_VERSION = "2"
APP_NAME = "rdpt-explorer"
# Folded into every entry's digest. Format 1 (before issue 12) had no digest: such entries are
# treated as stale, dropped and scored again once (cheaper than trusting unverifiable numbers).
ENTRY_FORMAT = b"rdpt-token-cache-entry/2"
# The arrays of an entry: dtype (explicitly little-endian, so entries move between machines)
# and rank, as TokenScores documents them (§4).
ENTRY_SCHEMA: dict[str, tuple[np.dtype, int]] = {
    "token_ids": (np.dtype("<i8"), 1),
    "offsets": (np.dtype("<i8"), 2),
    "logprobs": (np.dtype("<f8"), 1),
    "truncated": (np.dtype("|b1"), 1),
    "straddle": (np.dtype("|b1"), 1),
}
DIGEST = "digest"  # the entry member holding entry_digest(), as uint8[32]


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
    how many files went. Only what :class:`TokenCache` writes is touched (``??/<key>.npz``,
    ``profiles/<fingerprint>.json`` and leftover ``.tmp-*`` files), then the directories left
    empty, so a cache dir pointed at a folder that holds other files loses nothing else."""
    root = Path(root) if root is not None else default_cache_dir()
    if not root.is_dir():
        return 0
    removed = _clear_folder(root / PROFILES, "*.json")
    for sub in root.glob("??"):
        removed += _clear_folder(sub, "*.npz")
    if not any(root.iterdir()):
        root.rmdir()
    return removed


def _clear_folder(folder: Path, pattern: str) -> int:
    """Delete the files matching ``pattern`` and leftover ``.tmp-*`` files in ``folder``, then
    the folder if that left it empty; how many files went."""
    if not folder.is_dir():
        return 0
    removed = 0
    for path in [*folder.glob(pattern), *folder.glob(".tmp-*")]:
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    if not any(folder.iterdir()):
        folder.rmdir()
    return removed


def _sha256_of(parts: Iterable[bytes]) -> bytes:
    h = hashlib.sha256()
    for data in parts:
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: no ambiguous joins
        h.update(data)
    return h.digest()


def cache_key(model_fingerprint: str, context: str, response: str) -> str:
    return _sha256_of(part.encode("utf-8") for part in (CACHE_VERSION, model_fingerprint, context, response)).hex()


def entry_digest(key: str, arrays: Mapping[str, np.ndarray]) -> bytes:
    """The checksum stored in an entry: sha256 over the entry format, the entry's ``key`` and,
    for each schema array, its name, dtype, shape and bytes. Binding the key means an entry
    copied or linked under another key's name fails the check instead of serving its numbers."""

    def parts() -> Iterator[bytes]:
        yield ENTRY_FORMAT
        yield key.encode("ascii")
        for name in ENTRY_SCHEMA:
            arr = np.ascontiguousarray(arrays[name])
            yield name.encode("ascii")
            yield arr.dtype.str.encode("ascii")
            yield ",".join(map(str, arr.shape)).encode("ascii")
            yield arr.tobytes()

    return _sha256_of(parts())


def scores_problem(arrays: Mapping[str, np.ndarray]) -> str | None:
    """What makes ``arrays`` impossible token scores under the schema (``TokenScores``, §4),
    naming the array and the token; None when they are possible."""
    for name, (dtype, ndim) in ENTRY_SCHEMA.items():
        arr = arrays[name]
        if arr.dtype != dtype or arr.ndim != ndim:
            return f"{name}: {arr.dtype} of shape {arr.shape}, expected {dtype} of rank {ndim}"
    n = len(arrays["token_ids"])
    for name in ENTRY_SCHEMA:
        if len(arrays[name]) != n:
            return f"{name}: {len(arrays[name])} values for {n} tokens"
    offsets, logprobs = arrays["offsets"], arrays["logprobs"]
    if offsets.shape[1] != 2:
        return f"offsets: shape {offsets.shape}, expected ({n}, 2)"
    checks = [
        ("token_ids", arrays["token_ids"] >= 0, "a token id must be >= 0"),
        ("offsets", offsets[:, 0] >= 0, "a span must start at or after 0"),
        ("offsets", offsets[:, 0] <= offsets[:, 1], "a span must not end before it starts"),
        # NaN only for the first token, which may have nothing before it (§4); -inf is not a
        # log-softmax value of a real token either, and > 0 is not a log-probability.
        ("logprobs", (np.isfinite(logprobs) & (logprobs <= 0)) | ((np.arange(n) == 0) & np.isnan(logprobs)),
         "a log-prob must be finite and <= 0 (NaN only for the first token)"),
    ]
    for name, ok, rule in checks:
        if not ok.all():
            token = int(np.argmin(ok))
            return f"{name}: {arrays[name][token].tolist()} at token {token}; {rule}"
    return None


class DamagedEntry(Exception):
    """An entry that must not be served; the message (logged) says why. ``identity`` is the
    (device, inode) of the file that was read, when one was."""

    def __init__(self, reason: str, identity: tuple[int, int] | None = None) -> None:
        super().__init__(reason)
        self.identity = identity


class StaleEntry(DamagedEntry):
    """A sound entry of an older format (no checksum): re-scored once, logged quietly."""


# Never follow a symlink (no cache writer makes one) and never block on a FIFO in the entry's place.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _read_entry_file(path: Path) -> tuple[bytes, tuple[int, int]]:
    """The bytes of the regular file at ``path`` and its (device, inode). FileNotFoundError when
    nothing is there; DamagedEntry when what is there is not a readable regular file."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as err:  # ELOOP: a symlink; EISDIR/EACCES: a directory (Windows), unreadable
        raise DamagedEntry(f"cannot be opened ({err.strerror or err})") from err
    try:
        info = os.fstat(fd)
        identity = (info.st_dev, info.st_ino)
        if not stat.S_ISREG(info.st_mode):
            raise DamagedEntry("not a regular file", identity)
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(), identity
    finally:
        os.close(fd)


_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_npy(raw: bytes, name: str, dtype: np.dtype, ndim: int) -> np.ndarray:
    """One ``.npy`` member, strictly: the header must declare ``dtype``, rank ``ndim`` and a shape
    that matches the data's length exactly. (``np.load`` allocates whatever shape a damaged header
    declares before it reads any data, and accepts any dtype.)"""
    fp = io.BytesIO(raw)
    version = np.lib.format.read_magic(fp)
    read_header = _NPY_HEADER_READERS.get(version)
    if read_header is None:
        raise DamagedEntry(f"{name}: unknown .npy version {version}")
    shape, fortran_order, stored_dtype = read_header(fp)
    if stored_dtype != dtype or len(shape) != ndim or fortran_order:
        raise DamagedEntry(f"{name}: stored as {stored_dtype} of shape {shape}, expected {dtype} of rank {ndim}")
    data = raw[fp.tell():]
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise DamagedEntry(f"{name}: {len(data)} data bytes for shape {shape}")
    return np.frombuffer(data, dtype).reshape(shape).copy()  # a copy: writable, like np.load's


def _parse_entry(key: str, data: bytes) -> TokenScores:
    """The scores in an entry's bytes, once every check in the module docstring has passed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = set(zf.namelist())
            if members == {f"{name}.npy" for name in ENTRY_SCHEMA}:
                raise StaleEntry("stale: written before entries had a checksum")
            if members != {f"{name}.npy" for name in (*ENTRY_SCHEMA, DIGEST)}:
                raise DamagedEntry(f"unexpected members {sorted(members)}")
            arrays = {name: _read_npy(zf.read(f"{name}.npy"), name, dtype, ndim)
                      for name, (dtype, ndim) in ENTRY_SCHEMA.items()}
            stored_digest = _read_npy(zf.read(f"{DIGEST}.npy"), DIGEST, np.dtype("|u1"), 1)
    except DamagedEntry:
        raise
    except Exception as err:  # the bytes are untrusted: any parser failure means damage
        raise DamagedEntry(f"unreadable ({type(err).__name__}: {err})") from err
    if stored_digest.tobytes() != entry_digest(key, arrays):
        raise DamagedEntry("checksum mismatch: the numbers changed, or the entry is another key's")
    problem = scores_problem(arrays)
    if problem is not None:
        raise DamagedEntry(problem)
    return TokenScores(**arrays)


def _remove_if_unchanged(path: Path, identity: tuple[int, int] | None) -> None:
    """Remove what is at ``path`` if it is still the file that was read (``identity``): a writer
    may have renamed a sound entry into place since, and that one must stay. A directory or a
    symlink is never a writer's entry, so it goes whenever it is there. (A rename landing
    between the lstat and the unlink costs one re-score, never wrong numbers.)"""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    elif stat.S_ISLNK(info.st_mode) or identity == (info.st_dev, info.st_ino):
        path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable. POSIX only: Windows cannot open a directory."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush and fsync it, then rename it over
    ``path``: readers see the old file or the new one, and a power loss cannot leave the name
    pointing at unwritten (0-byte) data."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)  # a directory in the entry's place blocks the rename
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _check_cache_root(root: Path) -> None:
    """Fail at once, naming the path, when ``root`` or a folder above it is not a directory,
    rather than with a bare FileExistsError at the first write deep inside a scoring job."""
    for folder in (root, *root.parents):
        if folder.exists():
            if folder.is_dir():
                return
            where = "" if folder == root else f": {folder} is not a directory"
            raise ValueError(f"token cache directory {root} is not a directory{where}")


class TokenCache:
    """Token scores by :func:`cache_key`; see the module docstring for what is checked and why.
    ``hits``/``misses`` count :meth:`get` results; ``dropped`` counts damaged entries removed."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        _check_cache_root(self.root)
        self.hits = 0
        self.misses = 0
        self.dropped = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> TokenScores | None:
        """The stored scores of ``key``, or None (a miss) when there is no sound entry."""
        scores = self._load(key)
        if scores is None:
            self.misses += 1
        else:
            self.hits += 1
        return scores

    def _load(self, key: str) -> TokenScores | None:
        path = self._path(key)
        identity = None
        try:
            data, identity = _read_entry_file(path)
            return _parse_entry(key, data)
        except FileNotFoundError:
            return None
        except DamagedEntry as damage:
            self._drop(key, path, damage, damage.identity or identity)
            return None

    def _drop(self, key: str, path: Path, damage: DamagedEntry, identity: tuple[int, int] | None) -> None:
        try:
            _remove_if_unchanged(path, identity)
        except OSError as err:  # e.g. the shard is not a directory: put() will say so
            log.warning("token cache: could not remove damaged entry %s (%s): %s", key, path, err)
        self.dropped += 1
        level = logging.INFO if isinstance(damage, StaleEntry) else logging.WARNING
        log.log(level, "token cache: dropped entry %s (%s), it will be scored again: %s", key, path, damage)

    def put(self, key: str, scores: TokenScores) -> None:
        """Store ``scores`` under ``key``, with their checksum. Raises ValueError, naming the key
        and the array, for scores the schema rules out: they would never be served anyway."""
        arrays = _entry_arrays(key, scores)
        buf = io.BytesIO()
        # Numeric arrays only (nothing to unpickle); passing allow_pickle by name also keeps the
        # ** unpacking from being matched against that bool parameter.
        np.savez(buf, allow_pickle=False, **arrays, **{DIGEST: np.frombuffer(entry_digest(key, arrays), np.uint8)})
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, buf.getvalue())

    def __contains__(self, key: str) -> bool:
        """Whether a sound entry is stored (a damaged one is dropped on the way)."""
        return self._load(key) is not None

    # ---- backend profiles (rdpt_core.backends.base.ProfileStore) --------------------------------
    def _profile_path(self, fingerprint: str) -> Path:
        if not _FINGERPRINT.fullmatch(fingerprint):
            raise ValueError(f"token cache: not a model fingerprint: {fingerprint!r}")
        return self.root / PROFILES / f"{fingerprint}.json"

    def get_profile(self, fingerprint: str) -> dict[str, Any] | None:
        """The profile a backend stored for ``fingerprint`` (what it needs to open without its
        tokenizer), or None. Checked like an entry: a regular file whose digest covers the
        fingerprint and the profile; anything else is dropped and the backend rebuilds it."""
        path = self._profile_path(fingerprint)
        identity = None
        try:
            data, identity = _read_entry_file(path)
            stored = json.loads(data)
            if not (isinstance(stored, dict) and stored.get("digest") == _profile_digest(fingerprint, stored.get("profile"))):
                raise DamagedEntry("its digest does not match", identity)
            return dict(stored["profile"])
        except FileNotFoundError:
            return None
        except (DamagedEntry, ValueError, TypeError) as damage:  # ValueError: not JSON, not UTF-8
            try:
                _remove_if_unchanged(path, getattr(damage, "identity", None) or identity)
            except OSError:
                pass
            log.warning("token cache: dropped profile %s (%s): %s", fingerprint, path, damage)
            return None

    def put_profile(self, fingerprint: str, profile: dict[str, Any]) -> None:
        path = self._profile_path(fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = {"profile": profile, "digest": _profile_digest(fingerprint, profile)}
        _write_atomically(path, json.dumps(stored, sort_keys=True).encode())


PROFILES = "profiles"  # <root>/profiles/<fingerprint>.json
_FINGERPRINT = re.compile(r"[0-9a-f]{16,64}")


def _profile_digest(fingerprint: str, profile: Any) -> str:
    return hashlib.sha256(json.dumps([ENTRY_FORMAT.decode(), fingerprint, profile], sort_keys=True).encode()).hexdigest()


def _entry_arrays(key: str, scores: TokenScores) -> dict[str, np.ndarray]:
    """``scores`` in the schema's dtypes (same-kind casts only: int32 ids become int64, a float
    never becomes an id), checked against the schema."""
    arrays = {}
    for name, arr in scores.to_arrays().items():
        dtype, _ = ENTRY_SCHEMA[name]
        try:
            arrays[name] = np.ascontiguousarray(np.asarray(arr).astype(dtype, casting="same_kind"))
        except TypeError as err:
            raise ValueError(f"token cache: cannot store scores for key {key}: {name} is {arr.dtype}, "
                             f"expected {dtype}") from err
    problem = scores_problem(arrays)
    if problem is not None:
        raise ValueError(f"token cache: refusing to store scores for key {key}: {problem}")
    return arrays
