"""Keep a stdio server's stray stdout lines from flooding ponder's stderr.

The SDK logs every stdout line of a server that is not JSON-RPC (a banner, a debug print) at ERROR with a full
traceback (about 11 lines each), then ignores the line. A server that prints a lot would bury the run's output.
:data:`NON_JSON_FILTER` turns the first such record into one warning line that quotes the line, and drops the rest.
"""

from __future__ import annotations

import logging
import threading

from pydantic import ValidationError

#: The SDK's message for a stdout line that is not JSON-RPC (``mcp.client.stdio._parse_line``).
PARSE_FAILURE = "Failed to parse JSONRPC message from server"
#: The SDK logger that reports those lines.
STDIO_LOGGER = "mcp.client.stdio"
#: The most characters of the offending line quoted.
MAX_QUOTED = 120


class NonJsonLines(logging.Filter):
    """Shows the first non-JSON-RPC stdout line of any server as one warning, without a traceback; drops the rest."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.seen = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite or drop the SDK's parse-failure records; pass every other record unchanged."""
        if record.msg != PARSE_FAILURE:
            return True
        with self._lock:
            self.seen += 1
            first = self.seen == 1
        if not first:
            return False
        record.msg = ("an MCP server wrote a line that is not JSON-RPC to its stdout (ignored; such lines belong on "
                      "stderr, later ones are not shown): %r")
        record.args = (_offending_line(record)[:MAX_QUOTED],)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


def _offending_line(record: logging.LogRecord) -> str:
    """The line the SDK could not parse, from the pydantic error it logged (``"?"`` if it is not there)."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, ValidationError) and exc.errors():
        value = exc.errors()[0].get("input")
        if isinstance(value, str | bytes):
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return "?"


NON_JSON_FILTER = NonJsonLines()


def install() -> None:
    """Attach :data:`NON_JSON_FILTER` to the SDK's stdio logger (once)."""
    logger = logging.getLogger(STDIO_LOGGER)
    if NON_JSON_FILTER not in logger.filters:
        logger.addFilter(NON_JSON_FILTER)
