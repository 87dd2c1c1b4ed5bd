"""The base of backends that wrap another backend (micro-batching, chat streaming, tracing).

A wrapper is a :class:`~ponder.models.base.ModelBackend` itself: ``spec``, ``backend_name``, ``real``,
``capabilities`` and ``load_info`` are read through to the wrapped backend (capabilities on every read: a server
backend may detect them late), and every call is passed through unless the subclass changes it.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any

from ponder.models.base import Completion, GenerationParams, Message, ModelBackend, ModelCapabilities, OptionLogprobs


class BackendWrapper:
    """Delegates the whole backend protocol to ``backend``; subclasses override the calls they change.

    Args:
        backend: The backend that really runs the model.
    """

    def __init__(self, backend: ModelBackend) -> None:
        self.backend = backend

    @property
    def spec(self) -> str:
        """The wrapped backend's spec."""
        return self.backend.spec

    @property
    def backend_name(self) -> str:
        """The wrapped backend's name."""
        return self.backend.backend_name

    @property
    def real(self) -> bool:
        """Whether the wrapped backend runs a real model."""
        return self.backend.real

    @property
    def capabilities(self) -> ModelCapabilities:
        """The wrapped backend's capabilities (read through on every access)."""
        return self.backend.capabilities

    @property
    def load_info(self) -> Mapping[str, Any]:
        """How the wrapped backend was loaded."""
        return self.backend.load_info

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """The wrapped backend's completions."""
        return self.backend.generate(messages, params)

    def generate_batch(self, conversations: list[list[Message]], params: GenerationParams) -> list[list[Completion]]:
        """The wrapped backend's completions of a batch."""
        return self.backend.generate_batch(conversations, params)

    def stream(self, messages: list[Message], params: GenerationParams) -> Generator[str, None, Completion]:
        """The wrapped backend's stream."""
        return (yield from self.backend.stream(messages, params))

    def count_tokens(self, messages: list[Message]) -> int:
        """The wrapped backend's prompt-token count for ``messages``."""
        return self.backend.count_tokens(messages)

    def option_logprobs(self, messages: list[Message], options: Sequence[str]) -> OptionLogprobs:
        """The wrapped backend's next-token scores of ``options``."""
        return self.backend.option_logprobs(messages, options)

    def close(self) -> None:
        """Nothing to release: the wrapped backend belongs to whoever made it (close it there)."""
