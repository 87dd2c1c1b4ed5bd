"""The viewer's pages over records written with ponder's own models (no browser: Starlette's test client)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ponder.core.records import Step, Trajectory, Usage
from ponder.core.viewlinks import run_key
from ponder.envs.base import EpisodeResult
from ponder.graphs.search.tree import SearchTree, TreeNode
from ponder.graphs.self_consistency.records import SampleRecord, SelfConsistencyResult
from ponder.graphs.self_consistency.voting import VoteRow
from ponder.viewer.app import CSP, create_app

HOSTILE = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=1\">"


def _traj(task: str, answer: str, status: str = "solved", text: str = "") -> Trajectory:
    steps = [Step(index=0, kind="action", raw="r0", thought=f"think {text}", action="calculator",
                  action_input="2+2", observation=f"4 {text}", prompt_tokens=50, completion_tokens=9,
                  model_seconds=0.2, tool_seconds=0.01),
             Step(index=1, kind="final", raw="Final Answer: " + answer, thought="done", prompt_tokens=70,
                  completion_tokens=5, model_seconds=0.1)]
    return Trajectory(task=task, agent="react", model="embedded", steps=steps, final_answer=answer, status=status,
                      usage=Usage.from_steps(steps), metadata={"trace_id": "abc123", "tools": ["calculator"]})


def _write(path: Path, records: list, tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r.model_dump_json() + "\n" for r in records) + tail, encoding="utf-8")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """runs/plain (ponder run), runs/eval (an eval with a vote and a search tree), runs/bad (hostile, torn)."""
    runs = tmp_path / "runs"
    plain = [_traj("What is 2+2?", "4"), _traj("What is 3+3?", "7", status="max_steps")]
    _write(runs / "plain" / "trajectories.jsonl", plain)
    trajs = [_traj(f"q{i}", str(i)) for i in range(3)]
    sc = SelfConsistencyResult(task="q0", agent="react", model="embedded", samples_planned=2, samples_run=2,
                               final_answer="0", winner_key="0", chosen_sample=0, agreement=1.0,
                               votes=[VoteRow(key="0", answer="0", votes=2, weight=2.0, samples=[0, 1])],
                               samples=[SampleRecord(index=i, wave=0, temperature=0.7, top_p=1.0, key="0",
                                                     trajectory=trajs[0]) for i in range(2)])
    tree = SearchTree(strategy="beam", task="q1", chosen=[0, 1], answer="1", success=True,
                      nodes=[TreeNode(id=0), TreeNode(id=1, parent=0, depth=1, action="final", answer="1",
                                                      terminal=True, value=0.9, visits=1, status="solved"),
                             TreeNode(id=2, parent=0, depth=1, action="calculator", value=0.2, visits=1)])
    trajs[1].metadata["search_tree_id"] = tree.id
    results = [EpisodeResult(episode_id=f"e{i}", suite="gsm8k", task=f"q{i}", success=i != 2, status="solved",
                             failure="" if i != 2 else "wrong_answer", prediction=str(i),
                             gold="1" if i == 2 else str(i),
                             trajectory_ids=[trajs[i].id], usage=trajs[i].usage,
                             metadata={"self_consistency_id": sc.id} if i == 0 else {}) for i in range(3)]
    _write(runs / "eval" / "trajectories.jsonl", trajs)
    _write(runs / "eval" / "results.jsonl", results)
    _write(runs / "eval" / "self_consistency.jsonl", [sc])
    _write(runs / "eval" / "search.jsonl", [tree])
    (runs / "eval" / "run.json").write_text(json.dumps({"suite": "gsm8k", "model": "embedded", "agent": "react",
                                                        "strategy": "single"}), encoding="utf-8")
    bad = _traj(HOSTILE, HOSTILE, text=HOSTILE)
    _write(runs / "bad" / "trajectories.jsonl", [bad], tail='{"not json\n' + '{"id": "torn", "ta')
    return runs


@pytest.fixture
def client(root: Path) -> TestClient:
    return TestClient(create_app([root], poll_seconds=0.5), base_url="http://127.0.0.1:8765")


def _links(html: str, cls: str) -> list[str]:
    return re.findall(rf'class="{cls}" href="([^"]+)"', html)


def test_index_lists_every_run_with_its_summary(client: TestClient, root: Path) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    for name in ("plain", "eval", "bad"):
        assert f">{name}</a>" in page.text
    assert f"/run/{run_key(root / 'eval')}" in page.text
    assert "66.7 %" in page.text  # 2 of 3 eval episodes succeeded
    assert 'id="compare"' in page.text


def test_run_page_filters_sorts_and_links_episodes(client: TestClient, root: Path) -> None:
    key = run_key(root / "eval")
    page = client.get(f"/run/{key}")
    assert page.status_code == 200
    assert len(_links(page.text, "episode-link")) == 3
    assert 'id="votes-link"' in page.text and 'id="searches-link"' in page.text
    failed = client.get(f"/run/{key}?failure=wrong_answer")
    assert len(_links(failed.text, "episode-link")) == 1 and ">e2</a>" in failed.text
    text = client.get(f"/run/{key}?q=q1")
    assert _links(text.text, "episode-link") == [f"/run/{key}/episode/2"]
    desc = client.get(f"/run/{key}?sort=line&desc=1")
    assert _links(desc.text, "episode-link")[0] == f"/run/{key}/episode/3"


def test_episode_trajectory_and_prompt_pages(client: TestClient, root: Path) -> None:
    key = run_key(root / "eval")
    episode = client.get(f"/run/{key}/episode/1")
    assert episode.status_code == 200
    assert 'class="vote-link"' in episode.text and "section class=\"trajectory\"" in episode.text
    traj_link = re.search(r'class="trajectory-link" href="([^"]+)"', episode.text).group(1)
    traj = client.get(traj_link)
    assert traj.status_code == 200 and 'id="trace-id">abc123<' in traj.text
    assert traj.text.count('class="step ') == 2
    prompt = client.get(_links(traj.text, "prompt-link")[1])
    assert prompt.status_code == 200 and 'id="prompt"' in prompt.text
    assert "Question: q0" in prompt.text  # the question turn, then step 0's reply and observation
    assert "Observation: 4" in prompt.text


def test_vote_sample_and_search_pages(client: TestClient, root: Path) -> None:
    key = run_key(root / "eval")
    vote = client.get(f"/run/{key}/vote/1")
    assert vote.status_code == 200 and 'id="votes"' in vote.text
    sample = client.get(_links(vote.text, "sample-link")[1])
    assert sample.status_code == 200 and "Sample 1 of a vote" in sample.text
    tree = client.get(f"/run/{key}/search/1?node=1")
    assert tree.status_code == 200 and 'id="tree"' in tree.text and 'id="node"' in tree.text
    assert "0 → 1" in tree.text
    episode = client.get(f"/run/{key}/episode/2")
    assert 'class="tree-link"' in episode.text


def test_compare_classifies_changes(client: TestClient, root: Path) -> None:
    a, b = run_key(root / "eval"), run_key(root / "eval")
    page = client.get(f"/compare?a={a}&b={b}")
    assert page.status_code == 200 and page.text.count('class="pair same_success"') == 2
    assert client.get("/compare?a=nope&b=nope").status_code == 404


def test_hostile_records_are_escaped_and_bad_lines_shown(client: TestClient, root: Path) -> None:
    key = run_key(root / "bad")
    page = client.get(f"/run/{key}")
    assert "<script>window" not in page.text and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page.text
    assert page.text.count('class="episode problem"') == 2  # the malformed line and the torn tail
    assert "torn" in page.text
    tid = re.search(r'href="(/run/[^"]+/episode/1)"', page.text).group(1)
    traj = client.get(tid, follow_redirects=True)
    assert traj.status_code == 200
    assert "<script" not in traj.text.replace('<script src="/static/view.js" defer></script>', "")
    assert "<img src=x" not in traj.text and "onerror=&#34;" in traj.text
    torn = client.get(f"/run/{key}/line/trajectories/3")
    assert torn.status_code == 200 and "torn" in torn.text
    malformed = client.get(f"/run/{key}/episode/2")
    assert malformed.status_code == 422 and "not a record" in malformed.text


def test_unknown_things_are_404_pages_and_foreign_hosts_refused(client: TestClient) -> None:
    for url in ("/run/0123456789ab", "/run/0123456789ab/episode/1", "/compare?a=x&b=y"):
        page = client.get(url)
        assert page.status_code == 404 and "not found" in page.text
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400


def test_live_rows_return_only_new_lines(client: TestClient, root: Path) -> None:
    key = run_key(root / "plain")
    first = client.get(f"/run/{key}/rows?after=2")
    assert first.headers["X-Last-Line"] == "2" and "tr" not in first.text
    with (root / "plain" / "trajectories.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(_traj("What is 9+9?", "18").model_dump_json() + "\n")
    new = client.get(f"/run/{key}/rows?after=2")
    assert new.headers["X-Last-Line"] == "3" and "What is 9+9?" in new.text and new.headers["X-Count"] == "3"


# ---- records a writer or an attacker could leave behind (each once made a page fail or show the wrong thing)

def _client(root: Path) -> TestClient:
    return TestClient(create_app([root]), base_url="http://127.0.0.1", raise_server_exceptions=False)


def test_a_parent_cycle_does_not_hang_and_nodes_are_found_by_id(tmp_path: Path) -> None:
    import threading

    tree = SearchTree(strategy="lats", task="t", nodes=[TreeNode(id=0), TreeNode(id=2, parent=1, action="TWO"),
                                                        TreeNode(id=1, parent=2, action="ONE"),
                                                        TreeNode(id=3, parent=9, action="ORPHAN")])
    _write(tmp_path / "s" / "search.jsonl", [tree])
    client, key, got = _client(tmp_path), run_key(tmp_path / "s"), {}
    worker = threading.Thread(target=lambda: got.update(r=client.get(f"/run/{key}/search/1?node=1")), daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "a cycle of parents hung the page"
    assert got["r"].status_code == 200 and "<code>ONE</code>" in got["r"].text.split('id="node"')[1]
    orphan = client.get(f"/run/{key}/search/1?node=3")
    assert orphan.status_code == 200 and "ORPHAN" in orphan.text.split('id="node"')[1]
    assert 'id="node"' not in client.get(f"/run/{key}/search/1?node=abc").text


@pytest.mark.parametrize("tail", ["episode/²", "episode/" + "9" * 5000, "line/trajectories/²", "votes?page=²",
                                  "episode/-1"])
def test_odd_numbers_are_404_or_defaults_never_500(client: TestClient, root: Path, tail: str) -> None:
    response = client.get(f"/run/{run_key(root / 'eval')}/{tail}")
    assert response.status_code in (200, 404), (tail, response.status_code)


def test_non_finite_numbers_and_odd_memory_logs_render(tmp_path: Path) -> None:
    traj = _traj("q", "a")
    traj.metadata["memory"] = {"retrieved": 5}
    line = json.loads(traj.model_dump_json())
    line["usage"]["wall_seconds"], line["steps"][0]["model_seconds"] = float("inf"), float("nan")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "trajectories.jsonl").write_text(json.dumps(line) + "\n")
    page = _client(tmp_path).get(f"/run/{run_key(tmp_path / 'r')}/trajectory/{traj.id}")
    assert page.status_code == 200 and "inf" in page.text and "<pre>5</pre>" in page.text


def test_any_trajectory_id_links_to_its_own_page_and_repeated_ids_keep_their_lines(tmp_path: Path) -> None:
    odd = [_traj(f"task {i}", "1") for i in range(4)]
    for traj, ident in zip(odd, ["a/b", "a?b", "a#b", "a"], strict=True):
        traj.id = ident
    _write(tmp_path / "ev" / "trajectories.jsonl", odd)
    _write(tmp_path / "ev" / "results.jsonl", [EpisodeResult(episode_id="e", suite="s", task="t", status="solved",
                                                             trajectory_ids=[t.id for t in odd])])
    twins = [_traj("first twin", "1"), _traj("second twin", "2")]
    twins[1].id = twins[0].id
    _write(tmp_path / "runs" / "trajectories.jsonl", twins)
    client = _client(tmp_path)
    episode = client.get(f"/run/{run_key(tmp_path / 'ev')}/episode/1")
    links = re.findall(r'class="trajectory-link" href="([^"]+)"', episode.text)
    for link, traj in zip(links, odd, strict=True):
        assert f"task {odd.index(traj)}" in client.get(link).text, link
        prompt = re.search(r'class="prompt-link" href="([^"]+)"', client.get(link).text).group(1)
        assert client.get(prompt).status_code == 200, prompt
    runs = run_key(tmp_path / "runs")
    assert "second twin" in client.get(f"/run/{runs}/episode/2").text
    assert client.get(f"/run/{runs}/episode/2/prompt/1").status_code == 200


def test_an_undecodable_folder_name_is_shown_not_fatal(tmp_path: Path) -> None:
    import os

    folder = Path(os.fsdecode(bytes(tmp_path) + b"/run-\xff"))
    _write(folder / "trajectories.jsonl", [_traj("q", "a")])
    client = _client(tmp_path)
    index = client.get("/")
    assert index.status_code == 200 and ">run-?<" in index.text  # the byte it cannot show is a ?
    assert client.get(f"/run/{run_key(folder)}").status_code == 200


def test_error_pages_carry_the_security_headers(client: TestClient, root: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import ponder.viewer.pages_runs as pages

    def broken(*_args: object) -> None:
        raise RuntimeError("<b>boom</b>")

    monkeypatch.setattr(pages, "query_rows", broken)
    quiet = TestClient(client.app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    failed = quiet.get(f"/run/{run_key(root / 'eval')}")
    assert failed.status_code == 500 and failed.headers["content-security-policy"] == CSP
    assert "&lt;b&gt;boom" in failed.text
    refused = quiet.get("/", headers={"host": "evil.example"})
    assert refused.status_code == 400 and refused.headers["content-security-policy"] == CSP


def test_a_page_past_the_end_of_a_live_run_still_polls(client: TestClient, root: Path) -> None:
    page = client.get(f"/run/{run_key(root / 'plain')}?page=7")
    assert 'data-live="1"' in page.text  # written just now: live; page 7 of 1 is the last page


def test_sort_links_keep_the_filters_and_go_back_to_page_one(client: TestClient, root: Path) -> None:
    key = run_key(root / "eval")
    page = client.get(f"/run/{key}?failure=wrong_answer&per_page=2&page=1&sort=tokens")
    links = re.findall(r'class="sort" href="([^"]+)"', page.text)
    tokens = next(link for link in links if "sort=tokens" in link)
    assert "failure=wrong_answer" in tokens and "per_page=2" in tokens and "desc=1" in tokens  # clicked again: desc
    assert "page=" not in tokens.replace("per_page=", "")
    line = next(link for link in links if "sort=" not in link)
    assert "failure=wrong_answer" in line and "desc" not in line  # by line (the default), ascending
