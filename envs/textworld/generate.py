"""The generator process: ``python -m ponder.envs.textworld.generate <games_root>`` with a JSON job list on stdin.

Run it with ``PYTHONHASHSEED=0`` (``cache.ensure_games`` does). For each job ``{"key", "generator", "options",
"seed", ...}`` it takes the game's lock, skips a game another process finished meanwhile, builds the game
(``makers.py``), compiles it with Inform 7 into a temporary directory, writes the manifest and renames the
directory into place. It prints one JSON line per game (key, status, seconds).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ponder.core.hashing import file_sha256
from ponder.core.io import fresh_dir
from ponder.envs.textworld.cache import (
    DEFINITION_FILE,
    GAME_FILE,
    MANIFEST_FILE,
    GameManifest,
    definition_hash,
    read_manifest,
)


def generate_one(job: dict[str, Any], root: Path) -> dict[str, Any]:
    """Generate one game into ``root/<key>`` unless it is already there (under the game's lock)."""
    key = job["key"]
    lock_dir = root / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        final = root / key
        if read_manifest(final) is not None:
            return {"key": key, "status": "cached", "seconds": 0.0}
        start = time.perf_counter()
        tmp = fresh_dir(final)  # unpredictable and ours alone (a pid-named folder could be planted)
        try:
            manifest = _build(job, tmp)
            manifest.generation_seconds = round(time.perf_counter() - start, 3)
            (tmp / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=1), encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # only left when something failed
        return {"key": key, "status": "generated", "seconds": manifest.generation_seconds}


def _build(job: dict[str, Any], out: Path) -> GameManifest:
    import textworld
    from textworld.generator import compile_game

    from ponder.envs.textworld.makers import make_game

    game = make_game(job["generator"], job["options"], job["seed"])
    options = textworld.GameOptions()
    options.path = str((out / GAME_FILE).resolve())
    options.force_recompile = True
    compile_game(game, options)
    (out / "game.ni").unlink(missing_ok=True)
    walkthrough = list(game.walkthrough or [])
    if not walkthrough:
        raise RuntimeError(f"game {job['key']} has no walkthrough")
    return GameManifest(key=job["key"], generator=job["generator"], options=job["options"], seed=job["seed"],
                        generator_version=job["generator_version"], textworld=textworld.__version__,
                        pythonhashseed=os.environ.get("PYTHONHASHSEED", ""),
                        game_sha256=file_sha256(out / GAME_FILE),
                        definition_sha256=definition_hash(out / DEFINITION_FILE),
                        walkthrough=walkthrough, objective=game.objective.strip(), max_score=float(game.max_score),
                        created=datetime.now(UTC).isoformat(timespec="seconds"))


def main() -> int:
    """Generate the games listed on stdin into ``sys.argv[1]``."""
    root = Path(sys.argv[1])
    for job in json.loads(sys.stdin.read()):
        print(json.dumps(generate_one(job, root)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
