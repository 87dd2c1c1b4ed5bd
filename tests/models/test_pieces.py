"""Byte-piece helpers shared by the llama.cpp single-sequence and batched decoders."""

from __future__ import annotations

from ponder.models.base import completion_from_pieces, stop_in_tail


def test_completion_cut_at_stop_counts_only_the_tokens_kept():
    pieces = [b"Thought", b": ok", b"\nObs", b"ervation", b": 4"]
    c = completion_from_pieces(pieces, ["\nObservation:"], hit_end=False, prompt_tokens=7,
                               logprobs=[-1.0, -2.0, -4.0, -8.0, -16.0])
    assert (c.text, c.finish_reason, c.completion_tokens, c.prompt_tokens) == ("Thought: ok", "stop", 2, 7)
    assert c.logprob == -3.0


def test_completion_without_stop_is_length_or_end():
    pieces = ["é".encode()[:1], "é".encode()[1:], b"!"]  # a character split across two tokens
    assert completion_from_pieces(pieces, [], hit_end=False, prompt_tokens=1, logprobs=None).model_dump() == {
        "text": "é!", "finish_reason": "length", "prompt_tokens": 1, "completion_tokens": 3, "logprob": None,
        "tool_calls": []}
    assert completion_from_pieces(pieces, [], hit_end=True, prompt_tokens=1, logprobs=None).finish_reason == "stop"


def test_stop_in_tail_sees_a_stop_split_across_pieces():
    assert stop_in_tail(b"abc\nObserv" + b"ation:", 6, ["\nObservation:"])
    assert not stop_in_tail(b"abc\nObserv", 6, ["\nObservation:"])
    assert not stop_in_tail(b"\nObservation: long ago" + b"x" * 40, 1, ["\nObservation:"])  # only the tail is read
