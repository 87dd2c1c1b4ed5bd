"""The llama.cpp crash guard: a tiny decode in a child process before llama.cpp runs in this one.

A llama.cpp built for another CPU (``-march=native`` with AMX kernels on a virtual machine that forbids AMX)
dies with SIGSEGV / SIGILL inside the first matrix multiplication, and a native crash cannot be
caught in-process. So before the first in-process use, :func:`check_llamacpp` runs
``python -m ponder.models.llamacpp_probe <file.gguf>``: it loads the model through ponder's own backend and
decodes a few tokens on one sequence and on a 2-sequence batch (the engine's multi-sequence context).

* The child exits 0: llama.cpp works here (``ok``).
* The child dies by a crash signal (SIGSEGV, SIGILL, SIGBUS, SIGFPE, SIGABRT, ...): llama.cpp crashes here
  (``crashed``); ``embedded`` falls back to transformers with one warning, ``--model llamacpp`` stops with a
  :class:`ConfigError` (exit code 2).
* Anything else -- an exit code (a Python exception, e.g. a truncated GGUF), a timeout, a kill from outside
  (SIGTERM, SIGKILL): ``failed``, never remembered. It is no crash: the in-process load goes ahead and
  raises its own clear error if the failure is real (a timeout or a kill is logged as a warning).

``ok`` and ``crashed`` are remembered under ``<cache_dir>/llamacpp/probe/<key>.json``, keyed by the llama.cpp
build (version and the size and mtime of its shared libraries), the CPU (``/proc/cpuinfo`` model and flags)
and the model file (path, size, mtime): the probe runs once per machine, build and model (about 1-2 s), and
again after a rebuild. Within a process the answer is also kept in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ponder.core.errors import ConfigError
from ponder.core.io import write_atomic

if TYPE_CHECKING:
    from ponder.core.settings import LlamaCppSettings

logger = logging.getLogger("ponder.models")

#: Bump when the child's decode changes, so that earlier answers are not trusted.
PROBE_VERSION = 1
TIMEOUT_S = 180.0
#: Signals by which a process dies of its own fault; others (SIGTERM, SIGKILL, SIGINT) come from outside.
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGFPE, signal.SIGABRT,
                           signal.SIGSYS, signal.SIGTRAP})
FIX = "rebuild llama-cpp-python with portable flags: `make install-server` in the ponder checkout (see README)"

#: Set in the probe child's environment: its own load must not probe again (``python -m`` runs this file as
#: ``__main__``, a module object apart from the ``ponder.models.llamacpp_probe`` the loader imports).
CHILD_ENV = "_PONDER_LLAMACPP_PROBE_CHILD"

_MEMO: dict[str, ProbeResult] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProbeResult:
    """What the probe found.

    Attributes:
        status: ``ok``, ``crashed`` (the child died by a crash signal) or ``failed`` (anything else).
        detail: How the child ended, e.g. ``killed by SIGSEGV`` or ``exit code 1: <its last stderr line>``.
        seconds: Wall time of the child (0 when the answer came from the cache).
        cached: Whether the answer was read from the cache instead of a new child.
    """

    status: Literal["ok", "crashed", "failed"]
    detail: str = ""
    seconds: float = 0.0
    cached: bool = False

    @property
    def ok(self) -> bool:
        """Whether llama.cpp may run in this process (everything but a crash)."""
        return self.status != "crashed"

    def problem(self) -> str:
        """One line naming what went wrong (for warnings and errors)."""
        if self.status == "crashed":
            return (f"llama.cpp crashes on this machine (a test decode in a child process was {self.detail}; "
                    "the installed llama-cpp-python was probably compiled for another CPU, e.g. -march=native "
                    "with AMX)")
        return f"llama.cpp's test decode in a child process was inconclusive ({self.detail})"


def build_identity() -> dict[str, object]:
    """The installed llama-cpp-python: version and (name, size, mtime) of its shared libraries."""
    try:
        dist = importlib.metadata.distribution("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        return {"version": None}
    libs = []
    for entry in dist.files or []:
        if ".so" in entry.name or entry.name.endswith((".dylib", ".dll")):
            with contextlib.suppress(OSError):
                st = Path(str(dist.locate_file(entry))).stat()
                libs.append([entry.name, st.st_size, st.st_mtime_ns])
    return {"version": dist.version, "libs": sorted(libs)}


def cpu_identity() -> dict[str, str]:
    """The CPU: machine, vendor, model name and feature flags of the first processor in ``/proc/cpuinfo``."""
    found = {"machine": platform.machine()}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("vendor_id", "model name", "flags", "Features", "CPU part") and key not in found:
                    found[key] = " ".join(sorted(value.split())) if key in ("flags", "Features") else value.strip()
                elif not key and len(found) > 1:
                    break
    return found


def probe_key(gguf: Path, command: Sequence[str] | None = None) -> str:
    """The cache key of a probe: build, CPU, model file and the child command."""
    st = gguf.stat()
    parts = {"probe": PROBE_VERSION, "build": build_identity(), "cpu": cpu_identity(),
             "model": [str(gguf.resolve()), st.st_size, st.st_mtime_ns], "command": list(command or [])}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def run_probe(gguf: Path, cache_dir: Path, *, command: Sequence[str] | None = None,
              timeout: float = TIMEOUT_S) -> ProbeResult:
    """Return whether llama.cpp runs ``gguf`` here, from the cache or from a new child process.

    Args:
        gguf: The model file to decode with.
        cache_dir: ponder's cache directory (answers go to ``llamacpp/probe/``).
        command: The child command; the GGUF path is appended. Default:
            ``[sys.executable, "-m", "ponder.models.llamacpp_probe"]``. Tests inject a child that crashes.
        timeout: Seconds before the child is killed (the answer is then ``failed``).
    """
    key = probe_key(gguf, command)
    path = cache_dir / "llamacpp" / "probe" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError, TypeError):
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("status") in ("ok", "crashed"):
            return ProbeResult(status=record["status"], detail=str(record.get("detail", "")), cached=True)
    result = _spawn(gguf, command, timeout)
    logger.info("llama.cpp probe of %s: %s %s (%.2f s)", gguf.name, result.status, result.detail, result.seconds)
    if result.status != "failed":
        record = {**asdict(result), "key": key, "model": str(gguf), "checked_at": time.time()}
        with contextlib.suppress(OSError):
            write_atomic(path, json.dumps(record) + "\n")
    return result


def _spawn(gguf: Path, command: Sequence[str] | None, timeout: float) -> ProbeResult:
    """Run the child once and classify how it ended."""
    from ponder.models.base import FORBID_REAL_MODEL_ENV

    cmd = [*(command or [sys.executable, "-m", "ponder.models.llamacpp_probe"]), str(gguf)]
    # The probe is ponder checking its own runtime, not a model call of a unit test; no core file on a crash.
    env = {k: v for k, v in os.environ.items() if k != FORBID_REAL_MODEL_ENV}
    env[CHILD_ENV] = "1"
    start = time.perf_counter()
    try:  # its own process group: a timeout kills everything it started
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                text=True, errors="replace", env=env, start_new_session=True,
                                preexec_fn=_no_core_dump)
    except OSError as exc:
        return ProbeResult("failed", f"could not start {cmd[0]}: {exc}", time.perf_counter() - start)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return ProbeResult("failed", f"no answer within {timeout:.0f} s", time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode)
        except ValueError:
            return ProbeResult("failed", f"killed by signal {-proc.returncode}", seconds)
        if sig in CRASH_SIGNALS:
            return ProbeResult("crashed", f"killed by {sig.name}", seconds)
        return ProbeResult("failed", f"killed by {sig.name} from outside", seconds)
    if proc.returncode:
        last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "no message")
        return ProbeResult("failed", f"exit code {proc.returncode}: {last[:300]}", seconds)
    return ProbeResult("ok", "decoded", seconds)


def _no_core_dump() -> None:
    import resource

    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _settings_or_default(settings: LlamaCppSettings | None) -> tuple[Path, list[str] | None]:
    if settings is None:
        from ponder.core.settings import default_cache_dir, load_settings

        try:
            settings = load_settings()
        except ConfigError:
            return default_cache_dir(), None
    return Path(settings.cache_dir), settings.llamacpp_probe_command


def check_llamacpp(gguf: Path, settings: LlamaCppSettings | None = None) -> ProbeResult:
    """The probe's answer for ``gguf`` on this machine, once per process (``settings``: cache dir, command).

    Inside the probe child itself the answer is ``ok`` without a probe.
    """
    if os.environ.get(CHILD_ENV):
        return ProbeResult("ok", "probe child")
    cache_dir, command = _settings_or_default(settings)
    key = probe_key(gguf, command)
    with _LOCK:
        if key not in _MEMO:
            result = run_probe(gguf, cache_dir, command=command)
            if result.status == "failed":
                level = logging.INFO if result.detail.startswith("exit code") else logging.WARNING
                logger.log(level, "%s; loading %s in-process anyway", result.problem(), gguf.name)
            _MEMO[key] = result
        return _MEMO[key]


def require_llamacpp(gguf: Path, settings: LlamaCppSettings | None = None) -> None:
    """Return when llama.cpp may run ``gguf`` in this process.

    Raises:
        ConfigError: when llama.cpp crashed in the probe child, with the cause and the fix on one line.
    """
    result = check_llamacpp(gguf, settings)
    if not result.ok:
        raise ConfigError(f"{result.problem()}; use another --model (e.g. transformers) or {FIX}")


def _child_main(argv: list[str]) -> int:
    """The probe child: load ``argv[0]`` with ponder's llama.cpp backend, decode 1 sequence, then 2 at once."""
    os.environ[CHILD_ENV] = "1"
    from ponder.models.base import GenerationParams
    from ponder.models.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend.load(Path(argv[0]), n_ctx=512, n_threads=1, seed=0)  # 1: never slowed by a busy CPU
    chat = [{"role": "user", "content": "What is 2 + 3?"}]
    backend.generate(chat, GenerationParams(max_tokens=4))
    other = [{"role": "user", "content": "Name a colour."}]
    backend.generate_batch([chat, other], GenerationParams(max_tokens=4, temperature=0.7, seed=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ponder.models.llamacpp_probe FILE.gguf")
    sys.exit(_child_main(sys.argv[1:]))
