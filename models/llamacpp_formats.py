"""The GGUF format llama.cpp runs: the file as shipped, or a copy requantized once and cached.

The embedded model ships as Q4_1; requantized once to Q4_0 (llama.cpp's ``llama_model_quantize`` with
``allow_requantize``) the same weights decode faster on CPU (``benchmarks/formats.py``; the figures and the
accuracy of both formats are in ``benchmarks/README.md``). :func:`runtime_gguf` gives the file to load for a
format name:

* ``original``, or the format the file already has: the file itself.
* ``q4_0`` / ``q8_0``: a copy under ``<cache_dir>/llamacpp/formats/<sha256(source)[:16]>-<llama.cpp version>/
  <name>.<fmt>.gguf``, converted on first use (well under a second for the embedded model) and committed by an
  atomic rename; a sidecar manifest (``<file>.json``: size, SHA-256 and stat signature, written last) lets a later
  load detect a half-written or corrupted copy (re-hashing only when the stat signature changed) and rebuild it.
  The source's SHA-256 is remembered by its size, mtime and inode (:func:`ponder.models.gguf_cache.source_sha256`).
* A cache that cannot be written (read-only, full, not a folder) or a conversion llama.cpp refuses: the original
  file, with one warning per process.

``auto`` is resolved by the caller (:func:`resolve_format`): :data:`AUTO_FORMAT` for the embedded model, the file
as it is for any other GGUF. ``import llama_cpp`` happens inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError
from ponder.core.hashing import file_sha256
from ponder.core.io import write_atomic
from ponder.core.types import GgufFormat, choices

logger = logging.getLogger("ponder.models")

#: ``auto``'s format for the embedded model: the fastest at 8 concurrent sequences in ``benchmarks/formats.py``
#: among the formats without a significant quality loss. Q4_0 decodes fastest but loses real quality (teacher-forced
#: gold GSM8K solutions, ``benchmarks/format_accuracy.py --fidelity``: +0.29 nats/token [+0.24, +0.34] vs the shipped
#: Q4_1, top-1 agreement 79.5 %); Q8_0 is lossless (-0.001 [-0.006, +0.004], top-1 agreement 97.2 %) and has the
#: best batch ratio (figures: benchmarks/README.md, "Runtime format").
AUTO_FORMAT = "q8_0"
#: The formats a GGUF can be converted to, by llama.cpp ``llama_ftype`` value.
TARGETS: dict[str, int] = {"q4_0": 2, "q8_0": 7}
_MANIFEST_VERSION = 1

#: (source, format, cache dir) whose conversion failed in this process: warned once, not tried again.
_FAILED: set[tuple[str, str, str]] = set()
_LOCK = threading.Lock()
#: Copies this process converted.
_MADE_HERE: set[Path] = set()
_FILE_TYPES: dict[tuple[str, int, int, int], str] = {}


@dataclass(frozen=True)
class RuntimeFormat:
    """The GGUF file llama.cpp loads and how it relates to the file asked for.

    Attributes:
        path: The file to load.
        format: Its quantization (``q4_0``, ``q4_1``, ``q8_0``, ... or ``unknown``).
        source_format: The quantization of the file asked for.
        converted: Whether ``path`` is a converted copy rather than the source itself.
        cached: Whether the copy was already in the cache (``False`` when it was converted now, or not converted).
    """

    path: Path
    format: str
    source_format: str
    converted: bool
    cached: bool

    def info(self) -> dict[str, Any]:
        """The ``load_info["format"]`` entry: format, source_format, converted, cached and path."""
        return {"format": self.format, "source_format": self.source_format, "converted": self.converted,
                "cached": self.cached, "path": str(self.path)}


def describe_format(load_info: Mapping[str, Any]) -> str | None:
    """One line for ``--verbose``: the format that runs and how to get the other (``None``: not a llama.cpp model).

    >>> describe_format({"format": {"format": "q4_0", "source_format": "q4_1", "converted": True}})
    'runs q4_0 (converted once from the shipped q4_1; the original: PONDER_LLAMACPP_FORMAT=original)'
    """
    info = load_info.get("format")
    if not isinstance(info, Mapping):
        return None
    if info.get("converted"):
        return (f"runs {info.get('format')} (converted once from the shipped {info.get('source_format')}; "
                "the original: PONDER_LLAMACPP_FORMAT=original)")
    return f"runs the GGUF as shipped ({info.get('format')}; a converted copy: PONDER_LLAMACPP_FORMAT=q4_0 or q8_0)"


def format_metadata(load_info: Mapping[str, Any]) -> dict[str, object]:
    """The record's ``metadata`` entry for the GGUF format that ran: ``{"model_format": {...}}``, or ``{}``."""
    info = load_info.get("format")
    if not isinstance(info, Mapping):
        return {}
    return {"model_format": {k: info.get(k) for k in ("format", "source_format", "converted")}}


def resolve_format(fmt: GgufFormat | str, *, embedded: bool) -> str:
    """The concrete format for a setting value: ``auto`` is :data:`AUTO_FORMAT` for the embedded model only.

    Raises:
        ConfigError: for a value that is no :data:`~ponder.core.types.GgufFormat`.
    """
    if fmt not in choices(GgufFormat):
        raise ConfigError(f"unknown llamacpp_format {fmt!r}; expected one of: {', '.join(choices(GgufFormat))}")
    if fmt == "auto":
        return AUTO_FORMAT if embedded else "original"
    return str(fmt)


def gguf_file_type(path: Path) -> str:
    """The quantization a GGUF declares (``general.file_type``, e.g. ``q4_1``), read by llama.cpp (vocab only).

    Remembered per process by path, size, mtime and inode. ``unknown`` when the file declares none.
    """
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _FILE_TYPES:
        _FILE_TYPES[key] = _read_file_type(path)
    return _FILE_TYPES[key]


