import io
import logging

import pytest

from ponder.core.textsafe import TerminalSafeFormatter, terminal_safe

#: Real sequences an attacker would print: OSC 52 clipboard write (BEL and ST terminated), cursor up + erase
#: line (to overwrite the "isolation bwrap" line), an 8-bit CSI, a window title, a bell, a lone carriage return.
ATTACKS = {
    "osc52_bel": "\x1b]52;c;cm0gLXJmIH4K\x07",
    "osc52_st": "\x1b]52;c;cm0gLXJmIH4K\x1b\\",
    "cursor_up_erase": "\x1b[1A\x1b[2K",
    "c1_csi": "\x9b2J",
    "c1_osc": "\x9d0;title\x9c",
    "title": "\x1b]0;pwned\x07",
    "bell_backspace": "\x07\x08\x08",
    "lone_cr": "fake\rreal",
    "del": "a\x7fb",
    "bidi_override": "x\u202eevil\u202c",
}


@pytest.mark.parametrize("payload", ATTACKS.values(), ids=ATTACKS.keys())
def test_every_control_character_is_removed(payload):
    cleaned = terminal_safe(f"before {payload} after")
    assert cleaned.isprintable(), repr(cleaned)
    assert cleaned.startswith("before ") and cleaned.endswith(" after")


def test_newline_and_tab_are_kept_and_crlf_becomes_lf():
    assert terminal_safe("a\tb\nc\r\nd") == "a\tb\nc\nd"


@pytest.mark.parametrize("text", ["plain ascii", "naïve café – ü 日本 🙂", "[bold]markup stays text[/]", ""])
def test_printable_text_is_unchanged(text):
    assert terminal_safe(text) == text


def test_every_c0_c1_and_del_code_point():
    every = "".join(map(chr, [*range(0x20), 0x7F, *range(0x80, 0xA0)]))
    assert terminal_safe(every) == "\t\n"


def test_log_formatter_strips_messages_and_arguments():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TerminalSafeFormatter("%(message)s"))
    log = logging.getLogger("ponder.test_textsafe")
    log.addHandler(handler)
    try:
        log.warning("tool said %s", "\x1b]52;c;eA==\x07ok\x9b1A")
    finally:
        log.removeHandler(handler)
    assert stream.getvalue() == "tool said ]52;c;eA==ok1A\n"
