"""The sandbox worker's helpers (``tools/_exec_worker.py``): the private channel's frames and the JSON encoder."""

from __future__ import annotations

import json

from ponder.tools._exec_worker import _json, _pack, _split_frame, _unpack


def test_private_frames_round_trip_and_reject_anything_else() -> None:
    result = {"value": "'é 😀 \udc80'", "error_type": "E", "error_message": "m\n", "traceback": "", "cell": "3",
              "value_truncated": True}
    frame = _pack(result)
    body = _split_frame(bytearray(frame), 1 << 20)
    assert _unpack(body) == result and _unpack(b"") == {}
    for bad in (b"nonce 1\nx", b"value 1\nxvalue 1\ny", b"value_truncated 1\n2", b"value 5\nx",
                b"value 1\n\xff", b"value x\n", b"value 1\nxy", b"value -1\n", b"isolation 5\nbwrap"):
        assert _unpack(bad) is None, bad
    assert _split_frame(bytearray(b"9" * 30), 1 << 20) is False  # no length line
    assert _split_frame(bytearray(b"100\n" + b"x" * 10), 50) is False  # over the cap
    assert _split_frame(bytearray(b"5\nab"), 50) is None  # not complete yet


def test_worker_json_encoder_round_trips() -> None:
    data = {"a": 'q"b\\s\n\t\x00\x1f é 😀 \u2028 \udc80 \\udc80', "b": True, "c": False, "d": None}
    assert json.loads(_json(data)) == data
