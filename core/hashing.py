"""Hashing shared by the caches (converted models, search indexes) and the prompt fingerprint of trajectories."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file, streamed in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def messages_sha256(messages: Sequence[Mapping[str, Any]]) -> str:
    """A short fingerprint of chat messages (16 hex digits of the SHA-256 of their roles and contents as JSON).

    Agents record it for the prompt prefix a run sent (``Trajectory.metadata["prompt_sha256"]``);
    :func:`ponder.training.prompt.prefix_sha256` is the same function, so an export can tell a changed prompt.
    """
    blob = json.dumps([{"role": m["role"], "content": m["content"]} for m in messages], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
