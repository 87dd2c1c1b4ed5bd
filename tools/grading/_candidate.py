"""The candidate side of the grading harness: runs the model's definitions and serves calls (builtins only).

The trusted side forks, closes every inherited file descriptor but 0-2 (stdin becomes ``/dev/null``)
and the two channel pipes, and execs ``python -I -S -B -c <_codec.py + this file> READ_FD WRITE_FD``: a
fresh interpreter that holds nothing of the trusted side (not its tests, not its verdict marker).
Everything here is *untrusted*: the model's code shares this process and may replace any of it, so the
trusted side believes nothing it sends beyond what ``decode_tokens`` accepts.

Messages in (``marshal``): ``("load", source)`` once, then ``("call", name, args, kwargs)`` or
``("bye",)``. Messages out (tokens, see ``_codec.py``): ``n <hex name>...`` (the callables it defines)
after loading, per call ``v <value tokens>``, ``e <hex type name> <hex message>`` (an ``Exception``)
or ``x <hex text>`` (anything else: ``SystemExit``, a non-plain result...; the process then exits),
and ``k`` for ``bye``.
"""

import marshal
import os
import sys

if "encode_tokens" not in globals():  # on the host (tests, linters); in the sandbox the codec precedes this file
    from ponder.tools.grading._codec import FrameReader, PlainError, encode_tokens, write_frame


def _hex(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").hex()


def _describe(exc: BaseException) -> str:
    try:
        message = str(exc)[:2000]
    except BaseException:  # noqa: BLE001 - a hostile __str__
        message = "<unprintable>"
    return f"{_hex(type(exc).__name__)} {_hex(message)}"


def _send(fd: int, text: str) -> None:
    write_frame(fd, text.encode("ascii"))


def _fatal(fd: int, text: str) -> None:
    try:
        _send(fd, "x " + _hex(text[:2000]))
    finally:
        os._exit(1)


def _call(namespace: dict, message: tuple) -> str:
    """Run one call: the reply (``v ...`` or ``e ...``); a ``BaseException`` that is not an ``Exception`` escapes."""
    _, name, args, kwargs = message
    function = namespace.get(name)
    if not callable(function):
        return f"e {_hex('NameError')} {_hex(f'name {name!r} is not a function of the candidate')}"
    try:
        value = function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported to the trusted side, which re-raises it
        return "e " + _describe(exc)
    tokens = ["v"]
    try:
        encode_tokens(value, tokens)
    except (PlainError, RecursionError) as exc:
        return "x " + _hex(f"the candidate returned a non-plain value: {exc}")
    return " ".join(tokens)


def _load(reader: FrameReader, write_fd: int) -> dict:
    first = reader.read()
    message = marshal.loads(first) if first else None
    if type(message) is not tuple or len(message) != 2 or message[0] != "load":
        os._exit(2)
    module = type(sys)("__main__")
    sys.modules["__main__"] = module
    namespace = module.__dict__
    namespace["__builtins__"] = __builtins__
    try:
        exec(compile(message[1], "<candidate>", "exec"), namespace)
    except Exception as exc:  # noqa: BLE001 - the tests will see it
        _send(write_fd, "e " + _describe(exc))
        os._exit(1)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and friends disqualify
        _fatal(write_fd, f"{type(exc).__name__} while loading the definitions")
    names = [name for name, value in list(namespace.items()) if callable(value)][:10000]
    _send(write_fd, " ".join(["n", *(_hex(name) for name in names)]))
    return namespace


def serve(read_fd: int, write_fd: int) -> None:
    """Load the candidate's definitions, then answer calls until ``bye`` or end of file."""
    reader = FrameReader(read_fd)
    namespace = _load(reader, write_fd)
    while True:
        data = reader.read()
        message = marshal.loads(data) if data else None
        if type(message) is not tuple or message[0] != "call":
            if message == ("bye",):
                _send(write_fd, "k")
            os._exit(0)
        try:
            reply = _call(namespace, message)
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, GeneratorExit...
            _fatal(write_fd, f"{type(exc).__name__} raised by the candidate")
        _send(write_fd, reply)
        if reply.startswith("x"):
            os._exit(1)


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
