"""``--ray-address`` where no cluster listens: one clear error in about a second, not Ray's minutes of retries."""

from __future__ import annotations

import socket
import time

import pytest

from ponder.core.errors import ConfigError
from ponder.envs.ray_cluster import check_reachable, connect

pytest.importorskip("ray")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_address_where_nothing_listens_fails_fast() -> None:
    import ray

    assert not ray.is_initialized()
    address = f"127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(ConfigError, match=f"--ray-address {address}: no Ray cluster answers there"):
        with connect(address):
            pass
    assert time.monotonic() - start < 5 and not ray.is_initialized()


def test_a_listening_port_passes_and_other_forms_are_left_to_ray() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable(f"127.0.0.1:{server.getsockname()[1]}")
        check_reachable(f"ray://127.0.0.1:{server.getsockname()[1]}")
    for address in ("nonsense", "host:port", ":80"):
        check_reachable(address)  # not HOST:PORT: Ray's own error
    with pytest.raises(ConfigError, match="no Ray cluster"):
        check_reachable(f"ray://127.0.0.1:{_closed_port()}")


def test_a_malformed_address_is_one_line_without_the_token_hint(monkeypatch) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(ConfigError, match="--ray-address nonsense: cannot start or join Ray") as info:
        with connect("nonsense"):
            pass
    assert "RAY_AUTH_MODE" not in str(info.value) and "\n" not in str(info.value)
