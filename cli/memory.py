"""``ponder memory ...``: inspect and manage the memory store (list, search, show, delete, clear, stats, I/O)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ponder.core.textsafe import terminal_safe
from ponder.core.types import MemoryKind, choices

if TYPE_CHECKING:
    from ponder.memory.schema import MemoryRecord
    from ponder.memory.store import ChromaMemoryStore

memory_app = typer.Typer(help="Inspect and manage the memory store (Chroma at memory_path or memory_url).",
                         no_args_is_help=True)

MemKindOpt = Annotated[MemoryKind | None, typer.Option("--kind", help="reflection, insight or experience "
                                                                     "(default: all).")]
MemNsOpt = Annotated[str | None, typer.Option("--namespace", "-n", help="Only this namespace (default: all).")]
MemJsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad-lines", help="Import the good lines of a file with unreadable "
                                          "ones (each is reported); by default such a file imports nothing.")]


def _memory_store() -> ChromaMemoryStore:
    """Open the configured memory store."""
    from ponder.core.settings import load_settings
    from ponder.memory.store import open_store

    return open_store(load_settings())


def _memory_table(records: list[MemoryRecord], similarities: list[float] | None = None) -> None:
    """One row per memory: its id (whole, to copy) above its text, then kind, namespace and use."""
    from rich.table import Table
    from rich.text import Text

    from ponder.core.console import console, safe

    table = Table(show_lines=True)
    table.add_column("id / text", overflow="fold", min_width=32, ratio=1)
    for column in ("kind", "namespace", *(["similarity"] if similarities else []), "score", "uses"):
        table.add_column(column, overflow="fold")
    for n, r in enumerate(records):
        text = r.text if len(r.text) <= 300 else r.text[:300] + " …"
        cell = Text.assemble((terminal_safe(r.id), "bold"), "\n", terminal_safe(text))
        sim = [f"{similarities[n]:.3f}"] if similarities else []
        table.add_row(cell, safe(r.kind), safe(r.namespace), *sim, f"{r.score:g}", str(r.use_count))
    console.print(table)
    if not records:
        console.print("no memories")


@memory_app.command("list")
def memory_list(kind: MemKindOpt = None, namespace: MemNsOpt = None,
                limit: Annotated[int, typer.Option(help="Most records shown.")] = 20,
                as_json: MemJsonOpt = False) -> None:
    """List memories, newest first."""
    records = _memory_store().list(kind, namespace=namespace, limit=limit)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in records]))
    else:
        _memory_table(records)


@memory_app.command("search")
def memory_search(query: Annotated[str, typer.Argument(help="Text to match.")], kind: MemKindOpt = None,
                  namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Namespace searched "
                                                                "(default: the memory_namespace setting).")] = None,
                  limit: Annotated[int, typer.Option(help="Most hits shown.")] = 5,
                  as_json: MemJsonOpt = False) -> None:
    """Show the memories most similar to QUERY (does not count as a use of them)."""
    store = _memory_store()
    hits = [h for k in ([kind] if kind else choices(MemoryKind))
            for h in store.search(k, query, limit, namespace=namespace, mark_used=False)]
    hits = sorted(hits, key=lambda h: -h.similarity)[:limit]
    if as_json:
        print(json.dumps([h.model_dump(mode="json") for h in hits]))
    else:
        _memory_table([h.record for h in hits], [h.similarity for h in hits])


@memory_app.command("show")
def memory_show(record_id: Annotated[str, typer.Argument(metavar="ID", help="The memory's id.")],
                as_json: MemJsonOpt = False) -> None:
    """Show one memory with all its fields."""
    from ponder.core.console import console, safe
    from ponder.core.errors import DataError

    record = _memory_store().get(record_id)
    if record is None:
        raise DataError(f"no memory with id {record_id!r}")
    if as_json:
        print(json.dumps(record.model_dump(mode="json")))
        return
    for key, value in record.model_dump(mode="json").items():
        shown = json.dumps(value) if isinstance(value, dict) else str(value)
        console.print(f"[bold]{key}[/]: {safe(shown)}")


@memory_app.command("delete")
def memory_delete(record_id: Annotated[str, typer.Argument(metavar="ID", help="The memory's id.")]) -> None:
    """Delete one memory."""
    from ponder.core.errors import DataError

    if not _memory_store().delete(record_id):
        raise DataError(f"no memory with id {record_id!r}")
    print(f"deleted {record_id}")


@memory_app.command("clear")
def memory_clear(namespace: MemNsOpt = None,
                 yes: Annotated[bool, typer.Option("--yes", help="Really delete (required).")] = False) -> None:
    """Delete every memory (in --namespace when given); needs --yes."""
    from ponder.core.errors import ConfigError

    where = f"namespace {namespace!r}" if namespace else "every namespace"
    if not yes:
        raise ConfigError(f"refusing to clear the memories of {where} without --yes")
    print(f"deleted {_memory_store().clear(namespace)} memories from {where}")


@memory_app.command("stats")
def memory_stats(as_json: MemJsonOpt = False) -> None:
    """Counts per kind and namespace, where the store lives and its limits."""
    from rich.table import Table

    from ponder.core.console import console, safe

    stats = _memory_store().stats()
    if as_json:
        print(json.dumps(stats))
        return
    console.print(f"store     {stats['backend']} at {stats['location']}\nschema    v{stats['schema_version']}\n"
                  f"embedder  {stats['embedder']}\ncapacity  {stats['capacity']} per kind and namespace",
                  markup=False, soft_wrap=True)
    table = Table("kind", "namespace", "records")
    for kind, per_ns in stats["counts"].items():
        for ns, count in per_ns.items() or [("-", 0)]:
            table.add_row(kind, safe(ns), str(count))
    console.print(table)
    console.print(f"total {stats['total']}")


@memory_app.command("export")
def memory_export(file: Annotated[Path, typer.Argument(help="JSONL file to write (replaced).")]) -> None:
    """Write every memory to FILE as JSONL (ids, timestamps, scores kept)."""
    print(f"exported {_memory_store().export(file)} memories to {file}")


@memory_app.command("import")
def memory_import(file: Annotated[Path, typer.Argument(help="JSONL file written by 'ponder memory export'.")],
                  as_json: MemJsonOpt = False,
                  skip_bad_lines: SkipBadOpt = False) -> None:
    """Read memories from FILE (same ids replace; bad lines, empty, oversized and near-duplicates are reported)."""
    results = _memory_store().import_(file, skip_bad_lines=skip_bad_lines)
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in results]))
        return
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
        if r.status == "skipped":
            print(terminal_safe(f"skipped {r.reason}"), file=sys.stderr)
        elif r.status in ("rejected", "duplicate"):
            print(terminal_safe(f"{r.status} {r.id}: {r.reason}"), file=sys.stderr)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
    print(f"imported from {file}: {summary}")
