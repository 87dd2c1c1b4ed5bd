"""Loading GGUF files with llama.cpp: thread defaults, path checks, and the per-process model cache.

``import llama_cpp`` happens inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError, MissingExtraError, ModelError
from ponder.models.gguf_cache import find_embedded_gguf

if TYPE_CHECKING:
    from ponder.core.model_spec import ModelSpec

logger = logging.getLogger("ponder.models")

DEFAULT_N_CTX = 4096
GGUF_MAGIC = b"GGUF"
#: llama.cpp's ``LLAMA_DEFAULT_SEED``: the sampler draws a random seed. Explicit seeds are reduced below it.
RANDOM_SEED = 0xFFFFFFFF


@dataclass
class _Loaded:
    """A loaded ``Llama`` object with what every backend sharing it needs."""

    llama: Any
    load_seconds: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    piece_buf: Any = None
    engine: Any = None  # the continuous-batching Engine, created at the first generation


_MODELS: dict[tuple[str, int, int], _Loaded] = {}
_MODELS_LOCK = threading.Lock()


@atexit.register
def close_all() -> None:
    """Free every cached model and its engine (at exit, while llama_cpp's C functions still exist).

    Left to ``Llama.__del__`` at interpreter shutdown, llama-cpp-python's free functions may already be torn
    down, and each model prints ``TypeError: 'NoneType' object is not callable`` on the way out.
    """
    with _MODELS_LOCK:
        for loaded in _MODELS.values():
            if not loaded.lock.acquire(timeout=5.0):  # another thread is still creating the engine: leave it
                continue
            if loaded.engine is not None:
                with contextlib.suppress(Exception):
                    loaded.engine.close()
            with contextlib.suppress(Exception):
                loaded.llama.close()
        _MODELS.clear()


def default_threads() -> int:
    """Physical cores, minus the cores other work keeps busy right now (at least 1).

    llama.cpp's threads wait for each other at every token, so one thread more than the free cores is
    catastrophic (measured here: 4 tok/s with 2 threads against 39 with 1 while another job ran), while
    one thread too few costs at most about half. "Right now" is a 0.1 s sample of ``/proc/stat`` (the
    load average lags by a minute: right after a benchmark it still reports busy cores and halved the
    threads); the 1-minute load average is the fallback where ``/proc/stat`` is missing. Set
    ``llamacpp_threads`` to pin a number.
    """
    cores = physical_cores()
    busy = busy_cores()
    return max(1, min(cores, (os.cpu_count() or cores) - round(busy)))


def busy_cores(window: float = 0.1) -> float:
    """How many CPUs other processes keep busy, sampled over ``window`` seconds (this process excluded)."""
    def sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                fields = [int(x) for x in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        times = os.times()
        return float(sum(fields[:8]) - idle), times.user + times.system, time.monotonic()

    first = sample()
    if first is None:
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
    time.sleep(window)
    second = sample()
    if second is None:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy_s = (second[0] - first[0]) / ticks - (second[1] - first[1])
    return max(0.0, busy_s / max(second[2] - first[2], 1e-3))


def physical_cores() -> int:
    """Return the number of physical CPU cores this process may run on (at least 1).

    Reads ``/proc/cpuinfo`` (Linux), capped by the CPU affinity mask; falls back to ``os.cpu_count()``.
    """
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    physical = core = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not key and core:
                    cores.add((physical, core))
                    physical = core = ""
        if core:
            cores.add((physical, core))
    except OSError:
        pass
    return max(1, min(len(cores) or allowed, allowed))


def resolve_gguf(parsed: ModelSpec) -> Path:
    """Return the GGUF file a ``llamacpp`` spec names (the bundled SmolLM2 file when it names none).

    Raises:
        ConfigError: when the file is missing, is not a file, or does not start with the GGUF magic bytes.
    """
    if not parsed.path:
        return find_embedded_gguf()
    path = Path(parsed.path).expanduser()
    if not path.exists():
        raise ConfigError(f"model path not found: {path}")
    if not path.is_file():
        raise ConfigError(f"the llamacpp backend needs a .gguf file, but {path} is not a file")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise ConfigError(f"{path} is not a GGUF file (it does not start with {GGUF_MAGIC!r}); the llamacpp "
                          "backend reads GGUF files only (convert with llama.cpp's convert_hf_to_gguf.py)")
    return path


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise MissingExtraError("llama-cpp-python", "server", "the llamacpp backend") from None
    return llama_cpp


def load_llama(path: Path, *, n_ctx: int, n_threads: int, seed: int | None = None) -> tuple[_Loaded, bool]:
    """Load ``path`` with llama.cpp, or reuse the ``Llama`` object already loaded for the same arguments.

    The first load of a file in a process is preceded by the crash guard
    (:func:`ponder.models.llamacpp_probe.require_llamacpp`): a tiny decode in a child process, remembered per
    llama.cpp build, CPU and model file, so that a llama.cpp that crashes on this CPU never runs in-process.

    Returns:
        The loaded model and whether it was reused from the per-process cache.

    Raises:
        MissingExtraError: when ``llama-cpp-python`` is not installed.
        ConfigError: when llama.cpp crashed in the probe child (the message names the fix).
        ModelError: when llama.cpp fails to load the file.
    """
    from ponder.models.llamacpp_probe import require_llamacpp

    llama_cpp = _import_llama_cpp()
    key = (str(Path(path).resolve()), n_ctx, n_threads)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key], True
        require_llamacpp(Path(key[0]))
        start = time.perf_counter()
        try:
            llama = llama_cpp.Llama(
                model_path=key[0], n_ctx=n_ctx, n_batch=min(512, n_ctx), n_threads=n_threads,
                n_threads_batch=n_threads, logits_all=False, verbose=False,
                seed=RANDOM_SEED if seed is None else seed % RANDOM_SEED,
            )
        except Exception as exc:
            raise ModelError(f"llama.cpp could not load {path}: {type(exc).__name__}: {exc}") from exc
        loaded = _Loaded(llama, time.perf_counter() - start, piece_buf=ctypes.create_string_buffer(256))
        logger.info("loaded %s with llama.cpp (%d threads, n_ctx %d) in %.2f s",
                    path, n_threads, n_ctx, loaded.load_seconds)
        _MODELS[key] = loaded
        return loaded, False
