"""The chat template used while training: the model's own, with ``{% generation %}`` markers for the loss mask.

TRL computes "loss on the assistant turns only" from the template's generation markers. SmolLM2's ChatML template
has none, so training swaps in ``prompts/train_chatml.jinja`` — the same text with the assistant content and its
``<|im_end|>`` inside the markers (so the model also learns to end its turn) — after checking that it renders a
probe conversation exactly as the model's template does. The saved model keeps its original template.
"""

from __future__ import annotations

from typing import Any

from ponder.core.errors import ConfigError
from ponder.core.prompts import PROMPT_DIR

_PROBE = [{"role": "system", "content": "S"}, {"role": "user", "content": "Question: 1+1?"},
          {"role": "assistant", "content": "Thought: t\nAction: calculator\nAction Input: 1+1"},
          {"role": "user", "content": "Observation: 2"},
          {"role": "assistant", "content": "Thought: I now know the final answer\nFinal Answer: 2"}]


def _render(tokenizer: Any, template: str) -> str:
    return str(tokenizer.apply_chat_template(_PROBE, chat_template=template, tokenize=False))


def training_template(tokenizer: Any) -> str:
    """A template with generation markers that renders conversations exactly as ``tokenizer``'s own.

    Raises:
        ConfigError: when the tokenizer has no chat template, or one neither ponder's ChatML training template nor
            TRL's training templates reproduce.
    """
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    original = tokenizer.chat_template
    if not original:
        raise ConfigError("the base model's tokenizer has no chat template; training on chat data needs one")
    if has_generation_markers(original):
        return str(original)
    ours = (PROMPT_DIR / "train_chatml.jinja").read_text(encoding="utf-8")
    if _render(tokenizer, ours) == _render(tokenizer, original):
        return ours
    try:
        theirs = get_training_chat_template(tokenizer)
    except Exception:  # noqa: BLE001 - TRL raises various errors for templates it does not know
        theirs = None
    if theirs and _render(tokenizer, theirs) == _render(tokenizer, original):
        return str(theirs)
    raise ConfigError("the base model's chat template is not one ponder or TRL can mark for assistant-only loss; "
                      "give the tokenizer a template with {% generation %} markers")
