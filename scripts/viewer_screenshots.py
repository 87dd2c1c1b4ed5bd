"""Screenshots of ``ponder view`` for the README, and the helpers its browser tests share.

``python scripts/viewer_screenshots.py [--root DIR] [--out docs/images]`` serves a folder of records with the
real ``ponder view`` and saves ``viewer-trajectory.png`` (one step-by-step trajectory) and
``viewer-search-tree.png`` (a beam search tree) from headless Chromium at 1280x900. Without ``--root`` it first
makes the records with the real CLI and the embedded model (a single run, two tiny GSM8K evals, a
self-consistency vote and a beam search; a few minutes on a CPU), exactly as ``tests/viewer/conftest.py`` does.

Helpers (imported by the tests through ``importlib``): :func:`make_runs`, :func:`serve`, :func:`open_browser`.
Nothing here downloads anything: Debian's Chromium and chromedriver are found on the PATH
(:func:`ponder.envs.miniwob.browser.find_browser`), the model must already be in the cache.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parent.parent
QUESTION = "What is 17 * 23 - 4?"
#: Max new tokens per model call of the record-making runs (``ponder eval`` takes it from the environment).
MAX_TOKENS = "96"

#: The records the tests and the screenshots use: folder name -> ``ponder`` arguments (``--out`` is added).
RUNS: dict[str, list[str]] = {
    "plain": ["run", QUESTION, "--max-steps", "3", "--max-tokens", MAX_TOKENS],
    "eval-a": ["eval", "gsm8k", "--limit", "3", "--max-steps", "3", "--quiet"],
    "eval-b": ["eval", "gsm8k", "--limit", "3", "--max-steps", "3", "--agent", "pal", "--quiet"],
    # An easy question: on the embedded model (greedy seeds) one sample of three answers it within 3 steps.
    "sc": ["run", "What is 2 + 3?", "--samples", "3", "--max-steps", "3"],
    "search": ["run", QUESTION, "--strategy", "beam", "--beam-width", "2", "--expansions", "2", "--max-steps", "2"],
}


class ViewerScriptError(RuntimeError):
    """A record-making command, the viewer server or the browser failed."""


def ponder_command() -> list[str]:
    """The ``ponder`` executable of the repository's venv, else ``python -m ponder.cli`` of this interpreter."""
    exe = REPO / ".venv" / "bin" / "ponder"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ponder.cli"]


