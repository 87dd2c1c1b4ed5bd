"""Slash commands of ``ponder chat``: a dispatch table of small handlers.

Each handler takes the session and the text after the command and returns ``False`` to end the chat.
Handlers raise :class:`~ponder.core.errors.PonderError` for bad input; the loop prints it as one line.

How a turn runs (``/agent``, ``/samples``, ``/vote``, ``/trials``, ``/memory``, ...) is one command per
command-line field of :class:`~ponder.graphs.strategies.spec.RunSpec`, generated from it (:func:`spec_command`):
usage from the field's choices or type, help from its description, and every value checked by the spec.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from ponder.chat.graph import Turn
from ponder.chat.session import ChatSession, describe_memory
from ponder.core.errors import ConfigError, DataError
from ponder.core.prompts import render
from ponder.core.types import ToolName, choices
from ponder.graphs.strategies.spec import SpecField, spec_fields

Handler = Callable[[ChatSession, str], bool]

#: The run-spec fields a chat can set, by slash command name (``early_stop`` is ``/early-stop``).
SPEC_FIELDS: dict[str, SpecField] = {f.flag[2:]: f for f in spec_fields() if f.cli}


@dataclass(frozen=True)
class Command:
    """A slash command: its handler, argument synopsis and one-line help."""

    handler: Handler
    usage: str
    help: str


def cmd_help(session: ChatSession, arg: str) -> bool:
    """List the commands."""
    width = max(len(f"/{name} {c.usage}".rstrip()) for name, c in COMMANDS.items())
    for name, command in COMMANDS.items():
        session.renderer.info(f"  {f'/{name} {command.usage}'.rstrip():<{width}}  {command.help}")
    session.renderer.info("  Ctrl-C stops a turn, Ctrl-D or /quit leaves; anything else is a question.")
    return True


def cmd_model(session: ChatSession, arg: str) -> bool:
    """Show or load the model."""
    if arg:
        session.load_model(arg)
    backend = session.model.backend_name if session.model is not None else "not loaded yet"
    session.renderer.info(f"model: {session.settings.model} ({backend})")
    return True


def slash(message: str) -> str:
    """A run-spec error for the chat: its option flags (``--samples``) as slash commands (``/samples``)."""
    return re.sub(r"--([a-z][a-z-]*)", lambda m: f"/{m[1]}" if m[1] in SPEC_FIELDS else m[0], message)


def configure(session: ChatSession, **changes: Any) -> None:
    """Apply run-spec changes to the session; errors name the slash commands.

    Raises:
        ConfigError: for a value the spec refuses.
    """
    try:
        session.configure(**changes)
    except ConfigError as exc:
        raise ConfigError(slash(str(exc))) from None


def spec_command(name: str, field: SpecField) -> Command:
    """The slash command that shows or sets one run-spec field (``/vote``, ``/vote weighted``)."""
    types = set(get_args(field.annotation)) - {type(None)} or {field.annotation}
    if field.choices:
        usage = f"[{'|'.join(field.choices)}]"
    else:
        usage = "[on|off]" if types == {bool} else "[N]" if types == {int} else "[VALUE]"

    def handler(session: ChatSession, arg: str) -> bool:
        if arg:
            configure(session, **{field.name: arg})
        value = session.spec.model_dump()[field.name]
        shown = ("on" if value else "off") if isinstance(value, bool) else ("-" if value is None else value)
        session.renderer.info(f"{name}: {shown}")
        return True

    return Command(handler, usage, field.help)


def cmd_tools(session: ChatSession, arg: str) -> bool:
    """List (or set, ``/tools a,b``) the ReAct agent's tools."""
    tool_names = choices(ToolName)
    if arg:
        names = [t.strip() for t in arg.split(",") if t.strip()]
        unknown = [t for t in names if t not in tool_names]
        if unknown or not names:
            raise ConfigError(f"unknown tool(s) {', '.join(unknown) or '(none given)'}; "
                              f"available: {', '.join(tool_names)}")
        session.settings = session.settings.model_copy(update={"tools": names})
    if session.agent == "pal":
        session.renderer.info(f"the pal agent writes a Python program run in the {session.settings.sandbox} "
                              "sandbox (it uses no tools)")
    session.renderer.info(f"react tools: {', '.join(session.settings.tools)} (available: {', '.join(tool_names)})")
    return True


def cmd_memory(session: ChatSession, arg: str) -> bool:
    """Show what memory retrieved last turn, or switch memory (off, on, or a mode)."""
    if arg:
        mode = {"off": "none", "on": session.settings.memory if session.settings.memory != "none" else "both"}
        configure(session, memory=mode.get(arg, arg))
        session.renderer.info("memory off" if session.memory_mode == "none" else f"memory: {session.memory_mode}")
        return True
    for line in describe_memory(session):
        session.renderer.info(line)
    return True


def transcript(turns: list[Turn], *, steps: bool = False) -> str:
    """The conversation as text: ``User:`` / ``Assistant:`` lines (with ``steps``, the tool calls too)."""
    lines = []
    for turn in turns:
        lines.append(f"User: {turn.get('question')}")
        if steps:
            for step in turn.get("steps") or []:
                if step.get("action"):
                    lines.append(f"  (used {step['action']}[{step.get('input', '')}] → {step.get('observation', '')})")
        lines.append(f"Assistant: {turn.get('answer') if turn.get('answer') is not None else '(no answer)'}")
    return "\n".join(lines)


