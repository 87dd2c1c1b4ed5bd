"""The search corpus: a JSONL file of ``{"id", "title", "text"}`` paragraphs, loaded into memory.

Each line is one document. ``sentences`` (a list of strings, as in the HotpotQA corpus) is used when
present; otherwise the text is split into sentences with a simple rule. Titles are indexed three ways
for the ReAct ``search`` action: exactly, normalised (case, accents, punctuation and a leading article
ignored) and by their *base* (the title without a trailing ``(disambiguation)`` part).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ponder.core.datafiles import read_jsonl_file
from ponder.core.errors import DataError

__all__ = ["Corpus", "Doc", "base_title", "fold", "load_corpus", "normalize_title", "split_sentences"]

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an) (?=\S)")
_PARENTHETICAL = re.compile(r"\s*\([^()]*\)\s*$")


@dataclass(frozen=True)
class Doc:
    """One paragraph of the corpus.

    Attributes:
        id: The document id from the file.
        title: The page title.
        text: The paragraph text.
        sentences: The text split into sentences (stripped, non-empty).
    """

    id: str
    title: str
    text: str
    sentences: tuple[str, ...]


def fold(text: str) -> str:
    """Lower-case ``text`` and strip accents (``Beyoncé`` -> ``beyonce``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def normalize_title(title: str) -> str:
    """The key used to match an entity to a title: folded, punctuation to spaces, no leading article."""
    key = " ".join(_NON_ALNUM.sub(" ", fold(title)).split())
    return _LEADING_ARTICLE.sub("", key)


def base_title(title: str) -> str:
    """The title without a trailing parenthetical: ``Viva (UK and Ireland)`` -> ``Viva``."""
    return _PARENTHETICAL.sub("", title).strip() or title


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences at ``. ! ?`` followed by a capital letter or a digit."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


@dataclass
class Corpus:
    """The documents of one corpus file and its title lookup tables.

    Attributes:
        path: The JSONL file the documents came from (``None`` for an in-memory corpus).
        docs: The documents, in file order; a document's position is its index everywhere else.
        sha256: Hex SHA-256 of the file (the cache key of indexes built over it).
    """

    docs: list[Doc]
    path: Path | None = None
    sha256: str = ""
    _exact: dict[str, int] = field(default_factory=dict, repr=False)
    _normalized: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _base: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for i, doc in enumerate(self.docs):
            self._exact.setdefault(doc.title, i)
            self._normalized.setdefault(normalize_title(doc.title), []).append(i)
            base = base_title(doc.title)
            if base != doc.title:
                self._base.setdefault(normalize_title(base), []).append(i)

    def __len__(self) -> int:
        return len(self.docs)

    @classmethod
    def from_docs(cls, docs: Iterable[Doc]) -> Corpus:
        """Build an in-memory corpus (its ``sha256`` hashes the documents, for caching)."""
        docs = list(docs)
        digest = hashlib.sha256()
        for d in docs:
            digest.update(json.dumps([d.id, d.title, d.text, d.sentences]).encode())
            digest.update(b"\n")
        return cls(docs=docs, sha256=digest.hexdigest())

    def title_matches(self, entity: str) -> tuple[str, list[int]]:
        """Documents whose title matches ``entity``, and the kind of match.

        The exact title wins; then titles equal after normalisation; then titles whose base (without
        a trailing parenthetical) equals the entity, e.g. ``Relativity`` -> ``Relativity (album)``.

        Returns:
            ``(kind, document indexes)`` with kind ``"exact"``, ``"normalized"``, ``"base"`` or ``""``
            (no match, empty list). Several indexes mean an ambiguous entity.
        """
        entity = entity.strip()
        if entity in self._exact:
            return "exact", [self._exact[entity]]
        key = normalize_title(entity)
        if not key:
            return "", []
        if key in self._normalized:
            return "normalized", list(self._normalized[key])
        if key in self._base:
            return "base", list(self._base[key])
        return "", []


def _parse_doc(obj: object) -> Doc:
    """One corpus line as a :class:`Doc`; ``ValueError`` says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object with id, title and text, got {type(obj).__name__}")
    missing = [key for key in ("id", "title", "text") if key not in obj]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    doc_id, title, text = obj["id"], obj["title"], obj["text"]
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    for name, value in (("id", doc_id), ("title", title), ("text", text)):
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} must be a string, got {type(value).__name__}")
    if not title.strip():
        raise ValueError("empty title")
    raw = obj.get("sentences")
    if isinstance(raw, list) and raw and all(isinstance(s, str) for s in raw):
        sentences = [s.strip() for s in raw if s.strip()]
    else:
        sentences = split_sentences(text)
    return Doc(id=doc_id, title=title.strip(), text=text, sentences=tuple(sentences))


def load_corpus(path: Path | str) -> Corpus:
    """Read a JSONL corpus file (strictly: :func:`~ponder.core.datafiles.read_jsonl_file`).

    Args:
        path: The file; one JSON object per line with string fields ``id``, ``title`` and ``text``
            (and optionally ``sentences``, a list of strings). Blank lines are skipped.

    Returns:
        The corpus, with its file hash.

    Raises:
        DataError: when the file is missing, unreadable, empty or blank.
        BadLinesError: listing every malformed line as ``file:line: problem`` (any bad line refuses the
            corpus: the agent would otherwise search a silently smaller one).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"search corpus not found: {path} (set search_corpus or data_dir)")
    read = read_jsonl_file(path, _parse_doc, what="search corpus")
    return Corpus(docs=read.values(), path=path, sha256=read.sha256)
