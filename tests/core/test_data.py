"""The shipped data (``data/``): every file against ``data/manifest.json``, loaded by ponder's own loaders.

Checksums, sizes and row counts live only in the manifest; ``data/MANIFEST.md`` must agree with it. The last
test builds a wheel, installs it into a scratch folder and checks that the installed package finds its data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.core.settings import load_settings
from ponder.envs.alfworld import TRIALS, single_agent_problem
from ponder.envs.registry import get_suite
from ponder.tools.search.corpus import load_corpus

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
#: Files in data/ that describe the data rather than being data.
NOT_DATA = {"MANIFEST.md", "README.md", "manifest.json", ".gitattributes"}
#: The licence of each shipped dataset.
LICENCES = {"GSM8K": "MIT", "SVAMP": "MIT", "HumanEval": "MIT", "HotpotQA": "CC-BY-SA-4.0", "MuSiQue": "CC-BY-4.0",
            "ALFWorld": "MIT", "ReAct prompts": "MIT"}
LOADERS = {"suite:gsm8k", "suite:svamp", "suite:hotpotqa", "suite:musique", "suite:humaneval", "corpus",
           "json_object", "alfworld_trial", "alfworld_logic"}
MANIFEST = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))
ENTRIES = {entry["path"]: entry for entry in MANIFEST["files"]}


def entries(*loaders: str) -> list[dict]:
    """Manifest entries whose loader is one of ``loaders`` (``suite:`` matches every suite)."""
    return [e for e in ENTRIES.values() if any(e["loader"] == x or e["loader"].startswith(x) for x in loaders)]


def test_every_data_file_is_in_the_manifest_and_nothing_else():
    on_disk = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file()} - NOT_DATA
    assert len(ENTRIES) == len(MANIFEST["files"]), "a path is listed twice in data/manifest.json"
    missing, extra = set(ENTRIES) - on_disk, on_disk - set(ENTRIES)
    assert not missing, f"listed in data/manifest.json but not in data/: {sorted(missing)}"
    assert not extra, f"in data/ but not listed in data/manifest.json: {sorted(extra)}"


@pytest.mark.parametrize("entry", ENTRIES.values(), ids=list(ENTRIES))
def test_file_matches_its_checksum_and_size(entry):
    raw = (DATA / entry["path"]).read_bytes()
    assert len(raw) == entry["bytes"], f"{entry['path']}: {len(raw)} bytes, manifest says {entry['bytes']}"
    assert hashlib.sha256(raw).hexdigest() == entry["sha256"], f"{entry['path']}: SHA-256 differs from the manifest"


@pytest.mark.parametrize("entry", ENTRIES.values(), ids=list(ENTRIES))
def test_manifest_entry_names_source_commit_and_licence(entry):
    assert entry["licence"] == LICENCES[entry["dataset"]]
    assert entry["loader"] in LOADERS, f"{entry['path']}: no test loads files of loader {entry['loader']!r}"
    assert entry["copy"] in ("byte-identical", "converted") and entry["sources"]
    for source in entry["sources"]:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", source["repository"])
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]) and source["path"]


def test_manifest_md_agrees_with_manifest_json():
    """MANIFEST.md's table (for people) lists every file with the manifest's rows, licence and SHA-256."""
    rows = {}
    for line in (DATA / "MANIFEST.md").read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\| `([^`]+)` \| (\d+|–) \| ([\w.-]+) \| (.+) \| `([0-9a-f]{64})` \|", line)
        if match:
            path, n, licence, sources, sha = match.groups()
            rows[path] = (None if n == "–" else int(n), licence, sha, sources)
    assert set(rows) == set(ENTRIES)
    for path, (n, licence, sha, sources) in rows.items():
        entry = ENTRIES[path]
        assert (n, licence, sha) == (entry["rows"], entry["licence"], entry["sha256"]), path
        for source in entry["sources"]:
            assert f"{source['repository']} @ {source['commit'][:12]}: `{source['path']}`" in sources, path


@pytest.fixture
def settings(tmp_path):
    return load_settings(data_dir=DATA, out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("entry", entries("suite:"), ids=lambda e: e["path"])
def test_suite_file_loads_every_row(entry, settings):
    suite = get_suite(entry["loader"].removeprefix("suite:"))
    path = DATA / entry["path"]
    # the suite's own file is found through data_dir; other files (gsm8k/train) as --data
    episodes = suite.episodes(settings) if entry["path"] == suite.data_file else suite.episodes(settings, data=path)
    assert len(episodes) == entry["rows"]
    assert len({e.id for e in episodes}) == len(episodes)
    assert all(e.task.strip() for e in episodes)
    if suite.name != "humaneval":
        assert all(e.gold and e.gold.strip() for e in episodes)
    corpus = getattr(suite, "corpus", None)
    if corpus:  # a search suite: its corpus is a shipped file, and the episode settings point at it
        assert corpus in ENTRIES and ENTRIES[corpus]["loader"] == "corpus"
        assert suite.settings_for(settings).search_corpus == DATA / corpus


def test_shipped_suite_files_are_the_suites_defaults():
    for name in ("gsm8k", "svamp", "hotpotqa", "musique", "humaneval"):
        assert get_suite(name).data_file in ENTRIES, name


@pytest.mark.parametrize("entry", entries("corpus"), ids=lambda e: e["path"])
def test_search_corpus_loads(entry):
    corpus = load_corpus(DATA / entry["path"])
    assert len(corpus) == entry["rows"]
    assert corpus.sha256 == entry["sha256"]  # the index cache key is the manifest's checksum


def test_hotpotqa_gold_paragraphs_are_in_its_corpus():
    """Every supporting fact names a corpus title exactly, with a sentence index in range."""
    corpus = load_corpus(DATA / "hotpotqa" / "corpus.jsonl")
    for line in (DATA / "hotpotqa" / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for title in row["context_titles"]:
            assert corpus.title_matches(title)[0] == "exact", (row["id"], title)
        for title, sentence in row["supporting_facts"]:
            kind, found = corpus.title_matches(title)
            assert kind == "exact" and 0 <= sentence < len(corpus.docs[found[0]].sentences), (row["id"], title)


def test_readme_search_example_is_a_shipped_hotpotqa_question():
    """The README's ``--tools search,lookup`` example can be answered from the default corpus."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r'ponder run "([^"]+)" \\?\s*--tools search,lookup', readme)
    questions = {json.loads(line)["question"]
                 for line in (DATA / "hotpotqa" / "questions.jsonl").read_text(encoding="utf-8").splitlines()}
    assert examples and all(q in questions for q in examples), examples


