"""Text that is safe to print on a terminal: no control characters from the model, the sandbox or a tool.

Sandbox output, tool observations and model text are hostile: an escape sequence in them would reach the
user's terminal byte for byte (an OSC 52 clipboard write, a cursor move that overwrites the "isolation
bwrap" line, a title change, a bell). :func:`terminal_safe` is the one function every print site uses on
such text before it is shown; :class:`TerminalSafeFormatter` does the same for log lines.

Standard library only: this module is part of the core layer and imports nothing else from ponder.
"""

from __future__ import annotations

import logging

#: Kept: newline and tab. Dropped: the rest of C0 (ESC, BEL, BS, a lone CR ...), DEL, and all of C1 (0x80-0x9f,
#: which includes the one-byte CSI 0x9b and OSC 0x9d), plus the bidirectional embedding/override/isolate
#: controls that reorder what a line appears to say ("Trojan Source").
_DROPPED = [c for c in range(0x20) if c not in (0x09, 0x0A)] + [0x7F, *range(0x80, 0xA0)]
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_TABLE = dict.fromkeys(_DROPPED + _BIDI)


def terminal_safe(text: str) -> str:
    r"""``text`` without control characters, ready for a terminal.

    ``\r\n`` becomes ``\n``; every other control character is removed, so an escape sequence loses its
    ESC (or its one-byte C1 introducer) and shows as plain, inert text.

    Args:
        text: Any text that did not come from ponder itself (model replies, sandbox stdout/stderr, values,
            tool observations, error messages that quote them).

    Returns:
        The text with only printable characters, ``\n`` and ``\t``.
    """
    if text.isprintable():  # the common case: nothing to do (isprintable is False for \n and \t too)
        return text
    return text.replace("\r\n", "\n").translate(_TABLE)


class TerminalSafeFormatter(logging.Formatter):
    """A log formatter whose lines (message, arguments and traceback) pass through :func:`terminal_safe`."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as :class:`logging.Formatter` does, then strip control characters."""
        return terminal_safe(super().format(record))


def setup_logging(level: int, fmt: str = "%(levelname)s %(name)s: %(message)s") -> None:
    """``logging.basicConfig`` to stderr with a :class:`TerminalSafeFormatter` (a no-op when already configured)."""
    handler = logging.StreamHandler()
    handler.setFormatter(TerminalSafeFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
