"""Model spec strings (``embedded``, ``openai:<model>@<url>``, ...) and the per-process model cache."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ponder.core.model_spec import ModelSpec, parse_spec

if TYPE_CHECKING:
    from ponder.core.settings import LlamaCppSettings, Settings
    from ponder.models.base import ModelBackend

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
           settings.llamacpp_n_ctx)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(parsed, settings)
        return _CACHE[key]


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
        from ponder.models.openai import OpenAIBackend

        return OpenAIBackend.from_settings(parsed, settings)
    kind = resolve_embedded(settings) if parsed.kind == "embedded" else parsed.kind
    if kind == "llamacpp":
        from ponder.models.llamacpp import LlamaCppBackend, _import_llama_cpp, resolve_gguf
        from ponder.models.llamacpp_probe import require_llamacpp

        if parsed.kind == "llamacpp":  # explicit: a llama.cpp that crashes here is a ConfigError (exit 2)
            _import_llama_cpp()
            require_llamacpp(resolve_gguf(parsed), settings)
        backend = LlamaCppBackend.from_settings(parsed, settings)
    else:
        from ponder.models.transformers_backend import TransformersBackend

        backend = TransformersBackend.from_settings(parsed, settings)
    log.info("model %s runs on the %s backend", parsed, kind)
    return backend


def resolve_embedded(settings: LlamaCppSettings | None = None) -> str:
    """The backend behind ``embedded``: ``llamacpp`` when llama-cpp-python is installed and works here.

    "Works here" is the crash guard's answer (:mod:`ponder.models.llamacpp_probe`: a tiny decode of the
    embedded GGUF in a child process, remembered per llama.cpp build, CPU and model file). When the child
    crashes, ``embedded`` runs on ``transformers`` and one warning names the cause and the fix.
    """
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return "transformers"
    from ponder.models.gguf_cache import find_embedded_gguf
    from ponder.models.llamacpp_probe import FIX, check_llamacpp

    result = check_llamacpp(find_embedded_gguf(), settings)
    if result.ok:
        return "llamacpp"
    log.warning("%s; the embedded model runs on transformers instead. Fix: %s", result.problem(), FIX)
    return "transformers"