def child_env(home: Path) -> dict[str, str]:
    """Environment for a ``ponder`` subprocess: offline, no user config, memory under ``home``.

    ``XDG_CACHE_HOME`` is inherited: the embedded model lives in the cache.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONDER_")}
    home.mkdir(parents=True, exist_ok=True)
    env.update({"PONDER_CONFIG": str(home / "no-ponder.toml"), "PONDER_MEMORY_PATH": str(home / "memory"),
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def make_runs(root: Path, names: list[str] | None = None, timeout: float = 900) -> dict[str, Path]:
    """Make the records of :data:`RUNS` under ``root`` with the real CLI (two commands at a time).

    Returns:
        Folder name -> run folder.

    Raises:
        ViewerScriptError: a command failed (its output's tail in the message) or ran past ``timeout``.
    """
    root.mkdir(parents=True, exist_ok=True)
    env = {**child_env(root.parent / "ponder-home"), "PONDER_MAX_TOKENS": MAX_TOKENS}
    todo = list(names or RUNS)
    out: dict[str, Path] = {}
    running: list[tuple[str, subprocess.Popen[str]]] = []
    deadline = time.monotonic() + timeout
    while todo or running:
        while todo and len(running) < 2:
            name = todo.pop(0)
            out[name] = root / name
            cmd = [*ponder_command(), *RUNS[name], "--out", str(root / name)]
            running.append((name, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL, text=True, cwd=root.parent)))
        name, proc = running.pop(0)
        try:
            output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for _, other in [(name, proc), *running]:
                other.kill()
                other.wait()
            raise ViewerScriptError(f"`ponder {' '.join(RUNS[name][:2])}` ran past {timeout:.0f} s") from None
        if proc.returncode != 0:
            for _, other in running:
                other.kill()
                other.wait()
            raise ViewerScriptError(f"`ponder {' '.join(RUNS[name])}` exited {proc.returncode}:\n{output[-3000:]}")
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, with an error page
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def serve(roots: list[Path], port: int | None = None, log: Path | None = None,
          wait_s: float = 60) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run the real ``ponder view ROOTS --port PORT`` until the block ends; yields its base URL and process.

    Raises:
        ViewerScriptError: the server exited or did not answer within ``wait_s`` seconds (its log in the message).
    """
    port = port or free_port()
    log = log or Path(tempfile.mkstemp(prefix="ponder-view-", suffix=".log")[1])
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        proc = subprocess.Popen([*ponder_command(), "view", *map(str, roots), "--port", str(port)],
                                env=child_env(log.parent / "ponder-view-home"), stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + wait_s
        while not _answers(base + "/"):
            if proc.poll() is not None or time.monotonic() > deadline:
                state = f"exited {proc.returncode}" if proc.poll() is not None else f"silent after {wait_s:.0f} s"
                raise ViewerScriptError(f"`ponder view` {state}:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield base, proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def open_browser(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """Headless Chromium driven by Selenium with ponder's flags; every browser process is gone afterwards.

    Yields:
        The ``selenium.webdriver.Chrome`` driver; ``driver.ponder_pids()`` lists the driver's process tree.

    Raises:
        ViewerScriptError: Chromium or chromedriver is not installed.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from ponder.envs.miniwob.browser import CHROME_FLAGS, descendants, find_browser, shutdown_instance

    paths = find_browser()
    if paths is None:
        raise ViewerScriptError("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.binary_location = paths.chrome
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=paths.chromedriver, log_output=os.devnull)
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(0)
    pid = service.process.pid
    chrome_h = driver.execute_script("return window.outerHeight - window.innerHeight") or 0
    driver.set_window_size(width, height + int(chrome_h))  # the page itself gets width x height
    driver.ponder_pids = lambda: [pid, *descendants(pid)]
    try:
        yield driver
    finally:
        shutdown_instance(SimpleNamespace(driver=driver, driver_pid=pid))


def _folders_with(root: Path, name: str) -> list[Path]:
    return sorted(p.parent for p in root.rglob(name))


def take_screenshots(root: Path, out: Path) -> list[Path]:
    """Serve ``root`` and save the trajectory and search-tree screenshots into ``out``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from ponder.core.viewlinks import run_key

    runs = [p for p in _folders_with(root, "trajectories.jsonl") if not (p / "results.jsonl").exists()]
    trees = _folders_with(root, "search.jsonl")
    if not runs or not trees:
        raise ViewerScriptError(f"{root} needs a `ponder run` folder and a folder with search.jsonl")
    plain = next((p for p in runs if p.name == "plain"), runs[0])
    tree_run = next((p for p in trees if p.name == "search"), trees[0])
    out.mkdir(parents=True, exist_ok=True)
    saved = [out / "viewer-trajectory.png", out / "viewer-search-tree.png"]
    with serve([root]) as (base, _), open_browser() as driver:
        wait = WebDriverWait(driver, 20)
        driver.get(f"{base}/run/{run_key(plain)}")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "a.episode-link"))
        driver.find_elements(By.CSS_SELECTOR, "a.episode-link")[0].click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "ol#steps li.step, section.trajectory"))
        links = driver.find_elements(By.CSS_SELECTOR, "section.trajectory a[href*='/trajectory/']")
        if not driver.find_elements(By.CSS_SELECTOR, "ol#steps") and links:
            links[0].click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "ol#steps li.step"))
        driver.save_screenshot(str(saved[0]))
        driver.get(f"{base}/run/{run_key(tree_run)}/search/1")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg#tree a.node"))
        chosen = driver.find_elements(By.CSS_SELECTOR, "svg#tree a.node.chosen, svg#tree .chosen a.node")
        (chosen or driver.find_elements(By.CSS_SELECTOR, "svg#tree a.node"))[-1].click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "section#node"))
        driver.execute_script("window.scrollTo(0, document.getElementById('tree').getBoundingClientRect().top"
                              " + window.scrollY - 120);")
        driver.save_screenshot(str(saved[1]))
    return saved


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="A folder of run records (default: make them in a tmp folder).")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="Where the PNG files go.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ponder-viewer-") as tmp:
        root = args.root
        if root is None:
            root = Path(tmp) / "runs"
            print(f"making records under {root} (a few minutes) ...", flush=True)
            make_runs(root)
        try:
            for path in take_screenshots(root.resolve(), args.out):
                print(f"saved {path}")
        except ViewerScriptError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
