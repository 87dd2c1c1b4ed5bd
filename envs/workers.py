"""Worker pools of the evaluation runner: threads for light suites, processes for heavy ones.

Both pools have the same small interface, driven by :func:`ponder.envs.runner.run_eval`:
``free()`` (idle slots), ``submit(index, episode)``, ``collect(wait)`` (finished ``(index, result)``
pairs, timed-out episodes included as failures ``timeout``) and ``close()``.

* :class:`ThreadPool` runs each episode in a daemon thread of the main process, sharing one model.
  A timed-out thread cannot be killed: it is recorded as ``timeout`` at once, its slot is reused,
  and the suite is asked to stop at its next step (``ctx.extra["deadline"]``); whatever it returns
  later is dropped.
* :class:`ProcessPool` runs ``W`` spawned worker processes, each loading the model once and holding
  its own game processes or browser; a timed-out worker is killed with its whole process group and
  replaced. A worker that dies records its episode as ``env_error``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any

from ponder.core.errors import ConfigError, PonderError
from ponder.core.settings import Settings
from ponder.core.tracing import configure_tracing, flush_tracing
from ponder.envs.base import Episode, EpisodeResult, EvalContext, Suite
from ponder.envs.context import EvalOptions, build_context, failed_result, with_deadline
from ponder.models.affinity import model_session
from ponder.models.base import ModelBackend

log = logging.getLogger(__name__)
Finished = tuple[int, EpisodeResult]


def play(suite: Suite, episode: Episode, ctx: EvalContext, timeout: float) -> EpisodeResult:
    """Play one episode with its deadline; our bugs become ``error`` records, configuration errors raise.

    The runner's bookkeeping is filled in where the suite left it out: episode wall time, samples,
    trials and the policy.
    """
    start = time.monotonic()
    try:
        with model_session(episode.id):  # a multi-server model keeps the episode on one server (prefix cache)
            result = suite.run_episode(episode, with_deadline(ctx, start + timeout))
    except ConfigError:
        raise
    except Exception as exc:  # a bug or a broken environment: record it, keep the run going
        log.warning("episode %s raised: %s", episode.id, "".join(traceback.format_exception_only(exc)).strip())
        result = failed_result(episode, ctx, "error", f"{type(exc).__name__}: {exc}")
    wall = time.monotonic() - start
    if result.usage.wall_seconds <= 0:
        result.usage.wall_seconds = round(wall, 4)
    result.metadata.setdefault("episode_seconds", round(wall, 4))
    return result


class ThreadPool:
    """``workers`` episodes at a time in threads of this process, sharing one context (one model)."""

    def __init__(self, suite: Suite, options: EvalOptions, settings: Settings,
                 model: ModelBackend | None = None) -> None:
        self.suite, self.options = suite, options
        self.ctx = build_context(options, settings, model)
        self._done: queue.Queue[tuple[int, EpisodeResult | None, BaseException | None]] = queue.Queue()
        self._running: dict[int, tuple[Episode, float]] = {}

    def free(self) -> int:
        """Idle slots."""
        return self.options.workers - len(self._running)

    def busy(self) -> bool:
        """Whether any episode is in flight."""
        return bool(self._running)

    def submit(self, index: int, episode: Episode) -> None:
        """Start ``episode`` in a new daemon thread."""
        self._running[index] = (episode, time.monotonic() + self.options.timeout)
        threading.Thread(target=self._work, args=(index, episode), daemon=True, name=f"episode-{index}").start()

    def _work(self, index: int, episode: Episode) -> None:
        try:
            self._done.put((index, play(self.suite, episode, self.ctx, self.options.timeout), None))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._done.put((index, None, exc))

    def collect(self, wait_s: float) -> list[Finished]:
        """Finished episodes (waiting up to ``wait_s`` for the first) and those past their deadline.

        Raises:
            ConfigError: re-raised from a worker (the run cannot go on).
        """
        out: list[Finished] = []
        if self._running:
            next_deadline = min(d for _, d in self._running.values())
            block = max(0.0, min(wait_s, next_deadline - time.monotonic()))
            try:
                item = self._done.get(timeout=block)
                while True:
                    out.extend(self._accept(*item))
                    item = self._done.get_nowait()
            except queue.Empty:
                pass
        now = time.monotonic()
        for index, (episode, deadline) in list(self._running.items()):
            if now > deadline:
                del self._running[index]
                out.append((index, _timeout(episode, self.options)))
        return out

    def _accept(self, index: int, result: EpisodeResult | None, exc: BaseException | None) -> list[Finished]:
        if index not in self._running:  # timed out earlier: already recorded
            return []
        del self._running[index]
        if exc is not None:
            raise exc
        assert result is not None
        return [(index, result)]

    def close(self) -> None:
        """Close the shared memory store; threads still running are daemons and die with the process."""
        _close_memory(self.ctx)


def _timeout(episode: Episode, options: EvalOptions) -> EpisodeResult:
    result = failed_result(episode, options, "timeout", f"episode exceeded the {options.timeout:g} s timeout",
                           status="timeout")
    result.usage.wall_seconds = options.timeout
    return result


def _close_memory(ctx: EvalContext) -> None:
    if ctx.memory_context is not None:
        ctx.memory_context.store.close()


def _process_main(conn: Connection, suite: Suite, options: EvalOptions, settings: Settings) -> None:
    """A worker process: build the context once, then play episodes sent over ``conn`` until ``None``."""
    os.setpgrp()  # its own process group: a timeout kills the worker and every game process it started
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    configure_tracing(settings)  # spans of its episodes too (flushed at its exit, bounded)
    try:
        ctx = build_context(options, settings)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("fatal", -1, f"{type(exc).__name__}: {exc}", isinstance(exc, ConfigError)))
        return
    conn.send(("ready", -1, None, None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        if job is None:
            break
        index, payload = job
        episode = Episode.model_validate(payload)
        try:
            result = play(suite, episode, ctx, options.timeout)
            conn.send(("result", index, result.model_dump(mode="json"), None))
        except BaseException as exc:  # noqa: BLE001 - ConfigError and worse: the run stops
            conn.send(("fatal", index, f"{type(exc).__name__}: {exc}", isinstance(exc, ConfigError)))
            break
    _close_memory(ctx)
    flush_tracing()


class _Slot:
    def __init__(self, proc: Any, conn: Connection) -> None:
        self.proc, self.conn = proc, conn
        self.job: tuple[int, Episode, float] | None = None
        self.ready = False


class ProcessPool:
    """``workers`` spawned processes, each with its own context; timed-out workers are killed and replaced."""

    def __init__(self, suite: Suite, options: EvalOptions, settings: Settings) -> None:
        self.suite, self.options, self.settings = suite, options, settings
        self._mp = mp.get_context("spawn")
        self._slots = [self._spawn() for _ in range(options.workers)]

    def _spawn(self) -> _Slot:
        parent, child = self._mp.Pipe()
        proc = self._mp.Process(target=_process_main, args=(child, self.suite, self.options, self.settings),
                                daemon=True)
        proc.start()
        child.close()
        return _Slot(proc, parent)

    def free(self) -> int:
        """Idle slots."""
        return sum(1 for s in self._slots if s.job is None)

    def busy(self) -> bool:
        """Whether any episode is in flight."""
        return any(s.job is not None for s in self._slots)

    def submit(self, index: int, episode: Episode) -> None:
        """Send ``episode`` to an idle worker (it starts as soon as the worker is ready)."""
        slot = next(s for s in self._slots if s.job is None)
        slot.job = (index, episode, time.monotonic() + self.options.timeout + (0 if slot.ready else 120))
        slot.conn.send((index, episode.model_dump(mode="json")))

    def collect(self, wait_s: float) -> list[Finished]:
        """Finished episodes, dead workers' episodes (``env_error``) and timed-out ones (``timeout``).

        Raises:
            ConfigError: when a worker reports a configuration error.
            PonderError: when a worker cannot start (e.g. its model fails to load).
        """
        out: list[Finished] = []
        conns = {s.conn: s for s in self._slots}
        deadlines = [s.job[2] for s in self._slots if s.job is not None]
        block = max(0.0, min([wait_s, *(d - time.monotonic() for d in deadlines)]))
        for conn in wait(list(conns), timeout=block):
            slot = conns[conn]  # type: ignore[index]
            try:
                kind, index, payload, is_config = conn.recv()  # type: ignore[union-attr]
            except (EOFError, OSError):
                if not slot.ready:  # cannot even start: every episode would fail the same way
                    slot.proc.join(timeout=5)
                    raise PonderError(f"an evaluation worker process exited while starting (exit code "
                                      f"{slot.proc.exitcode}); see its error output above") from None
                out.extend(self._replace(slot, "the worker process died"))
                continue
            if kind == "ready":
                slot.ready = True
                if slot.job is not None:  # the model load does not count against the episode
                    slot.job = (slot.job[0], slot.job[1], time.monotonic() + self.options.timeout)
            elif kind == "result" and slot.job is not None and slot.job[0] == index:
                slot.job = None
                out.append((index, EpisodeResult.model_validate(payload)))
            elif kind == "fatal":
                if is_config:
                    raise ConfigError(str(payload).split(": ", 1)[-1])
                raise PonderError(f"evaluation worker failed: {payload}")
        now = time.monotonic()
        for slot in list(self._slots):
            if slot.job is not None and now > slot.job[2]:
                index, episode, _ = slot.job
                self._replace(slot)
                out.append((index, _timeout(episode, self.options)))
        return out

    def _replace(self, slot: _Slot, error: str | None = None) -> list[Finished]:
        """Kill ``slot``'s worker and start a fresh one; with ``error``, its episode becomes ``env_error``."""
        job = slot.job
        _kill(slot)
        self._slots[self._slots.index(slot)] = self._spawn()
        if job is None or error is None:
            return []
        return [(job[0], failed_result(job[1], self.options, "env_error", error))]

    def close(self) -> None:
        """Ask idle workers to stop, then kill whatever is left (with their process groups)."""
        for slot in self._slots:
            try:
                slot.conn.send(None)
            except (OSError, ValueError):
                pass
        end = time.monotonic() + 5
        for slot in self._slots:
            slot.proc.join(timeout=max(0.0, end - time.monotonic()) if slot.job is None else 0)
            _kill(slot)


def _kill(slot: _Slot) -> None:
    proc = slot.proc
    if proc.is_alive() and proc.pid is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.join(timeout=5)
    slot.conn.close()
