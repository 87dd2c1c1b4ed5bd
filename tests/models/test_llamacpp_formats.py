"""The runtime GGUF format: conversion by llama.cpp, the cache and its failures, the setting and where it shows."""

from __future__ import annotations

import ctypes
import logging
import shutil
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.errors import ConfigError
from ponder.core.model_spec import ModelSpec
from ponder.core.settings import load_settings
from ponder.models.llamacpp_formats import (
    AUTO_FORMAT,
    describe_format,
    format_metadata,
    gguf_file_type,
    resolve_format,
    runtime_gguf,
)

CONVERTED = {"format": "q4_0", "source_format": "q4_1", "converted": True, "cached": True, "path": "/c/x.q4_0.gguf"}


# -- the setting (no llama.cpp) ----------------------------------------------------------------------------------

def test_auto_converts_the_embedded_model_only() -> None:
    assert resolve_format("auto", embedded=True) == AUTO_FORMAT != "original"
    assert resolve_format("auto", embedded=False) == "original"
    assert resolve_format("q8_0", embedded=False) == "q8_0"
    assert resolve_format("original", embedded=True) == "original"


def test_an_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown llamacpp_format 'q5_k'; expected one of: auto, original, q4_0"):
        resolve_format("q5_k", embedded=True)


def test_a_bad_setting_exits_2_from_the_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("PONDER_LLAMACPP_FORMAT", "q5")
    assert main(["run", "q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ponder: error:") and "llamacpp_format" in err and "'q4_0'" in err
    assert len(err.splitlines()) == 1


def test_verbose_line_and_record_entry() -> None:
    line = describe_format({"format": CONVERTED})
    assert line is not None and "q4_0" in line and "q4_1" in line and "PONDER_LLAMACPP_FORMAT=original" in line
    shipped = describe_format({"format": {**CONVERTED, "format": "q4_1", "converted": False}})
    assert shipped is not None and "as shipped (q4_1" in shipped
    assert describe_format({"device": "cpu"}) is None
    assert format_metadata({"format": CONVERTED}) == {
        "model_format": {"format": "q4_0", "source_format": "q4_1", "converted": True}}
    assert format_metadata({}) == {}


# -- real llama.cpp conversions ----------------------------------------------------------------------------------

@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A private copy of the embedded Q4_1 GGUF (so stat memos and caches start empty)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make test installs it)")
    from ponder.models.gguf_cache import find_embedded_gguf

    copy = tmp_path / "src" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    copy.parent.mkdir()
    shutil.copyfile(find_embedded_gguf(), copy)
    return copy


@pytest.fixture
def quantize_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Count llama.cpp conversions (the real function still runs)."""
    import llama_cpp

    calls: list[bytes] = []
    real = llama_cpp.llama_model_quantize

    def counting(src: bytes, dst: bytes, params: object) -> int:
        calls.append(dst)
        return real(src, dst, params)

    monkeypatch.setattr(llama_cpp, "llama_model_quantize", counting)
    return calls


def _new_process() -> None:
    """Forget which copies this process converted (as a later process would not know)."""
    from ponder.models import llamacpp_formats

    llamacpp_formats._MADE_HERE.clear()


def _model_desc(path: Path) -> str:
    """llama.cpp's description of a fully loaded model, e.g. ``llama ?B Q4_0``."""
    import llama_cpp

    model = llama_cpp.llama_model_load_from_file(str(path).encode(), llama_cpp.llama_model_default_params())
    assert model, f"llama.cpp could not load {path}"
    try:
        buf = ctypes.create_string_buffer(128)
        llama_cpp.llama_model_desc(model, buf, len(buf))
        return buf.value.decode()
    finally:
        llama_cpp.llama_model_free(model)


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["q4_0", "q8_0"])
def test_conversion_gives_a_loadable_gguf_of_that_type(tmp_path: Path, source: Path, fmt: str,
                                                       quantize_calls: list[bytes]) -> None:
    first = runtime_gguf(source, fmt, tmp_path / "cache")
    assert (first.format, first.source_format, first.converted, first.cached) == (fmt, "q4_1", True, False)
    assert first.path.parent.parent == tmp_path / "cache" / "llamacpp" / "formats"
    assert first.path.name == f"SmolLM2-135M-Instruct.{fmt}.gguf"
    assert gguf_file_type(first.path) == fmt
    assert fmt.upper() in _model_desc(first.path)
    assert len(quantize_calls) == 1
    mtime = first.path.stat().st_mtime_ns
    again = runtime_gguf(source, fmt, tmp_path / "cache")  # this process made it: not "cached" yet
    assert (again.path, again.converted, again.cached) == (first.path, True, False)
    _new_process()
    second = runtime_gguf(source, fmt, tmp_path / "cache")
    assert (second.path, second.cached) == (first.path, True)
    assert len(quantize_calls) == 1 and first.path.stat().st_mtime_ns == mtime


