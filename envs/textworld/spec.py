"""Suite definition files: which games (generator, options, seed) a TextWorld suite holds, by tier.

A suite file (``suites/<name>.json``) lists games by seed, so that every machine generates the very same
games (the game definitions are reproducible; see ``cache.py``)::

    {"name": "small", "version": 1,
     "tiers": {"1": {"description": "...", "generator": "put", "options": {}, "seeds": [1, 2], "max_steps": 12}}}

Every game gets a :class:`GameSpec` with a stable ``id`` (``t<tier>-<generator>-s<seed>``, the episode id) and a
cache ``key`` that also hashes the options and the generator version, so changing either makes new games.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ponder.core.datafiles import describe_validation, read_json_file
from ponder.core.errors import DataError

SUITES_DIR = Path(__file__).resolve().parent / "suites"
#: Bump when a generator changes what it makes for the same options and seed.
GENERATOR_VERSION = 1
TEXTWORLD_VERSION = "1.7.0"
GENERATORS = ("put", "puttwo", "tw-simple", "tw-cooking")


class TierSpec(BaseModel):
    """One difficulty tier: a generator with fixed options, a list of seeds, the agent's step cap."""

    description: str = ""
    generator: str
    options: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(min_length=1)
    max_steps: int = Field(30, ge=1, le=500, description="Model calls the agent gets per game (thoughts included).")


class SuiteSpec(BaseModel):
    """A suite file."""

    name: str
    version: int = 1
    description: str = ""
    tiers: dict[str, list[TierSpec] | TierSpec] = Field(min_length=1)

    def games(self) -> list[GameSpec]:
        """Every game of the suite, tier by tier, in file order."""
        out: list[GameSpec] = []
        for tier, entries in self.tiers.items():
            for entry in entries if isinstance(entries, list) else [entries]:
                for seed in entry.seeds:
                    out.append(GameSpec(tier=tier, generator=entry.generator, options=entry.options, seed=seed,
                                        max_steps=entry.max_steps))
        ids = [g.id for g in out]
        if len(set(ids)) != len(ids):
            raise DataError(f"suite {self.name!r} lists a game twice: {sorted({i for i in ids if ids.count(i) > 1})}")
        return out


class GameSpec(BaseModel):
    """One game to generate and play."""

    tier: str
    generator: str
    options: dict[str, Any] = Field(default_factory=dict)
    seed: int
    max_steps: int = 30

    @property
    def id(self) -> str:
        """The episode id: ``t<tier>-<generator>-s<seed>``."""
        return f"t{self.tier}-{self.generator}-s{self.seed}"

    def recipe(self) -> dict[str, Any]:
        """What determines the game file: generator, options, seed and versions."""
        return {"generator": self.generator, "options": self.options, "seed": self.seed,
                "generator_version": GENERATOR_VERSION, "textworld": TEXTWORLD_VERSION}

    @property
    def key(self) -> str:
        """The cache key: ``<generator>-s<seed>-<hash of the recipe>``."""
        digest = hashlib.sha256(json.dumps(self.recipe(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.generator}-s{self.seed}-{digest}"


def suite_path(name_or_path: str | Path) -> Path:
    """A suite file: an existing path, or the name of a shipped suite (``small``, ``default``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SUITES_DIR / f"{name_or_path}.json"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.json")))
    raise DataError(f"no TextWorld suite file {str(name_or_path)!r} (shipped suites: {known})")


def load_suite_spec(name_or_path: str | Path) -> SuiteSpec:
    """Load and validate a suite file.

    Raises:
        DataError: for a missing or empty file, bad JSON (``file:line``), every bad field, an unknown
            generator or a duplicated game.
    """
    path = suite_path(name_or_path)
    raw = read_json_file(path, what="TextWorld suite")
    try:
        spec = SuiteSpec.model_validate(raw)
    except ValidationError as exc:
        raise DataError(f"{path}: invalid TextWorld suite file: {describe_validation(exc)}") from None
    for game in spec.games():
        if game.generator not in GENERATORS:
            raise DataError(f"{path}: unknown generator {game.generator!r}; choose one of: {', '.join(GENERATORS)}")
    return spec
