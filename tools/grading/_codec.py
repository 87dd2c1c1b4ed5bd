"""Plain values on the grading channel, both sides (builtin modules only; embedded in sandbox programs).

The trusted side of the harness and the candidate process exchange only *plain* values: ``None``,
``bool``, ``int``, ``float`` (``nan`` and ``inf`` included), ``complex``, ``str``, ``bytes``, ``list``,
``tuple``, ``dict``, ``set`` and ``frozenset``, of exactly these types (no subclasses), nested at most
``MAX_DEPTH`` deep and ``MAX_ITEMS`` items in all. Frames are ``b"<length>" + newline + payload``.

* Trusted -> candidate: :mod:`marshal` of a tuple, after :func:`check_plain` (the trusted side only
  ever sends plain values; the candidate may unmarshal what it likes).
* Candidate -> trusted: ASCII tokens separated by spaces, in prefix order (:func:`encode_tokens`):
  ``N`` ``T`` ``F`` (None, True, False), ``i<hex>`` (int), ``f<float.hex>``, ``c<re>|<im>``,
  ``s<hex of UTF-8>``, ``y<hex>`` (bytes), then ``l<n>`` ``t<n>`` ``S<n>`` ``Z<n>`` (list, tuple, set,
  frozenset of the ``n`` values that follow) and ``d<n>`` (``n`` key/value pairs). :func:`decode_tokens`
  is the only way such a value becomes a Python object on the trusted side: an iterative parser that
  builds new built-in objects and runs no code of the candidate's (no pickle, no eval).

Only builtin modules are imported: the sandbox starts every interpreter cold, where importing ``json``
or ``re`` costs tens of milliseconds.
"""

import os

MAX_DEPTH = 64
MAX_ITEMS = 1_000_000
MAX_FRAME = 64 << 20  # bytes of one frame
_HEX = frozenset(b"0123456789abcdef")
_CONTAINERS = {b"l": list, b"t": tuple, b"S": set, b"Z": frozenset, b"d": dict}


class PlainError(ValueError):
    """A value that is not plain, or tokens that do not encode one."""


def check_plain(value: object) -> None:
    """Check that ``value`` is plain (exact built-in types, bounded depth and size).

    Raises:
        PlainError: naming the first offending type.
    """
    stack, count = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > MAX_ITEMS:
            raise PlainError("the value is nested too deeply or too large")
        kind = type(item)
        if item is None or kind in (bool, int, float, complex, str, bytes):
            continue
        if kind in (list, tuple, set, frozenset):
            stack.extend((x, depth + 1) for x in item)
        elif kind is dict:
            stack.extend((x, depth + 1) for pair in item.items() for x in pair)
        else:
            raise PlainError(f"a value of type {kind.__name__!r} is not a plain value")


def encode_tokens(value: object, out: list, depth: int = 0) -> None:
    """Append the tokens of a plain ``value`` to ``out`` (the candidate's side).

    Raises:
        PlainError: for any other type (subclasses included) or too deep a nesting.
    """
    kind = type(value)
    if depth > MAX_DEPTH or len(out) > MAX_ITEMS:
        raise PlainError("the value is nested too deeply or too large")
    if value is None or kind is bool:
        out.append({None: "N", True: "T", False: "F"}[value])
    elif kind is int:
        out.append("i" + format(value, "x"))
    elif kind is float:
        out.append("f" + value.hex())
    elif kind is complex:
        out.append(f"c{value.real.hex()}|{value.imag.hex()}")
    elif kind is str:
        out.append("s" + value.encode("utf-8", "surrogatepass").hex())
    elif kind is bytes:
        out.append("y" + value.hex())
    elif kind in (list, tuple, set, frozenset):
        out.append({list: "l", tuple: "t", set: "S", frozenset: "Z"}[kind] + str(len(value)))
        for item in list(value):
            encode_tokens(item, out, depth + 1)
    elif kind is dict:
        out.append(f"d{len(value)}")
        for key, item in list(value.items()):
            encode_tokens(key, out, depth + 1)
            encode_tokens(item, out, depth + 1)
    else:
        raise PlainError(f"a value of type {kind.__name__!r} is not a plain value")


