"""``ponder train``: supervised fine-tuning (lead: being written)."""

from __future__ import annotations


def train_command() -> None:
    """Fine-tune a model on chat-format training data (being written)."""
    raise NotImplementedError("lead")
