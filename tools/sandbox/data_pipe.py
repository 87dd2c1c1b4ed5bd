"""A pipe that holds some bytes for a child process to read at its start (seccomp filter, bwrap options)."""

from __future__ import annotations

import os

PIPE_BYTES = 65536  # what a pipe's buffer holds by default: more would block the writer (nobody reads yet)


def data_pipe(data: bytes) -> int:
    """A pipe's read end holding ``data`` then end of file; the caller passes it on and closes it.

    Raises:
        ValueError: when ``data`` does not fit in the pipe's buffer.
        OSError: when no pipe can be made.
    """
    if len(data) > PIPE_BYTES:
        raise ValueError(f"{len(data)} bytes do not fit in a pipe")
    read_end, write_end = os.pipe()
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view) :]
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end
