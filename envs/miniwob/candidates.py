"""The actions a page offers, for the ``random`` baseline (MiniWoB lists no admissible actions itself).

Read from the observation text (what the agent sees, like the solvers): ``click [ref]`` on every element,
``select [ref] option`` for every option of a ``<select>``, and ``type [ref] text`` into every text field with
each quoted phrase and word of the task's instruction (the utterance), so a random policy can fill a form.
"""

from __future__ import annotations

import re

from ponder.core.environment import EnvReset, EnvStep
from ponder.envs.miniwob.page import parse_page

#: ``input_*`` tags that take no typed text (as the env's clear-before-type script).
_NOT_TEXT = frozenset({"input_checkbox", "input_radio", "input_button", "input_submit", "input_reset", "input_file",
                       "input_image", "input_range", "input_color"})
#: At most this many phrases to type (the utterance's quoted phrases first, then its words).
MAX_PHRASES = 12


def typed_phrases(utterance: str) -> list[str]:
    """What a random policy may type: the utterance's quoted phrases, then its distinct words (punctuation cut)."""
    quoted = [q.strip() for q in re.findall(r'"([^"]+)"', utterance) if q.strip()]
    words = [w for w in (t.strip(".,:;!?()'\"") for t in utterance.split()) if w]
    return list(dict.fromkeys([*quoted, *words]))[:MAX_PHRASES]


def candidate_actions(observation: str, utterance: str) -> list[str]:
    """Every action on the elements of the page in ``observation`` (``[]`` when it shows no page)."""
    phrases = typed_phrases(utterance)
    out: list[str] = []
    for element in parse_page(observation).elements:
        out.append(f"click [{element.ref}]")
        out += [f"select [{element.ref}] {option}" for option in element.options]
        if element.tag == "textarea" or (element.tag.startswith("input_") and element.tag not in _NOT_TEXT):
            out += [f"type [{element.ref}] {phrase}" for phrase in phrases]
    return out


class PageActions:
    """An :data:`~ponder.envs.random_policy.ActionSource` over MiniWoB pages.

    The reset's ``info["utterance"]`` gives the phrases to type; an answer that shows no page (an invalid
    action) keeps the previous page's actions.
    """

    def __init__(self) -> None:
        self.utterance = ""
        self.actions: list[str] = []

    def __call__(self, answer: EnvReset | EnvStep) -> list[str]:
        """The actions of the page ``answer`` shows (or of the last page shown)."""
        if "utterance" in answer.info:
            self.utterance = str(answer.info["utterance"])
        found = candidate_actions(answer.observation, self.utterance)
        if found:
            self.actions = found
        return self.actions
