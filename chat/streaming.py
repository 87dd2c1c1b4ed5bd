"""Token streaming for the chat: a backend wrapper that streams every single-sample call to a callback."""

from __future__ import annotations

from collections.abc import Callable

from ponder.models.base import Completion, GenerationParams, Message, ModelBackend
from ponder.models.wrapper import BackendWrapper


class StreamingModel(BackendWrapper):
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
        super().__init__(model)
        self.on_text = on_text

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` completions; a single one is streamed to ``on_text`` as it is generated."""
        if params.n != 1:
            return self.backend.generate(messages, params)
        stream = self.backend.stream(messages, params)
        while True:
            try:
                piece = next(stream)
            except StopIteration as done:
                return [done.value]
            self.on_text(piece)
