"""Saved KV states of long prompt prefixes: a new process does not evaluate the agent's system prompt again.

Every ``ponder run`` starts with the same few hundred tokens (system prompt, tool descriptions, few-shot
examples) and, on a CPU, llama.cpp evaluates them at only a few hundred tokens per second: ~1.5 s of a cold start
for the ReAct prompt on 2 cores. After a prompt had to be evaluated, :class:`PromptCache` saves the engine slot's KV
cells (``llama_state_seq_get_data``, ~23 KB per token for SmolLM2-135M) with the token list; a later process
restores the entry sharing the longest prefix with its prompt, cuts it back to that prefix and evaluates only the
rest.

Layout: ``<cache_dir>/llamacpp/prompts/<fingerprint>/<name>.kv`` (the state bytes) and ``<name>.json`` (tokens,
byte count, CRC-32 of the state; written last, so an entry without it does not exist). The fingerprint covers the
GGUF (size, mtime, first and last MiB), the llama.cpp build and the engine context's settings that shape the KV
cells (attention kernel, K/V types, unified or per-slot streams): a different model or build never sees these
states. A state that fails its CRC or that llama.cpp refuses is deleted and the prompt is evaluated instead.
Only the :data:`MAX_ENTRIES` most recently used entries, and at most :data:`MAX_BYTES` of states, are kept.
Restored cells hold the same values the evaluation produced; the tokens evaluated after them run in a different
batch split, which can move greedy decoding in rare near-ties (as reusing a prefix within one process already can).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.core.io import write_atomic
from ponder.models.llamacpp_decode import common_prefix

logger = logging.getLogger("ponder.models")

#: Most entries kept per model (least recently used ones are deleted).
MAX_ENTRIES = 8
#: Most bytes of states kept per model (a 7B model's KV cells take ~0.5 MB per token).
MAX_BYTES = 1 << 30
#: A prompt is saved when at least this many of its tokens had to be evaluated.
MIN_NEW_TOKENS = 256
#: A saved prefix is restored only when it covers at least this many more tokens than memory already holds.
MIN_GAIN = 64
_EDGE_BYTES = 1 << 20


@dataclass(frozen=True)
class PromptEntry:
    """One saved prefix."""

    state: Path
    meta: Path
    tokens: tuple[int, ...]
    size: int
    crc32: int


def model_fingerprint(gguf: Path, llama_cpp: Any, context_params: Any) -> str:
    """A key for states valid for this GGUF file, llama.cpp build and KV layout (cheap: no full-file hash)."""
    digest = hashlib.sha256()
    stat = gguf.stat()
    digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    with gguf.open("rb") as fh:
        digest.update(fh.read(_EDGE_BYTES))
        fh.seek(max(0, stat.st_size - _EDGE_BYTES))
        digest.update(fh.read(_EDGE_BYTES))
    layout = {name: int(getattr(context_params, name, -1))
              for name in ("flash_attn_type", "type_k", "type_v", "swa_full", "kv_unified")}
    digest.update(json.dumps([getattr(llama_cpp, "__version__", "?"), layout], sort_keys=True).encode())
    return digest.hexdigest()[:24]


class PromptCache:
    """Saved prefix states for one model, in a directory shared by processes.

    Args:
        directory: Where this model's entries live (created on the first save).
        max_entries: Entries kept; older ones are deleted after a save.
        max_bytes: State bytes kept; older entries are deleted after a save (the newest is always kept).
        min_new_tokens: Save a prompt only when at least this many tokens had to be evaluated.
        min_gain: Restore only when an entry covers at least this many more tokens than memory already holds.
    """

    def __init__(self, directory: Path, *, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 min_new_tokens: int = MIN_NEW_TOKENS, min_gain: int = MIN_GAIN) -> None:
        self.directory = Path(directory)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.min_new_tokens = min_new_tokens
        self.min_gain = min_gain
        #: Counters for logs and tests: saves, restores, rejected (bad entries deleted).
        self.stats = {"saved": 0, "restored": 0, "rejected": 0}

    @classmethod
    def for_model(cls, cache_dir: Path, gguf: Path, llama_cpp: Any, context_params: Any) -> PromptCache:
        """The cache of one GGUF file under ``<cache_dir>/llamacpp/prompts/``."""
        key = model_fingerprint(gguf, llama_cpp, context_params)
        return cls(Path(cache_dir).expanduser() / "llamacpp" / "prompts" / key)

    # -- lookup ----------------------------------------------------------------------------------------

    def entries(self) -> list[PromptEntry]:
        """Every readable entry, most recently used first."""
        found: list[tuple[float, PromptEntry]] = []
        try:
            metas = list(self.directory.glob("*.json"))
        except OSError:
            return []
        for meta in metas:
            try:
                data = json.loads(meta.read_text(encoding="utf-8"))
                entry = PromptEntry(state=meta.with_suffix(".kv"), meta=meta, tokens=tuple(int(t) for t in
                                    data["tokens"]), size=int(data["size"]), crc32=int(data["crc32"]))
                found.append((meta.stat().st_mtime, entry))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return [entry for _, entry in sorted(found, key=lambda pair: -pair[0])]

    def best(self, prompt: list[int], *, at_least: int) -> tuple[PromptEntry, int] | None:
        """The entry sharing the longest prefix with ``prompt``, if that prefix is at least ``at_least`` long."""
        best: tuple[PromptEntry, int] | None = None
        for entry in self.entries():
            shared = common_prefix(entry.tokens, prompt)
            if shared >= at_least and (best is None or shared > best[1]):
                best = (entry, shared)
        return best

    # -- restore and save -----------------------------------------------------------------------------

    def restore(self, llama_cpp: Any, ctx: Any, entry: PromptEntry, *, seq_id: int = 0) -> bool:
        """Load ``entry`` into sequence ``seq_id`` of ``ctx`` (which must hold nothing there); False when unusable."""
        try:
            data = bytearray(entry.state.read_bytes())
        except OSError as exc:
            logger.debug("prompt cache entry %s unreadable: %s", entry.state, exc)
            return False
        if len(data) != entry.size or zlib.crc32(data) != entry.crc32:
            self._reject(entry, "its bytes do not match the recorded size and CRC-32")
            return False
        buffer = (ctypes.c_uint8 * len(data)).from_buffer(data)
        if llama_cpp.llama_state_seq_set_data(ctx, buffer, len(data), seq_id) == 0:
            self._reject(entry, "llama.cpp refused the state")
            return False
        try:
            os.utime(entry.meta)
        except OSError:
            pass
        self.stats["restored"] += 1
        logger.info("prompt cache: restored the KV state of %d tokens from %s", len(entry.tokens), entry.state)
        return True

    def save(self, llama_cpp: Any, ctx: Any, tokens: list[int], *, seq_id: int = 0) -> Path | None:
        """Save sequence ``seq_id`` of ``ctx`` (which holds exactly ``tokens``); return the state file, None on failure.

        Failures (disk full, read-only cache) are logged and otherwise ignored: the cache only saves time.
        """
        name = hashlib.sha256(json.dumps(tokens).encode()).hexdigest()[:24]
        state, meta = self.directory / f"{name}.kv", self.directory / f"{name}.json"
        if meta.exists():
            return state
        size = int(llama_cpp.llama_state_seq_get_size(ctx, seq_id))
        buffer = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data(ctx, buffer, size, seq_id))
        if written <= 0:
            return None
        data = memoryview(buffer)[:written]
        record = {"tokens": tokens, "size": written, "crc32": zlib.crc32(data)}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomic(state, data)
            write_atomic(meta, json.dumps(record).encode())
        except OSError as exc:
            logger.debug("could not save a prompt state in %s: %s", self.directory, exc)
            return None
        self.stats["saved"] += 1
        logger.info("prompt cache: saved the KV state of %d prompt tokens to %s (later runs skip evaluating them)",
                    len(tokens), state)
        self._evict()
        return state

    def _reject(self, entry: PromptEntry, why: str) -> None:
        logger.warning("prompt cache entry %s is unusable (%s); deleting it", entry.state, why)
        self.stats["rejected"] += 1
        _delete(entry)

    def _evict(self) -> None:
        kept, total = 0, 0
        for entry in self.entries():
            kept, total = kept + 1, total + entry.size
            if kept > 1 and (kept > self.max_entries or total > self.max_bytes):
                _delete(entry)


def _delete(entry: PromptEntry) -> None:
    """Remove an entry, its metadata first (without it the entry no longer exists); errors are ignored."""
    for path in (entry.meta, entry.state):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
