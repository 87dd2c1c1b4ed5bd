"""On-disk cache of built indexes: one directory per key, written atomically, verified on load.

A cache entry is a directory ``<cache_dir>/search/<kind>-<key>/`` holding the index files and a
``manifest.json`` (written last) with the SHA-256 and size of every file. An entry without a manifest,
or whose files do not match it, or that fails to load, is rebuilt. New entries are written to a
temporary sibling directory and renamed into place, so a crash never leaves a half-written entry
under the final name, and two processes building at once both end with a valid entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from ponder.core.hashing import file_sha256
from ponder.core.io import fresh_dir

__all__ = ["MANIFEST", "cache_key", "entry_dir", "load_or_build"]

logger = logging.getLogger("ponder.search")

MANIFEST = "manifest.json"
T = TypeVar("T")
Source = Literal["built", "cache"]


def cache_key(*parts: str) -> str:
    """A short hex SHA-256 of ``parts`` (e.g. the corpus hash and an index version string)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def entry_dir(cache_dir: Path, kind: str, key: str) -> Path:
    """The cache directory of one index: ``<cache_dir>/search/<kind>-<key>``."""
    return Path(cache_dir).expanduser() / "search" / f"{kind}-{key}"


def _write_manifest(folder: Path, meta: dict[str, object]) -> None:
    files = {
        p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
    (folder / MANIFEST).write_text(json.dumps({**meta, "files": files}, indent=1))


def _verify(folder: Path) -> None:
    """Raise ``ValueError`` unless every file listed in the manifest is present and intact."""
    manifest = json.loads((folder / MANIFEST).read_text())
    for name, info in manifest["files"].items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != info["size"] or file_sha256(path) != info["sha256"]:
            raise ValueError(f"{name} is missing or does not match the manifest")


def load_or_build(
    folder: Path,
    *,
    load: Callable[[Path], T],
    build: Callable[[], T],
    save: Callable[[T, Path], None],
    what: str,
    meta: dict[str, object] | None = None,
) -> tuple[T, Source]:
    """Load a cached object from ``folder``, or build it and cache it there.

    Args:
        folder: The cache entry (see :func:`entry_dir`).
        load: Reads the object from a verified entry; any exception means "rebuild".
        build: Builds the object from scratch.
        save: Writes the object's files into an empty directory.
        what: A name for log messages (``"BM25 index"``).
        meta: Extra fields for the manifest (versions, document count).

    Returns:
        The object and where it came from: ``"cache"`` or ``"built"``. When the cache cannot be
        written (read-only disk) the built object is still returned, and a warning is logged.
    """
    stale = False
    if (folder / MANIFEST).is_file():
        try:
            _verify(folder)
            obj = load(folder)
            logger.debug("loaded %s from %s", what, folder)
            return obj, "cache"
        except Exception as exc:  # any damage to the cache means "rebuild"
            logger.warning("cached %s at %s is unusable (%s); rebuilding it", what, folder, exc)
            stale = True
    elif folder.exists():
        stale = True  # a directory without a manifest: an interrupted write from an older version

    start = time.perf_counter()
    logger.info("building %s ...", what)
    obj = build()
    logger.info("built %s in %.1f s", what, time.perf_counter() - start)
    _store(obj, folder, save, what, stale, meta or {})
    return obj, "built"


def _store(obj: T, folder: Path, save: Callable[[T, Path], None], what: str, stale: bool,
           meta: dict[str, object]) -> None:
    tmp: Path | None = None
    try:
        tmp = fresh_dir(folder)
        save(obj, tmp)
        _write_manifest(tmp, {**meta, "created": time.time()})
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
            tmp = None
        except OSError:
            # another process renamed its own (equivalent) entry into place first: keep that one
            logger.debug("%s cache entry %s already exists; keeping it", what, folder)
    except OSError as exc:
        logger.warning("could not cache %s under %s (%s); it will be rebuilt next time", what, folder.parent, exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