@pytest.mark.integration
def test_a_corrupt_copy_is_rebuilt(tmp_path: Path, source: Path, quantize_calls: list[bytes],
                                   caplog: pytest.LogCaptureFixture) -> None:
    path = runtime_gguf(source, "q4_0", tmp_path / "cache").path
    with path.open("r+b") as fh:  # same size, different bytes
        fh.seek(path.stat().st_size // 2)
        fh.write(b"\xff" * 64)
    with caplog.at_level(logging.WARNING, logger="ponder.models"):
        again = runtime_gguf(source, "q4_0", tmp_path / "cache")
    assert (again.path, again.cached, len(quantize_calls)) == (path, False, 2)
    assert any("checksum mismatch" in r.getMessage() for r in caplog.records)
    _new_process()
    assert runtime_gguf(source, "q4_0", tmp_path / "cache").cached is True


@pytest.mark.integration
def test_a_half_written_copy_is_rebuilt(tmp_path: Path, source: Path, quantize_calls: list[bytes]) -> None:
    path = runtime_gguf(source, "q4_0", tmp_path / "cache").path
    path.with_name(path.name + ".json").unlink()  # the manifest is written last: a crash before it
    path.write_bytes(path.read_bytes()[:1000])
    again = runtime_gguf(source, "q4_0", tmp_path / "cache")
    assert (again.cached, len(quantize_calls)) == (False, 2)
    assert gguf_file_type(again.path) == "q4_0"


@pytest.mark.integration
def test_an_unwritable_cache_falls_back_to_the_original_with_one_warning(
        tmp_path: Path, source: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")  # root ignores permission bits; this blocks root
    with caplog.at_level(logging.WARNING, logger="ponder.models"):
        first = runtime_gguf(source, "q4_0", blocker / "cache")
        second = runtime_gguf(source, "q4_0", blocker / "cache")
    for result in (first, second):
        assert (result.path, result.format, result.converted) == (source, "q4_1", False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "running the original file instead" in warnings[0]
    assert blocker.read_text().startswith("a file")


@pytest.mark.integration
def test_original_and_the_source_format_use_the_source(tmp_path: Path, source: Path,
                                                       quantize_calls: list[bytes]) -> None:
    for fmt in ("original", "q4_1"):
        result = runtime_gguf(source, fmt, tmp_path / "cache")
        assert (result.path, result.format, result.converted) == (source, "q4_1", False)
    assert not quantize_calls and not (tmp_path / "cache").exists()
    with pytest.raises(ConfigError, match="cannot convert a GGUF to 'q2_k'"):
        runtime_gguf(source, "q2_k", tmp_path / "cache")


@pytest.mark.integration
def test_a_users_gguf_stays_as_it_is_unless_a_format_is_named(tmp_path: Path, source: Path) -> None:
    from ponder.models.spec import runtime_format

    user = ModelSpec(kind="llamacpp", path=str(source))
    kept = runtime_format(user, load_settings(cache_dir=tmp_path / "cache"))
    assert (kept.path, kept.converted) == (source, False)
    named = runtime_format(user, load_settings(cache_dir=tmp_path / "cache", llamacpp_format="q8_0"))
    assert (named.format, named.converted) == ("q8_0", True)
    embedded = runtime_format(ModelSpec(kind="embedded"), load_settings(cache_dir=tmp_path / "cache"))
    assert (embedded.format, embedded.converted) == (AUTO_FORMAT, True)


@pytest.mark.integration
def test_the_embedded_backend_says_which_format_runs(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (make test installs it)")
    from ponder.models.spec import close_models, load_model

    settings = load_settings(cache_dir=tmp_path / "cache", llamacpp_n_ctx=512, llamacpp_threads=1)
    try:
        backend = load_model("embedded", settings)
        original = load_model("embedded", settings.model_copy(update={"llamacpp_format": "original"}))
    finally:
        close_models()
    assert backend.spec == original.spec == "embedded"
    info = backend.load_info["format"]
    assert (info["format"], info["source_format"], info["converted"]) == (AUTO_FORMAT, "q4_1", True)
    assert backend.load_info["path"] == info["path"] != original.load_info["path"]
    assert original.load_info["format"]["converted"] is False
    assert format_metadata(backend.load_info)["model_format"] == {
        "format": AUTO_FORMAT, "source_format": "q4_1", "converted": True}


def test_the_trajectory_records_the_format_that_ran(tmp_path: Path) -> None:
    from ponder.agents.runner import run_agent
    from ponder.models.scripted import ScriptedModel

    model = ScriptedModel(["Final Answer: 5"])
    model.load_info = {"format": CONVERTED}
    traj = run_agent("What is 2+3?", settings=load_settings(out_dir=tmp_path), model=model, tools=[], write=False)
    assert traj.final_answer == "5"
    assert traj.metadata["model_format"] == {"format": "q4_0", "source_format": "q4_1", "converted": True}
