"""Reports: report.md and a self-contained report.html, the harness label, comparisons."""

from __future__ import annotations

import base64
import re
import sys
from pathlib import Path

import pytest

from ponder.core.errors import DataError
from ponder.core.settings import load_settings
from ponder.core.viewlinks import run_key, run_url
from ponder.envs.context import EvalOptions
from ponder.envs.report import HARNESS_LABEL, head_to_head, load_run, write_comparison, write_report
from ponder.envs.runner import run_eval

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _fake_suite import FakeSuite  # noqa: E402


def make_run(tmp_path: Path, name: str, policy: str, n: int = 6) -> Path:
    options = EvalOptions(suite="fake", policy=policy, out_dir=tmp_path / name)
    settings = load_settings(out_dir=tmp_path)
    run_eval(FakeSuite(n=n), options, settings, quiet=True, model=object())  # type: ignore[arg-type]
    return tmp_path / name


def test_report_files_self_contained(tmp_path):
    run = make_run(tmp_path, "agent-run", "agent")
    md = (run / "report.md").read_text()
    page = (run / "report.html").read_text()
    assert "## Summary" in md and "success rate (Wilson 95% CI)" in md and "50.0% [18.8, 81.2]" in md
    assert "| e05 |" in md and "## Per tier" in md and "wrong_answer" in md
    assert HARNESS_LABEL not in md and HARNESS_LABEL not in page
    # self-contained: no external resources, figures embedded as PNG data URIs; the only absolute links are
    # into the local viewer (`ponder view`)
    assert not re.search(r"""src=['"](https?:|//)""", page)
    assert {m for m in re.findall(r"""href=['"]((?:https?:)?//[^/'"]*)""", page)} == {"http://127.0.0.1:8765"}
    assert "<link" not in page and "<script" not in page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 2  # accuracy vs compute, failure categories
    assert all(base64.b64decode(img).startswith(b"\x89PNG") for img in images)
    assert "href='trajectories.jsonl" in page and "Accuracy vs compute" in page


def test_harness_runs_are_labelled(tmp_path):
    run = make_run(tmp_path, "walk", "walkthrough")
    md = (run / "report.md").read_text()
    page = (run / "report.html").read_text()
    assert f"**{HARNESS_LABEL}.**" in md and "`walkthrough` policy" in md
    assert "class='harness'" in page and HARNESS_LABEL in page
    assert load_run(run).harness


def test_rewrite_and_compare(tmp_path):
    a = make_run(tmp_path, "a", "agent")
    b = make_run(tmp_path, "b", "walkthrough", n=4)
    (a / "report.md").unlink()
    write_report(a)
    assert (a / "report.md").is_file()
    h2h = head_to_head(load_run(a), load_run(b))
    assert h2h == {"common": 4, "both": 2, "only a": 0, "only b": 0, "neither": 2}
    md, page, text = write_comparison([a, b], tmp_path / "cmp")
    assert md.is_file() and page.is_file()
    assert "| a | fake |" in text and "walkthrough (harness check)" in text and "## a vs b" in text
    assert "data:image/png;base64," in page.read_text()
    link = f"http://127.0.0.1:8765/compare?a={run_key(a)}&b={run_key(b)}"  # the viewer's side by side
    assert f"<{link}>" in text and f"href='{link.replace('&', '&amp;')}'" in page.read_text()
    with pytest.raises(DataError, match="not an evaluation run"):
        load_run(tmp_path / "nothing")


def test_a_ray_run_names_its_executor_and_episodes_per_node(tmp_path):
    import json

    run = make_run(tmp_path, "ray", "agent", n=4)
    local_md = (run / "report.md").read_text()
    assert "| executor |" not in local_md  # a local run's report is unchanged
    manifest = json.loads((run / "run.json").read_text())
    manifest["starts"][0].update(executor="ray", address="local", shards=3, nodes=2, slots=2)
    manifest["starts"].append({"executor": "ray", "shards": 0})  # a resume with nothing left to play
    (run / "run.json").write_text(json.dumps(manifest))
    lines = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    for i, line in enumerate(lines):
        line["metadata"]["node"] = "aaaa0000" if i % 4 else "bbbb1111"
    (run / "results.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    write_report(run)
    md = (run / "report.md").read_text()
    assert "| executor | ray (local, 2 nodes, 3 shards); episodes per node: aaaa0000 3, bbbb1111 1 |" in md
    assert "episodes per node: aaaa0000 3, bbbb1111 1" in (run / "report.html").read_text()


def test_the_report_links_into_ponder_view(tmp_path):
    import json

    run = make_run(tmp_path, "linked", "agent", n=4)
    url = run_url(run)
    md = (run / "report.md").read_text()
    assert f"Browse this run: `ponder view {run.resolve()}` then open <{url}>" in md.splitlines()[2]
    # episodes by their results.jsonl line (written out of order, with a blank line), trajectories by id
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    records[0]["trajectory_ids"] = ["t0", "odd id/#1"]
    records.reverse()
    (run / "results.jsonl").write_text("\n" + "".join(json.dumps(r) + "\n" for r in records))
    write_report(run)
    page = (run / "report.html").read_text()
    assert f"then open <a href='{url}'>{url}</a>" in page
    for line, record in enumerate(records, 2):
        assert f"<a href='{url}/episode/{line}'>{record['episode_id']}</a>" in page
    assert f"<a href='{url}/trajectory/t0'>t0</a>" in page
    assert f"<a href='{url}/trajectory/odd%20id%2F%231'>odd id/#1</a>" in page
    assert load_run(run).result_lines == {r["episode_id"]: i for i, r in enumerate(records, 2)}
