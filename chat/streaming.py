"""Token streaming for the chat: a backend wrapper that streams every single-sample call to a callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ponder.models.base import Completion, GenerationParams, Message, stream_completion


class StreamingModel:
    """Wraps a backend so that each one-sample :meth:`generate` streams its text to ``on_text``.

    The agent graphs call ``generate`` as usual; underneath, the backend's ``stream`` (or ``generate``, for
    backends that cannot stream) produces the text. Calls asking for several samples are passed through.

    Args:
        model: The backend.
        on_text: Called with each piece of text as it arrives.
    """

    def __init__(self, model: Any, on_text: Callable[[str], None]) -> None:
        self.model = model
        self.on_text = on_text
        self.spec = model.spec

    def __getattr__(self, name: str) -> Any:  # backend_name, load_info, real, ...
        return getattr(self.model, name)

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` completions; a single one is streamed to ``on_text`` as it is generated."""
        if params.n != 1:
            return self.model.generate(messages, params)  # type: ignore[no-any-return]
        stream = stream_completion(self.model, messages, params)
        while True:
            try:
                piece = next(stream)
            except StopIteration as done:
                return [done.value]
            self.on_text(piece)

    def generate_batch(self, conversations: list[list[Message]], params: GenerationParams) -> list[list[Completion]]:
        """Pass batches through unchanged (nothing is streamed)."""
        return self.model.generate_batch(conversations, params)  # type: ignore[no-any-return]
