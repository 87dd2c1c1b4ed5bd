"""The in-process transformers backend: specs ``embedded`` and ``transformers[:<file.gguf|model dir>]``.

A GGUF file is read through its safetensors copy in the user cache (``models/gguf_cache.py``: converted once,
verified by a manifest); a transformers model directory is loaded as it is. CPU runs in float32, CUDA in
bfloat16 (``device`` / ``dtype`` settings). Batches are left-padded; stop strings, seeds and log-probabilities
are honoured.

``import torch`` / ``transformers`` happens inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError, ModelError
from ponder.models.base import (
    BaseBackend,
    Completion,
    FinishReason,
    GenerationParams,
    Message,
    ModelCapabilities,
    OptionLogprobs,
    StopFilter,
    first_token_ids,
    floored,
    truncate_at_stop,
)
from ponder.models.gguf_cache import find_embedded_gguf, load_gguf, load_model_dir

if TYPE_CHECKING:
    from ponder.core.model_spec import ModelSpec
    from ponder.core.settings import ModelSettings

logger = logging.getLogger("ponder.models")

#: Rows (prompts x ``n``) per ``model.generate`` call.
CHUNK_ROWS = 16


def resolve_device(name: str) -> Any:
    """Return the ``torch.device`` for a device setting.

    Raises:
        ConfigError: for an unknown device, or CUDA requested where it is not available.
    """
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {name!r}: {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available to torch "
                              f"{torch.__version__}; use device = \"cpu\"")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ConfigError(f"device {name!r} requested but only {count} GPU(s) are visible")
    return device


def resolve_dtype(name: str, device: Any) -> Any:
    """Return the ``torch.dtype`` for a dtype setting: ``auto`` is bfloat16 on CUDA, else float32."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise ConfigError(f"invalid dtype {name!r}: expected auto, float32, bfloat16 or float16")
    return dtypes[name]


def _resolve_source(parsed: ModelSpec) -> Path:
    if not parsed.path:
        return find_embedded_gguf()
    path = Path(parsed.path).expanduser()
    if not path.exists():
        raise ConfigError(f"model path not found: {path}")
    if path.is_file() and path.suffix.lower() == ".gguf":
        return path
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise ConfigError(f"{path} is neither a .gguf file nor a transformers model directory (with config.json)")


def _context_window(model: Any) -> int | None:
    """The model's context size from its config (``max_position_embeddings``); ``None`` when it states none."""
    if model is None:
        return None
    size = getattr(model.config, "max_position_embeddings", None)  # not every transformers config has it
    return size if isinstance(size, int) and size > 0 else None