def _read_file_type(path: Path) -> str:
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    with _quiet_llama():
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        return "unknown"
    try:
        buf = ctypes.create_string_buffer(32)
        if llama_cpp.llama_model_meta_val_str(model, b"general.file_type", buf, len(buf)) < 0:
            return "unknown"
        value = int(buf.value or b"-1")
    except ValueError:
        return "unknown"
    finally:
        llama_cpp.llama_model_free(model)
    names = {v: k for k, v in vars(llama_cpp).items() if k.startswith("LLAMA_FTYPE_MOSTLY_") and isinstance(v, int)}
    name = names.get(value, "ALL_F32" if value == 0 else "unknown")
    return name.removeprefix("LLAMA_FTYPE_MOSTLY_").lower()


@contextlib.contextmanager
def _quiet_llama() -> Any:
    """Keep llama.cpp's per-tensor log lines off stderr (llama-cpp-python's logger prints INFO unless told not to)."""
    import llama_cpp.llama  # noqa: F401 - installs llama-cpp-python's log callback

    log = logging.getLogger("llama-cpp-python")
    level = log.level
    log.setLevel(logging.CRITICAL + 1)  # its level map predates ggml's: warnings arrive as ERROR
    try:
        yield
    finally:
        log.setLevel(level)


def runtime_gguf(source: Path, fmt: str, cache_dir: Path, *,
                 progress: Callable[[str], None] | None = None) -> RuntimeFormat:
    """The file llama.cpp should load to run ``source`` in format ``fmt`` (converted and cached when needed).

    Args:
        source: The GGUF file asked for.
        fmt: ``original``, ``q4_0`` or ``q8_0`` (resolve ``auto`` first with :func:`resolve_format`).
        cache_dir: ponder's cache directory (copies go to ``llamacpp/formats/``).
        progress: Called with one line before a conversion; default: an INFO log line.

    Raises:
        ConfigError: for an unknown format.
    """
    source = Path(source)
    source_format = gguf_file_type(source)
    if fmt == "original" or fmt == source_format:
        return RuntimeFormat(source, source_format, source_format, converted=False, cached=False)
    if fmt not in TARGETS:
        raise ConfigError(f"cannot convert a GGUF to {fmt!r}; expected one of: original, {', '.join(TARGETS)}")
    failed = (str(source), fmt, str(cache_dir))
    if failed in _FAILED:  # warned once already
        return RuntimeFormat(source, source_format, source_format, converted=False, cached=False)
    try:
        target = cached_path(source, source_format, fmt, Path(cache_dir).expanduser())
        if _valid(target):  # converted earlier (by this process: cached is False, as for its first load)
            return RuntimeFormat(target, fmt, source_format, converted=True, cached=target not in _MADE_HERE)
        (progress or logger.info)(f"converting {source.name} from {source_format} to {fmt} once "
                                  f"(cached as {target})")
        _convert(source, target, TARGETS[fmt])
        _MADE_HERE.add(target)
    except (OSError, RuntimeError) as exc:
        with _LOCK:
            _FAILED.add(failed)
        logger.warning("could not convert %s to %s (%s: %s); running the original file instead",
                       source.name, fmt, type(exc).__name__, exc)
        return RuntimeFormat(source, source_format, source_format, converted=False, cached=False)
    return RuntimeFormat(target, fmt, source_format, converted=True, cached=False)


def cached_path(source: Path, source_format: str, fmt: str, cache_dir: Path) -> Path:
    """Where the ``fmt`` copy of ``source`` lives (hashing the source unless its stat signature is remembered)."""
    import llama_cpp

    from ponder.models.gguf_cache import source_sha256

    digest = source_sha256(source, cache_dir)
    stem = source.name.removesuffix(".gguf")
    suffix = f".{source_format}"
    if stem.lower().endswith(suffix):
        stem = stem[: -len(suffix)]
    return cache_dir / "llamacpp" / "formats" / f"{digest[:16]}-{llama_cpp.__version__}" / f"{stem}.{fmt}.gguf"


def _manifest_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _valid(target: Path) -> bool:
    """Whether ``target`` matches its manifest (re-hashed only when its stat signature changed)."""
    try:
        meta = json.loads(_manifest_path(target).read_text(encoding="utf-8"))
        if meta.get("version") != _MANIFEST_VERSION or target.stat().st_size != meta["size"]:
            raise ValueError("size differs from the manifest")
        if meta.get("stat") != _stat_key(target) and file_sha256(target) != meta["sha256"]:
            raise ValueError("checksum mismatch")
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("converted GGUF %s is invalid (%s); converting again", target, exc)
        return False


def _convert(source: Path, target: Path, ftype: int) -> None:
    """Requantize ``source`` into a temporary file beside ``target``, rename it over ``target``, write the manifest.

    Raises:
        OSError: when the folder or a file cannot be written.
        RuntimeError: when llama.cpp refuses the conversion.
    """
    import llama_cpp

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.allow_requantize = True
        params.nthread = max(1, min(4, os.cpu_count() or 1))
        with _quiet_llama():
            rc = llama_cpp.llama_model_quantize(str(source).encode(), tmp.encode(), ctypes.byref(params))
        if rc != 0:
            raise RuntimeError(f"llama_model_quantize returned {rc}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the cache from other users of a shared cache dir
        _manifest_path(target).unlink(missing_ok=True)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    meta = {"version": _MANIFEST_VERSION, "source": str(source), "size": target.stat().st_size,
            "sha256": file_sha256(target), "stat": _stat_key(target)}
    write_atomic(_manifest_path(target), json.dumps(meta, indent=1))

