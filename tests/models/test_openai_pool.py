"""``OpenAIPool``: one spec over several OpenAI-compatible servers (real HTTP fake servers on 127.0.0.1, no model)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from testkit import drain_stream

from ponder.core.errors import ModelError
from ponder.core.settings import Settings
from ponder.models import openai_router
from ponder.models.affinity import model_session
from ponder.models.base import GenerationParams, Message
from ponder.models.openai import OpenAIBackend
from ponder.models.openai_pool import OpenAIPool
from ponder.models.spec import _build_openai, parse_spec
from ponder.tests.models.fake_openai_server import FakeServer, chat_reply, error_reply, fake_servers, sse_reply

USER: list[Message] = [{"role": "user", "content": "hi"}]
PARAMS = GenerationParams(max_tokens=8)


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeServer]]:
    yield from fake_servers()


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoffs of 0.3 s (doubling) instead of 1 s, so a server comes back within the test."""
    monkeypatch.setattr(openai_router, "BACKOFF_START_S", 0.3)
    monkeypatch.setattr(openai_router, "start_turn", lambda n: 0)  # ties rotate from the first server


def named(name: str) -> Callable[[dict, int], tuple]:
    return lambda body, n: chat_reply(name)


def pool_of(*servers: FakeServer, **kwargs) -> OpenAIPool:
    kwargs = {"timeout": 5.0, "real": False, "tool_calls": False, "json_schema": False, "max_retries": 2, **kwargs}
    return OpenAIPool("fake", [s.base_url for s in servers], **kwargs)


def ask(pool: OpenAIPool) -> str:
    return pool.generate(USER, PARAMS)[0].text


def counts(pool: OpenAIPool) -> list[dict]:
    return list(pool.load_info["servers"])


# -- building ------------------------------------------------------------------------------------------------


def test_a_multi_url_spec_builds_a_pool_and_one_url_the_plain_backend() -> None:
    settings = Settings()
    pool = _build_openai(parse_spec("openai:m@http://127.0.0.1:1/v1,http://127.0.0.1:2/v1/"), settings)
    assert isinstance(pool, OpenAIPool)
    assert pool.spec == "openai:m@http://127.0.0.1:1/v1,http://127.0.0.1:2/v1"
    assert [m.base_url for m in pool.members] == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert all(m.max_retries == 0 for m in pool.members) and pool.max_retries == settings.openai_max_retries
    one = _build_openai(parse_spec("openai:m@http://127.0.0.1:1/v1"), settings)
    assert type(one) is OpenAIBackend and one.spec == "openai:m@http://127.0.0.1:1/v1"


def test_the_settings_list_is_used_when_the_spec_names_no_url() -> None:
    settings = Settings(openai_base_urls=["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"])
    pool = _build_openai(parse_spec("openai:m"), settings)
    assert isinstance(pool, OpenAIPool) and pool.spec == "openai:m@http://127.0.0.1:1/v1,http://127.0.0.1:2/v1"
    own = _build_openai(parse_spec("openai:m@http://127.0.0.1:3/v1"), settings)  # the spec's own URL wins
    assert type(own) is OpenAIBackend and own.base_url == "http://127.0.0.1:3/v1"
    single = _build_openai(parse_spec("openai:m"), Settings(openai_base_urls=["http://127.0.0.1:4/v1"]))
    assert type(single) is OpenAIBackend and single.base_url == "http://127.0.0.1:4/v1"


def test_a_pool_needs_two_urls() -> None:
    with pytest.raises(ModelError, match="two or more"):
        OpenAIPool("m", ["http://127.0.0.1:1/v1"], real=False)


# -- routing -------------------------------------------------------------------------------------------------


def test_a_sessions_requests_stay_on_one_server(fake) -> None:
    a, b = fake(named("a")), fake(named("b"))
    pool = pool_of(a, b)
    for key in ("s1", "s2", "s3", "s4"):
        with model_session(key):
            first = ask(pool)
            assert [ask(pool) for _ in range(4)] == [first] * 4
            assert pool.router.session_server(key) == (a if first == "a" else b).base_url
    assert len(a.requests) == len(b.requests) == 10  # ties rotate: the four sessions split over the two
    assert [s["sessions"] for s in counts(pool)] == [2, 2]


