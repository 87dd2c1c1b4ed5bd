"""The Ray cluster of ``ponder eval --executor ray``: import, connect, what one shard needs, how many fit.

Only this module and :mod:`ponder.envs.ray_shard` / :mod:`ponder.envs.ray_executor` import ``ray`` (the
``ray`` extra); without it every entry point raises :class:`~ponder.core.errors.MissingExtraError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError, MissingExtraError
from ponder.core.model_spec import parse_spec

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.envs.base import Suite
    from ponder.envs.context import EvalOptions

FEATURE = "ponder eval --executor ray"
#: Seconds to wait for a TCP connection to ``--ray-address`` before giving up.
CONNECT_TIMEOUT_S = 5.0


def import_ray() -> ModuleType:
    """The ``ray`` module.

    Raises:
        MissingExtraError: naming the ``ray`` extra when Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "ray", FEATURE) from None
    return ray


@contextlib.contextmanager
def connect(address: str | None, *, verbose: bool = False) -> Iterator[ModuleType]:
    """Ray for one run, disconnected (a local instance shut down) at the end.

    A Ray already initialized in this process is used as it is; else a local instance is started for this run
    (``address`` ``None``) or the cluster at ``address`` is joined (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``).

    Ray's own log lines stay off the terminal unless ``verbose``.

    Raises:
        ConfigError: when the cluster cannot be reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address not in (None, "auto"):
        check_reachable(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet: dict[str, Any] = {"logging_level": logging.INFO if verbose else logging.ERROR, "log_to_driver": verbose}
    try:
        client = address is not None and address.startswith("ray://")  # Ray Client takes no dashboard option
        ray.init(address=address or "local", **quiet, **({} if client else {"include_dashboard": False}))
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        ray.shutdown()
        hint = "" if address is None or isinstance(exc, ValueError) or os.environ.get("RAY_AUTH_MODE") else (
            " (a cluster with token authentication also needs RAY_AUTH_MODE=token here, and its token in "
            "~/.ray/auth_token or RAY_AUTH_TOKEN)")
        raise ConfigError(f"--ray-address {address or 'local'}: cannot start or join Ray: {exc}{hint}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast when nothing accepts a TCP connection at ``HOST:PORT`` (``ray://HOST:PORT``).

    ``ray.init`` keeps retrying an address where no cluster listens for minutes, printing its own warnings;
    this check makes a wrong ``--ray-address`` one clear error within ``timeout`` seconds. An address that
    is not ``HOST:PORT`` is left to Ray to judge.

    Raises:
        ConfigError: when the connection is refused, unreachable or times out.
    """
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                          "start one with 'ray start --head --port PORT' or check the address") from None


@dataclass(frozen=True)
class ShardResources:
    """What one shard asks Ray for: a CPU per worker of the single-machine runner, a GPU for a local GPU model."""

    num_cpus: float
    num_gpus: float

    def options(self) -> dict[str, float]:
        """Keyword arguments of ``.options(...)`` (``num_gpus`` only when one is needed)."""
        return {"num_cpus": self.num_cpus, **({"num_gpus": self.num_gpus} if self.num_gpus else {})}


def uses_local_gpu(options: EvalOptions, settings: Settings) -> bool:
    """Whether each shard loads the model itself onto a GPU (transformers/embedded with a ``cuda`` device)."""
    return (uses_local_model(options, settings) and parse_spec(settings.model).kind != "llamacpp"
            and settings.device.startswith("cuda"))


def uses_local_model(options: EvalOptions, settings: Settings) -> bool:
    """Whether each shard computes with a model of its own (``embedded``, ``llamacpp``, ``transformers``)."""
    return options.policy == "agent" and parse_spec(settings.model).kind in ("embedded", "llamacpp", "transformers")


def shard_resources(suite: Suite, options: EvalOptions, settings: Settings) -> ShardResources:
    """Resources of one shard running ``options.workers`` workers (threads or processes) of ``suite``.

    A CPU per worker where the workers compute: worker processes (game and browser suites) or threads sharing a
    model loaded in the shard. One CPU for a thread suite whose threads wait on a served model (or play a
    harness policy): its ``--workers`` are concurrent requests, not CPUs, so ``--workers 32`` fits any node.
    """
    cpus = options.workers if suite.needs_process or uses_local_model(options, settings) else 1
    return ShardResources(num_cpus=float(cpus), num_gpus=1.0 if uses_local_gpu(options, settings) else 0.0)


def alive_nodes(ray: ModuleType) -> list[dict[str, Any]]:
    """The cluster's live nodes as ``ray.nodes()`` describes them."""
    return [n for n in ray.nodes() if n.get("Alive")]


def slots(ray: ModuleType, need: ShardResources) -> int:
    """Shards the live nodes can run at once.

    Raises:
        ConfigError: when no node can hold even one shard (it would wait forever).
    """
    total = 0
    for node in alive_nodes(ray):
        res = node.get("Resources", {})
        fits = int(res.get("CPU", 0) // need.num_cpus) if need.num_cpus else 1_000
        if need.num_gpus:
            fits = min(fits, int(res.get("GPU", 0) // need.num_gpus))
        total += fits
    if total == 0:
        gpu = f" and {need.num_gpus:g} GPU" if need.num_gpus else ""
        raise ConfigError(f"no Ray node has {need.num_cpus:g} CPUs{gpu} free for one shard (--workers sets a "
                          "shard's CPUs); lower --workers or add nodes")
    return total


def short_node_id(node_id: str) -> str:
    """The first 8 hex digits of a Ray node id (nodes on one host share an IP, so the id tells them apart)."""
    return node_id[:8]
