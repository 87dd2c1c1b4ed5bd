"""The model protocol shared by every backend."""

from __future__ import annotations

import os
from typing import Literal, Protocol, TypedDict, runtime_checkable

from pydantic import BaseModel, Field

from ponder.errors import RealModelCallError

FinishReason = Literal["stop", "length", "error"]

#: Environment flag set by the unit-test suite: any real backend call then raises.
FORBID_REAL_MODEL_ENV = "PONDER_FORBID_REAL_MODEL"


class Message(TypedDict):
    """One chat message, as in the OpenAI chat format."""

    role: Literal["system", "user", "assistant"]
    content: str


class GenerationParams(BaseModel):
    """Sampling parameters understood by every backend."""

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    n: int = Field(1, ge=1, le=128)
    logprobs: bool = False


class Completion(BaseModel):
    """One generated completion.

    Attributes:
        text: The generated text, cut before the first stop sequence (which is not included).
        finish_reason: ``stop`` (EOS or a stop sequence), ``length`` (hit ``max_tokens``) or ``error``.
        prompt_tokens: Tokens in the prompt that produced this completion.
        completion_tokens: Tokens generated for this completion.
        logprob: Sum of token log-probabilities when the backend returns them, else ``None``.
    """

    text: str
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprob: float | None = None


@runtime_checkable
class ModelBackend(Protocol):
    """What an agent needs from a model.

    Implementations: ``embedded`` / ``transformers`` (local), ``openai`` (any OpenAI-compatible server),
    ``scripted`` (tests and examples).
    """

    spec: str

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` completions for one conversation."""
        ...

    def generate_batch(
        self, conversations: list[list[Message]], params: GenerationParams
    ) -> list[list[Completion]]:
        """Return ``params.n`` completions for each of many conversations, in order."""
        ...


class BaseBackend:
    """Convenience base: implement either :meth:`generate` or :meth:`generate_batch`."""

    spec: str = "base"
    #: ``True`` for backends that run a real model; guarded in unit tests.
    real: bool = True

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` completions for one conversation."""
        return self.generate_batch([messages], params)[0]

    def generate_batch(
        self, conversations: list[list[Message]], params: GenerationParams
    ) -> list[list[Completion]]:
        """Return ``params.n`` completions per conversation (default: one call each)."""
        return [self.generate(messages, params) for messages in conversations]

    def check_allowed(self) -> None:
        """Raise when a real model is called while ``PONDER_FORBID_REAL_MODEL`` is set (unit tests)."""
        if self.real and os.environ.get(FORBID_REAL_MODEL_ENV):
            raise RealModelCallError(
                f"real model '{self.spec}' called while {FORBID_REAL_MODEL_ENV} is set: unit tests must "
                "use the scripted model (mark the test 'integration' to allow real models)"
            )


def truncate_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop sequence.

    Returns:
        The cut text and whether a stop sequence was found.
    """
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if 0 <= i < cut:
                cut = i
    return text[:cut], cut < len(text)