def _hex(body: bytes, signed: bool = False) -> bytes:
    digits = body[1:] if signed and body[:1] == b"-" else body
    if not digits or not _HEX.issuperset(digits):
        raise PlainError("malformed value")
    return body


def _float(body: bytes) -> float:
    if len(body) > 40:
        raise PlainError("malformed float")
    return float.fromhex(body.decode("ascii"))


def _scalar(head: bytes, body: bytes) -> object:
    if head in (b"N", b"T", b"F") and not body:
        return {b"N": None, b"T": True, b"F": False}[head]
    if head == b"i" and len(body) <= 1 << 17:
        return int(_hex(body, signed=True), 16)
    if head == b"f":
        return _float(body)
    if head == b"c" and body.count(b"|") == 1:
        real, imag = body.split(b"|")
        return complex(_float(real), _float(imag))
    if head == b"s" and len(body) % 2 == 0:
        return bytes.fromhex(_hex(body).decode("ascii") if body else "").decode("utf-8", "surrogatepass")
    if head == b"y" and len(body) % 2 == 0:
        return bytes.fromhex(_hex(body).decode("ascii") if body else "")
    raise PlainError("malformed value")


def _build(head: bytes, items: list) -> object:
    if head == b"d":
        return dict(zip(items[::2], items[1::2], strict=True))
    return _CONTAINERS[head](items)


def decode_tokens(tokens: list) -> object:
    """The one plain value that ``tokens`` (a list of ``bytes``) encode, checked strictly.

    Raises:
        PlainError: for anything :func:`encode_tokens` would not have produced (trailing tokens too).
    """
    if not tokens or len(tokens) > MAX_ITEMS:
        raise PlainError("malformed value")
    stack: list = []  # [head, items still to come, items so far]
    done: list = []
    try:
        for token in tokens:
            if done:
                raise PlainError("trailing tokens after the value")
            head, body = token[:1], token[1:]
            if head in _CONTAINERS:
                if not body.isdigit() or len(body) > 7:
                    raise PlainError("malformed container")
                size = int(body) * (2 if head == b"d" else 1)
                if size:
                    if len(stack) >= MAX_DEPTH:
                        raise PlainError("the value is nested too deeply")
                    stack.append([head, size, []])
                    continue
                value = _build(head, [])
            else:
                value = _scalar(head, body)
            while stack:  # attach the value; close every container it completes
                top = stack[-1]
                top[2].append(value)
                top[1] -= 1
                if top[1]:
                    break
                stack.pop()
                value = _build(top[0], top[2])
            else:
                done.append(value)
    except PlainError:
        raise
    except (TypeError, ValueError, OverflowError, UnicodeError) as exc:  # unhashable keys, bad hex
        raise PlainError(f"malformed value ({type(exc).__name__})") from None
    if stack or len(done) != 1:
        raise PlainError("incomplete value")
    return done[0]


def write_frame(fd: int, payload: bytes) -> None:
    """Send one frame (``OSError`` when the other side is gone)."""
    data = b"%d\n" % len(payload) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class FrameReader:
    """Reads frames from a pipe; ``None`` at end of file or for a malformed or oversized frame."""

    def __init__(self, fd: int, limit: int = MAX_FRAME) -> None:
        self.fd, self.limit, self.buffer = fd, limit, bytearray()

    def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            try:
                chunk = os.read(self.fd, max(65536, size - len(self.buffer)))
            except InterruptedError:
                continue
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read(self) -> bytes | None:
        """The next frame's payload, or ``None``."""
        while b"\n" not in self.buffer:
            if len(self.buffer) > 20 or not self._fill(len(self.buffer) + 1):
                return None
        end = self.buffer.index(b"\n")
        head = bytes(self.buffer[:end])
        if not head.isdigit() or int(head) > self.limit:
            return None
        size = int(head)
        del self.buffer[: end + 1]
        if not self._fill(size):
            return None
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data
