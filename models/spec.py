"""Model spec strings (``embedded``, ``openai:<model>@<url>``, ...) and the per-process model cache."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ponder.core.model_spec import ModelSpec, parse_spec
from ponder.models.traced import traced

if TYPE_CHECKING:
    from ponder.core.settings import LlamaCppSettings, Settings
    from ponder.models.base import ModelBackend
    from ponder.models.llamacpp_formats import RuntimeFormat

log = logging.getLogger("ponder.models")

_CACHE: dict[tuple, ModelBackend] = {}
_LOCK = threading.Lock()


def load_model(spec: str, settings: Settings | None = None) -> ModelBackend:
    """Return the backend for ``spec``, loading it once per process and reusing it afterwards.

    Raises:
        ConfigError: for a bad spec or a missing file.
        ModelError: when the backend fails to load.
    """
    from ponder.core.settings import load_settings

    settings = settings or load_settings()
    parsed = parse_spec(spec)
    key = (str(parsed), settings.device, settings.dtype, str(settings.cache_dir), settings.llamacpp_threads,
           settings.llamacpp_n_ctx, settings.llamacpp_format, settings.llamacpp_slots, settings.llamacpp_kv_cells,
           tuple(settings.openai_base_urls))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(parsed, settings)
        return traced(_CACHE[key])


def close_models() -> None:
    """Close every backend :func:`load_model` loaded and forget them (a later call loads afresh).

    The cached backends are shared by the whole process, so only its owner (the CLI on exit, a test's teardown)
    closes them: a caller holding one backend does not close it.
    """
    with _LOCK:
        backends = list(_CACHE.values())
        _CACHE.clear()
    for backend in backends:
        backend.close()


def _build(parsed: ModelSpec, settings: Settings) -> ModelBackend:
    if parsed.kind == "scripted":
        from ponder.models.scripted import ScriptedModel

        return ScriptedModel.from_jsonl(parsed.path)
    if parsed.kind == "openai":
        return _build_openai(parsed, settings)
    kind = resolve_embedded(settings) if parsed.kind == "embedded" else parsed.kind
    if kind == "llamacpp":
        backend = _build_llamacpp(parsed, settings)
    else:
        from ponder.models.transformers_backend import TransformersBackend

        backend = TransformersBackend.from_settings(parsed, settings)
    log.info("model %s runs on the %s backend", parsed, kind)
    return backend


def _build_openai(parsed: ModelSpec, settings: Settings) -> ModelBackend:
    """One server: :class:`OpenAIBackend`; several (the spec's URLs, else ``openai_base_urls``): a pool of them."""
    urls = parsed.base_urls or tuple(settings.openai_base_urls)
    if len(urls) > 1:
        from ponder.models.openai_pool import OpenAIPool

        return OpenAIPool.from_settings(replace(parsed, base_url=",".join(urls)), settings)
    from ponder.models.openai import OpenAIBackend

    return OpenAIBackend.from_settings(replace(parsed, base_url=urls[0] if urls else ""), settings)


def _build_llamacpp(parsed: ModelSpec, settings: Settings) -> ModelBackend:
    """The llama.cpp backend, running the GGUF in the format ``settings.llamacpp_format`` picks.

    ``load_info["format"]`` says which format runs (:meth:`RuntimeFormat.info`); the backend keeps the spec asked
    for (``embedded``, ``llamacpp:<file>``), not the converted copy's path.
    """
    from ponder.models.llamacpp import LlamaCppBackend, _import_llama_cpp
    from ponder.models.llamacpp_probe import require_llamacpp

    _import_llama_cpp()
    runtime = runtime_format(parsed, settings)
    if parsed.kind == "llamacpp":  # explicit: a llama.cpp that crashes here is a ConfigError (exit 2)
        require_llamacpp(runtime.path, settings)
    backend = LlamaCppBackend.from_settings(replace(parsed, kind="llamacpp", path=str(runtime.path)), settings)
    backend.spec = str(parsed)
    backend.load_info["format"] = runtime.info()
    return backend


def runtime_format(parsed: ModelSpec, settings: LlamaCppSettings) -> RuntimeFormat:
    """The GGUF file a ``llamacpp`` or ``embedded`` spec runs, per ``settings.llamacpp_format``.

    ``auto`` converts the embedded model (once, cached) to the format measured fastest; a GGUF the user names stays
    as it is unless a format is named.

    Raises:
        ConfigError: for a missing or non-GGUF file or an unknown format.
    """
    from ponder.models.llamacpp import resolve_gguf
    from ponder.models.llamacpp_formats import resolve_format, runtime_gguf

    source = resolve_gguf(replace(parsed, kind="llamacpp"))
    fmt = resolve_format(settings.llamacpp_format, embedded=not parsed.path)
    return runtime_gguf(source, fmt, Path(settings.cache_dir).expanduser())


def resolve_embedded(settings: LlamaCppSettings | None = None) -> str:
    """The backend behind ``embedded``: ``llamacpp`` when llama-cpp-python is installed and works here.

    "Works here" is the crash guard's answer (:mod:`ponder.models.llamacpp_probe`: a tiny decode of the
    embedded GGUF in a child process, remembered per llama.cpp build, CPU and model file). When the child
    crashes, ``embedded`` runs on ``transformers`` and one warning names the cause and the fix.
    """
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return "transformers"
    from ponder.core.settings import load_settings
    from ponder.models.llamacpp_probe import FIX, check_llamacpp

    runtime = runtime_format(ModelSpec(kind="embedded"), settings or load_settings())
    result = check_llamacpp(runtime.path, settings)  # the file that will really be loaded
    if result.ok:
        return "llamacpp"
    log.warning("%s; the embedded model runs on transformers instead. Fix: %s", result.problem(), FIX)
    return "transformers"