def test_musique_supporting_paragraphs_are_in_its_corpus():
    corpus = load_corpus(DATA / "musique" / "corpus.jsonl")
    for line in (DATA / "musique" / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert row["supporting_titles"]
        for title in row["supporting_titles"]:
            assert corpus.title_matches(title)[0] == "exact", (row["id"], title)


@pytest.mark.parametrize("entry", entries("json_object"), ids=lambda e: e["path"])
def test_json_object_files_load(entry):
    obj = json.loads((DATA / entry["path"]).read_text(encoding="utf-8"))
    assert isinstance(obj, dict) and len(obj) == entry["rows"]
    if entry["path"].startswith("prompts/"):  # ReAct few-shot prompts: non-empty text per key
        assert all(isinstance(v, str) and v.strip() for v in obj.values())


def test_alfworld_trial_and_logic_as_the_suite_reads_them():
    """What ``envs/alfworld.py`` needs from the data (the engine itself is tested in tests/envs/test_alfworld.py)."""
    root = DATA / TRIALS
    trials = sorted(p.parent for p in root.glob("*/game.tw-pddl") if (p.parent / "traj_data.json").is_file())
    trial_files = {e["path"] for e in entries("alfworld_trial")}
    assert trials and {f"{t.relative_to(DATA).as_posix()}/game.tw-pddl" for t in trials} <= trial_files
    for trial in trials:
        game = json.loads((trial / "game.tw-pddl").read_text(encoding="utf-8"))
        traj = json.loads((trial / "traj_data.json").read_text(encoding="utf-8"))
        assert {"pddl_domain", "grammar", "pddl_problem"} <= set(game)
        assert traj["task_type"] and traj["pddl_params"]["object_target"]
        problem = single_agent_problem(game["pddl_problem"])
        assert len(re.findall(r"^\s*\w+\s*-\s*agent\s*$", problem, flags=re.MULTILINE)) == 1
    logic = DATA / "alfworld" / "logic"
    assert {f"alfworld/logic/{n}" for n in ("alfred.pddl", "alfred.twl2")} <= {e["path"] for e in entries("alfworld_")}
    assert "UNKNOWN GOAL" in (logic / "alfred.twl2").read_text(encoding="utf-8")  # build_game fills in the task
    assert "(define (domain alfred)" in (logic / "alfred.pddl").read_text(encoding="utf-8")


def _copy_source(dest: Path) -> None:
    skip = {".venv", ".git", "build", "dist", "runs", ".ponder-cache", "__pycache__", ".pytest_cache", ".ruff_cache",
            ".langgraph_api"}
    shutil.copytree(REPO, dest, ignore=lambda _, names: [n for n in names if n in skip or n.endswith(".egg-info")])


@pytest.mark.slow  # pip builds and installs a wheel: seconds
def test_an_installed_wheel_finds_its_data(tmp_path):
    """``pip wheel`` then ``pip install --target``: ``default_data_dir()`` is the package's own verified data."""
    src, wheels, target = tmp_path / "src", tmp_path / "wheels", tmp_path / "site"
    _copy_source(src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    done = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels),
                           str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = wheels.glob("ponder-*.whl")
    done = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    code = ("import hashlib, json, ponder.core.settings as c\n"
            "d = c.default_data_dir(); s = c.load_settings()\n"
            "m = json.loads((d / 'manifest.json').read_text())\n"
            "bad = [f['path'] for f in m['files'] if hashlib.sha256((d / f['path']).read_bytes()).hexdigest() "
            "!= f['sha256']]\n"
            "print(json.dumps({'data_dir': str(d), 'setting': str(s.data_dir), 'files': len(m['files']), 'bad': bad}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONDER_")}
    env.update(PYTHONPATH=str(target), PONDER_CONFIG=str(tmp_path / "none.toml"))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    installed = target / "ponder" / "data"
    assert Path(out["data_dir"]) == installed and Path(out["setting"]) == installed
    assert out["files"] == len(ENTRIES) and out["bad"] == []
