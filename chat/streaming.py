"""Token streaming for the chat: a backend wrapper that streams every single-sample call to a callback."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

from ponder.models.base import (
    Completion,
    GenerationParams,
    Message,
    ModelBackend,
    ModelCapabilities,
    OptionLogprobs,
)


class StreamingModel:
    """Wraps a backend so that each one-sample :meth:`generate` streams its text to ``on_text``.

    The agent graphs call ``generate`` as usual; underneath, the backend's ``stream`` produces the text (all at
    once for backends that cannot stream). Calls asking for several samples are passed through. It is a
    :class:`~ponder.models.base.ModelBackend` itself: ``spec``, ``backend_name``, ``real``, ``capabilities`` and
    ``load_info`` are the wrapped backend's.

    Args:
        model: The backend.
        on_text: Called with each piece of text as it arrives.
    """

    def __init__(self, model: ModelBackend, on_text: Callable[[str], None]) -> None:
        self.model = model
        self.on_text = on_text

    @property
    def spec(self) -> str:
        """The wrapped backend's spec."""
        return self.model.spec

    @property
    def backend_name(self) -> str:
        """The wrapped backend's name."""
        return self.model.backend_name

    @property
    def real(self) -> bool:
        """Whether the wrapped backend runs a real model."""
        return self.model.real

    @property
    def capabilities(self) -> ModelCapabilities:
        """The wrapped backend's capabilities."""
        return self.model.capabilities

    @property
    def load_info(self) -> Mapping[str, Any]:
        """How the wrapped backend was loaded."""
        return self.model.load_info

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` completions; a single one is streamed to ``on_text`` as it is generated."""
        if params.n != 1:
            return self.model.generate(messages, params)
        stream = self.model.stream(messages, params)
        while True:
            try:
                piece = next(stream)
            except StopIteration as done:
                return [done.value]
            self.on_text(piece)

    def generate_batch(self, conversations: list[list[Message]], params: GenerationParams) -> list[list[Completion]]:
        """Pass batches through unchanged (nothing is streamed)."""
        return self.model.generate_batch(conversations, params)

    def stream(self, messages: list[Message], params: GenerationParams) -> Generator[str, None, Completion]:
        """The backend's stream, unchanged (the caller shows the pieces itself; ``on_text`` is not called)."""
        return (yield from self.model.stream(messages, params))

    def count_tokens(self, messages: list[Message]) -> int:
        """The backend's prompt-token count for ``messages``."""
        return self.model.count_tokens(messages)

    def option_logprobs(self, messages: list[Message], options: Sequence[str]) -> OptionLogprobs:
        """The wrapped backend's next-token scores of ``options`` (one prompt evaluation, nothing batched here)."""
        return self.model.option_logprobs(messages, options)

    def close(self) -> None:
        """Nothing to release: the wrapped backend belongs to whoever made it (close it there)."""