def cmd_reflect(session: ChatSession, arg: str) -> bool:
    """Ask the model for a lesson from this conversation and store it as a Reflexion memory."""
    from ponder.graphs.strategies.trials import open_memory
    from ponder.memory.reflection import clean_lesson, make_reflection
    from ponder.models.base import GenerationParams

    turns = session.turns()
    if not turns:
        raise DataError("nothing to reflect on yet: ask something first")
    if session.model is None:
        session.load_model()
    prompt = render("chat_reflect", transcript=transcript(turns, steps=True))
    params = GenerationParams(temperature=session.settings.temperature, max_tokens=session.settings.max_tokens,
                              seed=session.settings.seed)
    with session.renderer.console.status("Reflecting ..."):
        completion = session.model.generate([{"role": "user", "content": prompt}], params)[0]
    lesson = clean_lesson(completion.text)
    if not lesson:
        raise DataError("the model wrote no lesson; nothing stored")
    ctx = open_memory(session.settings, "reflexion", store=session.open_memory_store(), task_family="chat")
    assert ctx is not None
    record = make_reflection(ctx.for_run(f"chat-{session.thread_id}"), str(turns[0].get("question")), lesson,
                             "chat reflection (/reflect)")
    result = ctx.add(record)
    session.renderer.info(f"lesson: {lesson}")
    why = f": {result.reason}" if result.reason else ""
    session.renderer.info(f"reflection {result.id} {result.status}{why} (namespace {ctx.namespace})")
    return True


def cmd_new(session: ChatSession, arg: str) -> bool:
    """Start a new thread."""
    session.renderer.info(f"new thread {session.new_thread()}")
    return True


def cmd_threads(session: ChatSession, arg: str) -> bool:
    """List the threads with their first message and date."""
    threads = session.store.list()
    if not threads:
        session.renderer.info("no threads yet")
    for info in threads:
        mark = "*" if info.id == session.thread_id else " "
        first = " ".join(info.first_message.split())
        first = first if len(first) <= 60 else first[:59] + "…"
        session.renderer.info(f"{mark} {info.id}  {info.updated.replace('T', ' ')[:16]}  "
                              f"{info.turns} turn{'s' if info.turns != 1 else ''}  {first}")
    return True


def cmd_resume(session: ChatSession, arg: str) -> bool:
    """Switch to thread ID."""
    if not arg:
        raise ConfigError("/resume needs a thread id (see /threads)")
    turns = session.resume(arg)
    session.renderer.info(f"resumed thread {session.thread_id} ({len(turns)} turns)")
    for turn in turns[-3:]:
        session.renderer.info(f"  you: {turn.get('question')}")
        session.renderer.info(f"  ponder: {turn.get('answer')}")
    return True


def cmd_save(session: ChatSession, arg: str) -> bool:
    """Write the thread as a markdown transcript to FILE."""
    if not arg:
        raise ConfigError("/save needs a file name, e.g. /save chat.md")
    path = Path(arg).expanduser()
    turns = session.turns()
    out = [f"# ponder chat {session.thread_id}", "",
           f"_saved {datetime.now(UTC).isoformat(timespec='seconds')}, {len(turns)} turns_", ""]
    for n, turn in enumerate(turns, 1):
        out += [f"## {n}. {turn.get('question')}", ""]
        for step in turn.get("steps") or []:
            if step.get("thought"):
                out.append(f"- *Thought:* {step['thought']}")
            if step.get("action"):
                out.append(f"- **{step['action']}** `{step.get('input', '')}`")
                if step.get("observation") is not None and step.get("kind") != "final":
                    out.append(f"  → {step['observation']}")
        answer = turn.get("answer")
        out += ["", f"**Answer** ({turn.get('agent')}, {turn.get('status')}): "
                    f"{answer if answer is not None else '(no answer)'}", ""]
    try:
        path.write_text("\n".join(out), encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None
    session.renderer.info(f"saved {len(turns)} turns to {path}")
    return True


def cmd_quit(session: ChatSession, arg: str) -> bool:
    """Leave."""
    return False


COMMANDS: dict[str, Command] = {
    "help": Command(cmd_help, "", "this list"),
    "model": Command(cmd_model, "[SPEC]", "show or load a model (embedded, openai:<model>@<url>, ...)"),
    "tools": Command(cmd_tools, "[a,b]", "list (or set) the ReAct tools"),
    **{name: spec_command(name, field) for name, field in SPEC_FIELDS.items()},
    "memory": Command(cmd_memory, f"[off|on|{'|'.join(SPEC_FIELDS['memory'].choices or ())}]",
                      "what memory retrieved last turn; switch memory (on: the settings' mode, else both)"),
    "reflect": Command(cmd_reflect, "", "store a lesson from this conversation in memory"),
    "new": Command(cmd_new, "", "start a new thread"),
    "threads": Command(cmd_threads, "", "list threads with their first message and date"),
    "resume": Command(cmd_resume, "ID", "switch to another thread"),
    "save": Command(cmd_save, "FILE", "write this thread as a markdown transcript"),
    "quit": Command(cmd_quit, "", "leave (Ctrl-D too)"),
}
ALIASES = {"exit": "quit", "q": "quit", "h": "help", "?": "help"}


def dispatch(session: ChatSession, line: str) -> bool:
    """Run the slash command in ``line``; returns ``False`` when the chat should end.

    Raises:
        PonderError: for bad arguments (the caller prints one line).
    """
    name, _, arg = line.strip()[1:].partition(" ")
    name = ALIASES.get(name.lower(), name.lower())
    command = COMMANDS.get(name)
    if command is None:
        close = difflib.get_close_matches(name, COMMANDS, n=1) if name else []
        hint = f" (did you mean /{close[0]}?)" if close else ""
        raise ConfigError(f"unknown command /{name}{hint}; /help lists the commands")
    return command.handler(session, arg.strip())
