"""Two real llama.cpp servers behind one spec (``openai:smollm2@URL1,URL2``), one of them killed mid-run.

The answers of SmolLM2-135M are not checked: the routing and the failover are (both servers serve, the killed one is
taken out, no request and no episode is lost to it).
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from ponder.cli import main
from ponder.core.settings import Settings
from ponder.models import spec as spec_module
from ponder.models.affinity import model_session
from ponder.models.base import GenerationParams
from ponder.models.openai_pool import OpenAIPool
from ponder.tests.models.conftest import LLAMA_MODEL_ALIAS, LlamaPair

pytestmark = pytest.mark.integration

PARAMS = GenerationParams(max_tokens=4)


def served(pool: OpenAIPool) -> list[int]:
    return [s["requests"] - s["failures"] for s in pool.load_info["servers"]]


def test_the_pool_fails_over_when_a_server_is_killed(llama_pair_server: LlamaPair) -> None:
    pool = OpenAIPool.from_settings(spec_module.parse_spec(f"openai:{LLAMA_MODEL_ALIAS}@"
                                                           + ",".join(llama_pair_server.urls)), Settings())
    try:
        for key in ("e1", "e2"):
            with model_session(key):
                assert pool.generate([{"role": "user", "content": f"Say {key}"}], PARAMS)
        assert served(pool) == [1, 1]  # two sessions, one per server
        llama_pair_server.kill(0)
        started = time.monotonic()
        for key in ("e1", "e2"):
            with model_session(key):
                assert pool.generate([{"role": "user", "content": f"Say {key} again"}], PARAMS)
        failover_s = time.monotonic() - started
        first = pool.load_info["servers"][0]
        assert first["ejections"] == 1 and first["failures"] == 1 and not first["healthy"]
        assert served(pool) == [1, 3] and pool.router.session_server("e1") == llama_pair_server.urls[1]
        assert failover_s < 30  # two short generations on one CPU thread; the refused connection costs ~ms
    finally:
        pool.close()


def _kill_when_both_served(pair: LlamaPair, out_dir, seen: dict, done: threading.Event) -> None:
    """Watch the run's pool; once both servers answered an episode's request, kill the first (until the run ends)."""
    while not done.is_set():
        pools = [b for b in list(spec_module._CACHE.values()) if isinstance(b, OpenAIPool)]
        if pools and all(s["sessions"] >= 1 for s in pools[0].load_info["servers"]):  # episodes answered on both
            seen["pool"], seen["before"] = pools[0], served(pools[0])
            results = out_dir / "results.jsonl"
            seen["records_at_kill"] = len(results.read_text().splitlines()) if results.exists() else 0
            pair.kill(0)
            return
        time.sleep(0.05)


def test_an_eval_survives_a_killed_model_server(llama_pair_server: LlamaPair, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PONDER_MAX_TOKENS", "24")
    out, seen, done = tmp_path / "run", {}, threading.Event()
    spec = f"openai:{LLAMA_MODEL_ALIAS}@" + ",".join(llama_pair_server.urls)
    watcher = threading.Thread(target=_kill_when_both_served, args=(llama_pair_server, out, seen, done),
                               daemon=True)
    watcher.start()
    try:
        started = time.monotonic()
        code = main(["eval", "gsm8k", "--limit", "6", "-m", spec, "--workers", "2", "--max-steps", "1",
                     "--out", str(out), "-q", "--constrained", "off", "--tool-calling", "text"])
        seen["run_s"] = time.monotonic() - started
    finally:
        done.set()
        watcher.join(timeout=10)
    assert code == 0, capsys.readouterr()
    assert "pool" in seen, "the run ended before both servers had served a request"
    assert seen["records_at_kill"] < 6 and seen["before"][0] >= 1 and seen["before"][1] >= 1
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ids = [r["episode_id"] for r in records]
    assert len(ids) == 6 and len(set(ids)) == 6  # every episode exactly once
    for record in records:  # none failed because of the model
        assert record["failure"] not in ("error", "env_error", "timeout") and not record["error"], record
    killed = seen["pool"].load_info["servers"][0]
    assert killed["ejections"] >= 1 and not killed["healthy"]
    assert served(seen["pool"])[1] > seen["before"][1]  # the rest of the run went to the survivor