class _StopOnText:
    """Stopping criterion: a row is done once its new text contains a stop string."""

    def __init__(self, tokenizer: Any, stop: list[str], prompt_len: int, rows: int) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.prompt_len = prompt_len
        self.window = max(len(s) for s in self.stop) + 8  # tokens: enough to cover any stop string
        self.stopped_at: list[int | None] = [None] * rows  # new-token count when the stop text appeared

    def _found(self, ids: list[int]) -> bool:
        return any(s in self.tokenizer.decode(ids, skip_special_tokens=True) for s in self.stop)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        new = input_ids[:, self.prompt_len :].tolist()
        done = []
        for row, ids in enumerate(new):
            if self.stopped_at[row] is None and self._found(ids[-self.window :]) and self._found(ids):
                self.stopped_at[row] = len(ids)
            done.append(self.stopped_at[row] is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _Cancelled:
    """Stopping criterion: every row stops once ``event`` is set (the consumer of a stream went away)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _LogprobRecorder:
    """Logits processor that records the model's log-probability of each chosen token (raw logits)."""

    def __init__(self) -> None:
        self.steps: list[Any] = []
        self.prev: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.prev is not None:
            self.steps.append(self.prev.gather(1, input_ids[:, -1:]).squeeze(1))
        self.prev = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def result(self, sequences: Any, generated: int) -> list[list[float]]:
        import torch

        steps = self.steps[:generated]
        if len(steps) < generated:  # the last token's distribution is still pending
            steps.append(self.prev.gather(1, sequences[:, -1:]).squeeze(1))
        return torch.stack(steps, dim=1).cpu().tolist()


class TransformersBackend(BaseBackend):
    """A causal LM run in-process with transformers.

    Args:
        model: A loaded ``AutoModelForCausalLM`` (already on its device), or ``None`` for a backend that is
            never called (tests).
        tokenizer: Its tokenizer.
        spec: The spec string recorded in trajectories.
        load_info: How the model was loaded (path, device, dtype, load_seconds, from_cache).
    """

    backend_name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, spec: str = "embedded",
                 load_info: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.load_info: dict[str, Any] = dict(load_info or {})
        self._lock = threading.Lock()
        if tokenizer is not None:
            tokenizer.padding_side = "left"
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
        self._eos_ids: list[int] = self._collect_eos_ids()
        #: A padded batch of conversations decodes in one pass (self-consistency batches its samples).
        self.capabilities = ModelCapabilities(batched_decoding=True, streaming=True, logprobs=True,
                                              context_window=_context_window(model), option_logprobs=True)

    @classmethod
    def from_settings(cls, parsed: ModelSpec, settings: ModelSettings) -> TransformersBackend:
        """Load the model named by ``parsed`` on ``settings.device`` with ``settings.dtype``.

        Raises:
            ConfigError: when the weights package or path is missing, or the device is unavailable.
            ModelError: when the model fails to load.
        """
        source = _resolve_source(parsed)
        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
        start = time.perf_counter()
        if source.is_file():
            model, tokenizer, from_cache = load_gguf(source, Path(settings.cache_dir))
        else:
            try:
                model, tokenizer = load_model_dir(source)
            except Exception as exc:
                raise ModelError(
                    f"could not load model directory {source}: {type(exc).__name__}: {exc}"
                ) from exc
            from_cache = False
        model.to(device=device, dtype=dtype)
        model.eval()
        seconds = time.perf_counter() - start
        logger.info("loaded %s %s on %s (%s) in %.2f s", source, "from the converted cache" if from_cache
                    else "directly" if source.is_dir() else "by converting the GGUF", device, dtype, seconds)
        info = {"path": str(source), "device": str(device), "dtype": str(dtype).removeprefix("torch."),
                "load_seconds": round(seconds, 3), "from_cache": from_cache}
        return cls(model, tokenizer, spec=str(parsed), load_info=info)

    def _collect_eos_ids(self) -> list[int]:
        """The end-of-sequence token ids of the model's generation config and of the tokenizer."""
        config = self.model.generation_config if self.model is not None else None
        eos = config.eos_token_id if config is not None else None
        ids = {eos} if isinstance(eos, int) else set(eos or [])
        if self.tokenizer is not None:
            ids.add(self.tokenizer.eos_token_id)
        return sorted(i for i in ids if i is not None)

    def count_tokens(self, messages: list[Message]) -> int:
        """Return the prompt tokens of ``messages`` rendered with the tokenizer's chat template, as sent."""
        with self._lock:  # the tokenizer is not shared across threads
            return len(self._prompt_ids(messages))

    def option_logprobs(self, messages: list[Message], options: Sequence[str]) -> OptionLogprobs:
        """Score ``options`` as the reply's first token: one forward pass, log-softmax at the last position.

        Options are tokenized alone (no special tokens); the first token decides.

        Raises:
            RealModelCallError: in unit tests (``PONDER_FORBID_REAL_MODEL`` set).
            ModelError: when two options share their first token or the forward pass fails.
        """
        self.check_allowed()
        import torch

        with self._lock, torch.inference_mode():
            ids = first_token_ids(options, lambda o: list(self.tokenizer(o, add_special_tokens=False)["input_ids"]))
            prompt = self._prompt_ids(messages)
            try:
                logits = self.model(input_ids=torch.tensor([prompt], device=self.model.device)).logits[0, -1]
            except (RuntimeError, ValueError, IndexError) as exc:
                raise ModelError(f"scoring failed on {self.spec}: {type(exc).__name__}: {exc}") from exc
            scores = torch.log_softmax(logits.float(), dim=-1)[ids].cpu().tolist()
        return OptionLogprobs(logprobs=floored(scores), prompt_tokens=len(prompt))

    def _prompt_ids(self, messages: list[Message]) -> list[int]:
        tok = self.tokenizer
        if tok.chat_template:
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return list(tok(text, add_special_tokens=False)["input_ids"])
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return list(tok(text)["input_ids"])

    def generate_batch(
        self, conversations: list[list[Message]], params: GenerationParams
    ) -> list[list[Completion]]:
        """Return ``params.n`` completions per conversation, in order.

        Prompts are rendered with the chat template and run left-padded in chunks of :data:`CHUNK_ROWS` rows.
        Greedy decoding (``temperature == 0``) runs each conversation once and repeats the result ``n`` times.

        Raises:
            RealModelCallError: in unit tests (``PONDER_FORBID_REAL_MODEL`` set).
            ModelError: when generation fails.
        """
        self.check_allowed()
        import torch

        greedy = params.temperature == 0
        copies = 1 if greedy else params.n
        results: list[Completion] = []
        with self._lock, torch.inference_mode():  # the tokenizer is not shared across threads either
            prompts = [self._prompt_ids(conv) for conv in conversations]
            rows = [ids for ids in prompts for _ in range(copies)]
            if params.seed is not None:
                torch.manual_seed(params.seed)
            try:
                for start in range(0, len(rows), CHUNK_ROWS):
                    results.extend(self._generate_chunk(rows[start : start + CHUNK_ROWS], params, greedy))
            except (RuntimeError, ValueError, IndexError) as exc:
                raise ModelError(f"generation failed on {self.spec}: {type(exc).__name__}: {exc}") from exc
        if greedy:
            return [[results[i].model_copy() for _ in range(params.n)] for i in range(len(conversations))]
        return [results[i * copies : (i + 1) * copies] for i in range(len(conversations))]

    def stream(self, messages: list[Message], params: GenerationParams) -> Generator[str, None, Completion]:
        """Yield the text of one completion as it is decoded (``TextIteratorStreamer``); return the completion.

        ``generate`` runs in a worker thread; closing the generator early (e.g. Ctrl-C in the consumer)
        stops decoding at the next token and waits for the worker.

        Raises:
            RealModelCallError: in unit tests (``PONDER_FORBID_REAL_MODEL`` set).
            ModelError: when generation fails.
        """
        self.check_allowed()
        import torch
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                with self._lock, torch.inference_mode():
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    rows = [self._prompt_ids(messages)]
                    result["completion"] = self._generate_chunk(rows, params, params.temperature == 0,
                                                                streamer=streamer, cancel=cancel)[0]
            except BaseException as exc:  # handed to the consumer below
                result["error"] = exc
                streamer.end()

        worker = threading.Thread(target=work, name="ponder-stream", daemon=True)
        worker.start()
        shown = StopFilter(params.stop)
        try:
            for text in streamer:
                delta = shown.feed(text)
                if delta:
                    yield delta
        finally:
            cancel.set()
            worker.join()
        if "error" in result:
            exc = result["error"]
            if isinstance(exc, (RuntimeError, ValueError, IndexError)):
                raise ModelError(f"generation failed on {self.spec}: {type(exc).__name__}: {exc}") from exc
            raise exc
        rest = "" if shown.stopped else shown.finish()
        if rest:
            yield rest
        return result["completion"]  # type: ignore[no-any-return]

    def _generate_chunk(
        self, rows: list[list[int]], params: GenerationParams, greedy: bool, *, streamer: Any = None,
        cancel: threading.Event | None = None,
    ) -> list[Completion]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        device = self.model.device
        width = max(len(ids) for ids in rows)
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in rows], device=device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in rows], device=device)
        stopper = _StopOnText(self.tokenizer, params.stop, width, len(rows)) if any(params.stop) else None
        criteria = [c for c in (stopper, _Cancelled(cancel) if cancel is not None else None) if c is not None]
        recorder = _LogprobRecorder() if params.logprobs else None
        kwargs: dict[str, Any] = {"do_sample": not greedy}
        if not greedy:  # plain temperature / nucleus sampling: no top-k from the model's defaults
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        sequences = self.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=params.max_tokens,
            eos_token_id=self._eos_ids or None,
            pad_token_id=pad_id,
            stopping_criteria=StoppingCriteriaList(criteria) if criteria else None,
            streamer=streamer,
            logits_processor=LogitsProcessorList([recorder]) if recorder else None,
            **kwargs,
        )
        generated = sequences.shape[1] - width
        logprobs = recorder.result(sequences, generated) if recorder else None
        new_ids = sequences[:, width:].tolist()
        out = []
        for row, ids in enumerate(new_ids):
            end = next((i for i, t in enumerate(ids) if t in self._eos_ids), len(ids))
            hit_eos = end < len(ids)
            if stopper and stopper.stopped_at[row] is not None:
                end = min(end, stopper.stopped_at[row])
            raw = self.tokenizer.decode(ids[:end], skip_special_tokens=True)
            text, found = truncate_at_stop(raw, params.stop)
            count = self._tokens_for(ids[:end], len(text)) if found else end
            finish: FinishReason = "stop" if found or hit_eos else "length"
            out.append(Completion(
                text=text, finish_reason=finish, prompt_tokens=len(rows[row]), completion_tokens=count,
                logprob=float(sum(logprobs[row][:count])) if logprobs is not None else None,
            ))
        return out

    def _tokens_for(self, ids: list[int], chars: int) -> int:
        """Return the fewest leading tokens of ``ids`` whose text covers ``chars`` characters."""
        lo, hi = 0, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(self.tokenizer.decode(ids[:mid], skip_special_tokens=True)) >= chars:
                hi = mid
            else:
                lo = mid + 1
        return lo
