"""A tool result as an observation: its text, and a short note for each block the model cannot read."""

from __future__ import annotations

import base64
import binascii
import json

from mcp_types import (
    AudioContent,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

#: Longest observation kept (characters); the rest is cut with a note.
MAX_OBSERVATION_CHARS = 16_000


def observation(result: CallToolResult) -> str:
    """The observation text of ``result``.

    Text blocks are joined by newlines; images, audio, binary resources and links become one-line notes; a
    result with no content shows its structured content as JSON. (Whether it is an error, ``isError``, is for
    the caller to say.)
    """
    parts = [_block_text(block) for block in result.content]
    text = "\n".join(p for p in parts if p)
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content, ensure_ascii=False, default=str)
    if len(text) > MAX_OBSERVATION_CHARS:
        text = f"{text[:MAX_OBSERVATION_CHARS]}\n[... {len(text) - MAX_OBSERVATION_CHARS} more characters cut]"
    return text or ("the tool failed without a message" if result.is_error else "(the tool returned no content)")


def _block_text(block: ContentBlock) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, ImageContent | AudioContent):
        return f"[{block.type}: {block.mime_type}, {_size(block.data)}]"
    if isinstance(block, ResourceLink):
        return f"[resource link: {block.uri}{f' ({block.name})' if block.name else ''}]"
    if isinstance(block, EmbeddedResource):
        res = block.resource
        if isinstance(res, TextResourceContents):
            return res.text
        return f"[resource: {res.uri}, {res.mime_type or 'binary'}, {_size(res.blob)}]"
    return f"[{type(block).__name__}]"


def _size(data: str) -> str:
    try:
        return f"{len(base64.b64decode(data, validate=False))} bytes"
    except (binascii.Error, ValueError):
        return f"{len(data)} characters of base64"
