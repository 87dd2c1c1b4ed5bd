"""Prompt templates live in the package's ``prompts/`` folder; this module only loads and fills them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

PROMPT_DIR = Path(__file__).resolve().parent.parent / "prompts"


@cache
def load_prompt(name: str) -> str:
    """Return the text of ``prompts/<name>.txt``."""
    return (PROMPT_DIR / f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **values: str) -> str:
    """Fill a prompt template's ``{placeholders}`` and strip surrounding blank lines."""
    return load_prompt(name).format(**values).strip()


@cache
def load_json_prompt(name: str) -> Any:
    """Return the parsed ``prompts/<name>.json``."""
    return json.loads((PROMPT_DIR / f"{name}.json").read_text(encoding="utf-8"))