def test_requests_without_a_session_go_to_the_least_busy_server(fake) -> None:
    a, b = fake(named("a"), delay=0.4), fake(named("b"), delay=0.02)
    pool = pool_of(a, b)
    done: list[str] = []
    slow = threading.Thread(target=lambda: done.append(ask(pool)))
    slow.start()
    time.sleep(0.1)  # one request is now in flight on one server: the next ones go to the other
    busy = counts(pool)
    busy_index = 0 if busy[0]["in_flight"] else 1
    others = [ask(pool) for _ in range(3)]
    slow.join()
    assert busy[busy_index]["in_flight"] == 1 and busy[1 - busy_index]["in_flight"] == 0
    assert others == ["ab"[1 - busy_index]] * 3


def test_concurrent_sessions_spread_over_the_servers(fake) -> None:
    a, b = fake(named("a"), delay=0.3), fake(named("b"), delay=0.3)
    pool = pool_of(a, b)
    seen: dict[str, list[str]] = {}

    def episode(key: str) -> None:
        with model_session(key):
            seen[key] = [ask(pool) for _ in range(2)]

    threads = [threading.Thread(target=episode, args=(f"e{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(set(texts)) == 1 for texts in seen.values())  # each episode on one server
    assert sorted(texts[0] for texts in seen.values()) == ["a", "a", "b", "b"]  # least in flight: two each
    assert a.max_in_flight == b.max_in_flight == 2


def test_a_batch_is_spread_and_kept_in_order(fake) -> None:
    a, b = fake(lambda body, n: chat_reply("a:" + body["messages"][0]["content"]), delay=0.2), \
        fake(lambda body, n: chat_reply("b:" + body["messages"][0]["content"]), delay=0.2)
    pool = pool_of(a, b)
    out = pool.generate_batch([[{"role": "user", "content": str(i)}] for i in range(4)], PARAMS)
    assert [c[0].text.split(":")[1] for c in out] == ["0", "1", "2", "3"]
    assert len(a.requests) == len(b.requests) == 2


# -- failures ------------------------------------------------------------------------------------------------


def test_a_refusing_server_is_taken_out_and_comes_back_after_its_backoff(fake) -> None:
    a, b = fake(named("a")), fake(named("b"))
    port = b.port
    b.close()  # connections to b are refused now
    pool = pool_of(b, a)  # b first: the first request (ties rotate from the first) tries it
    with model_session("ep"):
        started = time.monotonic()
        texts = [ask(pool) for _ in range(4)]
        failover_s = time.monotonic() - started
    assert texts == ["a"] * 4 and failover_s < 2.0
    assert pool.router.session_server("ep") == a.base_url
    down = counts(pool)[0]
    assert not down["healthy"] and down["ejections"] == 1 and down["failures"] == 1
    assert "cannot connect" in down["last_error"]
    back = fake(named("b"), port=port)
    time.sleep(0.35)  # the backoff is over: the next request without a session probes b
    assert ask(pool) == "b" and counts(pool)[0]["healthy"] and len(back.requests) == 1
    with model_session("ep"):  # the episode stays where it was
        assert ask(pool) == "a"


def test_a_failed_probe_doubles_the_backoff(fake, caplog) -> None:
    caplog.set_level("WARNING", logger="ponder.models")
    a, b = fake(named("a")), fake(lambda body, n: error_reply(503, "overloaded"))
    pool = pool_of(a, b)
    assert {ask(pool) for _ in range(3)} == {"a"}
    assert pool.router.servers[1].backoff == pytest.approx(0.3)
    time.sleep(0.35)
    assert ask(pool) == "a"  # b was probed (503 again) and the request went on to a
    assert len(b.requests) == 2 and pool.router.servers[1].backoff == pytest.approx(0.6)
    assert counts(pool)[1]["ejections"] == 1 and counts(pool)[1]["failures"] == 2
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and f"{b.base_url} is taken out" in warned[0] and "HTTP 503" in warned[0]


def test_a_4xx_answer_is_the_requests_fault_and_ejects_nothing(fake) -> None:
    bad = fake(lambda body, n: error_reply(400, "prompt is longer than the context"))
    good = fake(named("ok"))
    pool = pool_of(bad, good)
    with model_session("ep"):
        with pytest.raises(ModelError, match="HTTP 400.*longer than the context"):
            for _ in range(2):
                ask(pool)
    assert all(s["healthy"] and s["ejections"] == 0 and s["failures"] == 0 for s in counts(pool))
    assert len(bad.requests) == 1 and not good.requests  # not retried elsewhere


def test_all_servers_down_is_one_clear_error_naming_each(fake) -> None:
    a, b = fake(lambda body, n: error_reply(502, "bad gateway")), fake(named("b"))
    b.close()
    pool = pool_of(a, b, max_retries=1)
    started = time.monotonic()
    with pytest.raises(ModelError) as caught:
        ask(pool)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert message.startswith("all 2 servers of 'fake' are down after 1 retries")
    assert f"{a.base_url}: " in message and "HTTP 502" in message and "bad gateway" in message
    assert f"{b.base_url}: cannot connect" in message
    assert len(a.requests) == 2  # first try, then its probe after the one wait
    assert 0.3 <= elapsed < 3.0


def test_a_stream_fails_over_before_its_first_piece(fake) -> None:
    a = fake(lambda body, n: error_reply(503, "loading"))
    b = fake(lambda body, n: sse_reply("Thought: ", "add"))
    pool = pool_of(a, b)
    for _ in range(2):  # whichever server is picked first, the stream comes from b
        gen = pool.stream(USER, PARAMS)
        pieces, completion = drain_stream(gen)
        assert "".join(pieces) == completion.text == "Thought: add"
    assert len(a.requests) == 1 and counts(pool)[0]["ejections"] == 1
    assert [s["in_flight"] for s in counts(pool)] == [0, 0]


def test_capabilities_are_probed_once_through_a_healthy_member(fake) -> None:
    a = fake(lambda body, n: error_reply(503, "loading"), gets={"/props": {"default_generation_settings": {}}})
    b = fake(named("b"), gets={"/props": {"default_generation_settings": {}}})
    pool = pool_of(a, b)
    assert [ask(pool) for _ in range(2)] == ["b", "b"]  # a was tried once and taken out
    assert pool.capabilities.grammar is True  # asked of b, the healthy one (llama.cpp's /props)
    assert all(m.capabilities.grammar for m in pool.members)  # shared by every member, not asked again
    assert b.get_paths.count("/props") == 1 and not a.get_paths


def test_a_run_is_one_model_session_and_an_episode_keeps_its_own(tmp_path) -> None:
    from ponder.agents.runner import run_agent
    from ponder.models.affinity import session_key
    from ponder.models.base import BaseBackend, Completion

    class Recorder(BaseBackend):
        real = False
        keys: list[str | None] = []

        def generate(self, messages, params):
            self.keys.append(session_key())
            return [Completion(text="Thought: easy.\nFinal Answer: 4")]

    model = Recorder()
    traj = run_agent("What is 2 + 2?", agent="react", model=model, settings=Settings(), write=False, tools=[])
    assert model.keys and set(model.keys) == {traj.id}
    with model_session("episode-7"):  # inside an eval episode the episode's session stays
        run_agent("What is 2 + 2?", agent="react", model=model, settings=Settings(), write=False, tools=[])
    assert model.keys[-1] == "episode-7" and session_key() is None


def test_the_last_server_taken_out_does_not_claim_others_take_its_requests(caplog) -> None:
    caplog.set_level("WARNING", logger="ponder.models")
    pool = pool_of(*[_Closed() for _ in range(2)], max_retries=0)
    with pytest.raises(ModelError, match="all 2 servers of 'fake' are down"):
        ask(pool)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2 and "go to the other servers" in warned[0], warned
    assert "no server is left" in warned[1] and "other servers" not in warned[1], warned


class _Closed:
    """A base URL where nothing listens (a port bound, then closed)."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_new_routers_start_their_rotation_at_a_random_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real start_turn
    urls = ["http://a/v1", "http://b/v1", "http://c/v1"]
    first = set()
    for _ in range(60):  # one router per process (a Ray shard): the first episode of each
        router = openai_router.Router(urls)
        lease = router.acquire("episode-0")
        assert lease is not None
        first.add(lease.index)
    assert first == {0, 1, 2}
