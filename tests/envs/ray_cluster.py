"""A real two-node Ray cluster on this machine for the tests: a head and a worker node, each a ``ray start --block``.

Each node is its own process group (``start_new_session``), so a test can ``kill -9`` a whole node (the
``ray start`` process, its raylet, its object store and its worker processes) the way a machine dies. The cluster
has its own short ``--temp-dir`` under /tmp (Unix socket paths are limited to 107 characters) and its own free
ports. Teardown kills the process groups it started (never ``ray stop``: that kills every Ray process on the
machine, other tests' clusters included) and any process left that names the cluster's temp dir.

Both nodes report the same IP, so they are told apart by node id.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _fake_suite import FakeSuite

from ponder.envs.base import Episode, EpisodeResult, EvalContext

HERE = Path(__file__).resolve().parent
RAY = Path(sys.executable).parent / "ray"
START_TIMEOUT = 90.0  # seconds for both nodes to show up alive (~8 s + ~4 s here when the machine is idle)

#: Lists the cluster's nodes as JSON from a short-lived process: the test process itself never joins a cluster.
NODES_SCRIPT = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print("NODES", json.dumps([{"id": n["NodeID"], "alive": n["Alive"]} for n in ray.nodes()]))
"""


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_env(**extra: str) -> dict[str, str]:
    """The environment of the nodes (their workers inherit it): no ``PONDER_*`` of the user, no real model, the
    fake suites of ``tests/envs`` importable, no usage stats, no token authentication (Ray turns it on by itself
    when ``~/.ray/auth_token`` exists, and a client without the token is then refused)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PONDER_", "RAY_"))}
    path = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "PONDER_FORBID_REAL_MODEL": "1", "PONDER_CONFIG": "/nonexistent/ponder.toml",
            "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1", **extra}


@dataclass
class RayNode:
    """One ``ray start --block`` process and its process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    node_id: str = ""  # Ray's node id, once the node is up

    @property
    def short_id(self) -> str:
        """The node id as records carry it (``metadata["node"]``)."""
        return self.node_id[:8]

    def pids(self) -> list[int]:
        """The node's processes: its process group and their descendants (Ray gives each worker process a
        process group of its own, and renames it, so the raylet's children are found by parent)."""
        table = parents()
        found = {pid for pid in table if pgid(pid) == self.proc.pid}
        grew = True
        while grew:
            more = {pid for pid, parent in table.items() if parent in found} - found
            found |= more
            grew = bool(more)
        return sorted(found)

    def kill(self) -> None:
        """``kill -9`` the whole node at once (as if its machine died) and reap the ``ray start`` process."""
        for pid in self.pids() or [self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def tail(self, chars: int = 3000) -> str:
        """The end of the node's output (for failure messages)."""
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return f"--- {self.name} (rc {self.proc.poll()}) ---\n{text[-chars:]}"


@dataclass
class RayCluster:
    """A head and worker nodes as separate process groups; ``address`` is the head's GCS address."""

    root: Path
    port: int
    env: dict[str, str]
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    def start_node(self, name: str, *, head: bool = False) -> RayNode:
        """Start one node (1 CPU, 100 MB object store, no dashboard) in a process group of its own."""
        args = [str(RAY), "start", "--block", "--num-cpus", "1", "--object-store-memory", "100000000",
                "--disable-usage-stats", "--dashboard-agent-listen-port", str(free_port()),
                "--ray-client-server-port", str(free_port()), "--metrics-export-port", str(free_port())]
        if head:
            args += ["--head", "--port", str(self.port), "--include-dashboard=false", "--dashboard-port",
                     str(free_port()), "--temp-dir", str(self.root)]
        else:
            args += ["--address", self.address]
        log = self.root / f"node-{name}.log"  # removed with the cluster (the failure messages quote its tail)
        with log.open("ab") as sink:
            proc = subprocess.Popen(args, env=self.env, stdout=sink, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        node = RayNode(name, proc, log)
        self.nodes.append(node)
        return node

    def add_worker(self, name: str, timeout: float = START_TIMEOUT) -> RayNode:
        """Start a worker node and wait until it is alive (the head too, the first time); its ``node_id`` is set.

        A node killed just before may still be listed alive for a while: the new one is the id not seen before.
        """
        if not self.head.node_id:
            (self.head.node_id,) = self.wait_alive(1)
        known = {str(n["id"]) for n in self.node_states()}
        node = self.start_node(name)
        deadline = time.monotonic() + timeout
        while not (new := set(self.alive_ids()) - known):
            if node.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker node {name} did not come up\n{self.tails()}")
            time.sleep(0.5)
        (node.node_id,) = new
        return node

    def node_states(self, timeout: float = 30.0) -> list[dict[str, object]]:
        """``ray.nodes()`` as ``[{"id", "alive"}]``, read by a short-lived process."""
        done = subprocess.run([sys.executable, "-c", NODES_SCRIPT, self.address], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        found = [line[6:] for line in done.stdout.splitlines() if line.startswith("NODES ")]
        if done.returncode != 0 or not found:
            raise RuntimeError(f"listing the nodes failed: {done.stdout[-1000:]}{done.stderr[-2000:]}")
        return json.loads(found[-1])

    def alive_ids(self) -> list[str]:
        return [str(n["id"]) for n in self.node_states() if n["alive"]]

    def wait_alive(self, count: int, timeout: float = START_TIMEOUT) -> list[str]:
        """Wait until ``count`` nodes are alive; their ids. Fails with the nodes' log tails."""
        deadline = time.monotonic() + timeout
        problem = ""
        while time.monotonic() < deadline:
            dead = [n for n in self.nodes if n.proc.poll() is not None]
            if dead:
                raise RuntimeError(f"a node exited while starting\n{self.tails()}")
            try:
                ids = self.alive_ids()
                if len(ids) >= count:
                    return ids
                problem = f"{len(ids)} of {count} nodes alive"
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                problem = str(exc)
            time.sleep(1.0)
        raise RuntimeError(f"the cluster did not come up in {timeout:.0f} s ({problem[-1500:]})\n{self.tails()}")

    def running(self, task: str) -> list[int]:
        """Worker processes of the nodes now running ``task`` (Ray titles them ``ray::<task>``)."""
        mine = {pid for node in self.nodes for pid in node.pids()}
        return [pid for pid, argv in processes() if pid in mine and argv[0].startswith(f"ray::{task}")]

    def tails(self) -> str:
        return "\n".join(node.tail() for node in self.nodes)

    def stop(self) -> None:
        """Kill every node's process group, then any process left that names this cluster's temp dir."""
        for node in self.nodes:
            node.kill()
        for pid in pids_naming(str(self.root)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def processes() -> list[tuple[int, list[str]]]:
    """Every process but this one as ``(pid, argv)``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            found.append((int(entry.name), argv))
    return found


def parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            table[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return table


def pgid(pid: int) -> int | None:
    """The process group of ``pid`` (``None`` once it is gone)."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def pids_naming(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (this cluster's temp dir: unique to it)."""
    return [pid for pid, argv in processes() if any(text in arg for arg in argv)]


def start_cluster(workers: int = 1, **env: str) -> RayCluster:
    """A head plus ``workers`` worker nodes, all alive (or a ``RuntimeError`` with the logs; nothing left running)."""
    root = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    # TMPDIR: what the nodes' workers leave in temp files (a killed shard's run directory) goes with the cluster
    cluster = RayCluster(root=root, port=free_port(), env=cluster_env(TMPDIR=str(root), **env))
    try:
        cluster.start_node("head", head=True)
        for i in range(workers):
            cluster.add_worker(f"worker{i + 1}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


@dataclass
class MarkedSuite(FakeSuite):
    """The fake suite, each episode first leaving a mark ``<marks>/<episode id>.<short node id>`` (where it started)."""

    marks: str | None = None

    def run_episode(self, episode: Episode, ctx: EvalContext) -> EpisodeResult:
        if self.marks:
            import ray

            node = ray.get_runtime_context().get_node_id()[:8] if ray.is_initialized() else "local"
            (Path(self.marks) / f"{episode.id}.{node}").touch()
        return super().run_episode(episode, ctx)


def marked_suite() -> MarkedSuite:
    """``RAY_TEST_EPISODES`` episodes (12) of ``RAY_TEST_SLEEP`` seconds (1.0) each, marks in ``RAY_TEST_MARKS``
    (a suite target for :data:`LAUNCHER`: the driver reads its environment, the nodes get the pickled suite)."""
    return MarkedSuite(name="rayslow", n=int(os.environ.get("RAY_TEST_EPISODES", "12")),
                       sleep=float(os.environ.get("RAY_TEST_SLEEP", "1.0")), marks=os.environ.get("RAY_TEST_MARKS"))


#: ``python -c LAUNCHER eval rayslow ...`` is ``ponder eval`` with :func:`marked_suite` registered as ``rayslow``.
LAUNCHER = (
    f"import sys; sys.path.insert(0, {str(HERE)!r}); "
    "from ponder.envs import registry; registry.SUITES['rayslow'] = 'ray_cluster:marked_suite'; "
    "from ponder.cli import main; sys.exit(main(sys.argv[1:]))"
)
