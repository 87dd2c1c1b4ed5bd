"""Model backends behind one protocol: chat messages in, ``n`` completions out."""

from ponder.models.base import Completion, GenerationParams, Message, ModelBackend, ModelCapabilities

__all__ = ["Completion", "GenerationParams", "Message", "ModelBackend", "ModelCapabilities"]
