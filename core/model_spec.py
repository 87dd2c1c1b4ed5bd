"""Model spec strings (``embedded``, ``openai:<model>@<url>``, ...): their grammar, checked without loading anything."""

from __future__ import annotations

from dataclasses import dataclass

from ponder.core.errors import ConfigError

SPEC_HELP = (
    "expected one of: embedded | llamacpp[:<file.gguf>] | transformers[:<file.gguf|model dir>] "
    "| openai:<model>@<base_url>[,<base_url>...] | scripted:<file.jsonl> "
    "(several base URLs: one pool of identical servers, requests spread over them)"
)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec."""

    kind: str
    model: str = ""
    #: ``openai``: the base URL, or several joined by commas (a pool of replicas); empty: none named.
    base_url: str = ""
    path: str = ""

    @property
    def base_urls(self) -> tuple[str, ...]:
        """The base URLs of an ``openai`` spec, in order (empty when the spec names none)."""
        return tuple(self.base_url.split(",")) if self.base_url else ()

    def __str__(self) -> str:
        if self.kind == "openai":
            return f"openai:{self.model}@{self.base_url}" if self.base_url else f"openai:{self.model}"
        return f"{self.kind}:{self.path}" if self.path else self.kind


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model spec string.

    Raises:
        ConfigError: for an unknown kind or a missing part, with the accepted forms.
    """
    text = (spec or "").strip()
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    if kind in ("embedded", "transformers", "llamacpp"):
        if kind == "embedded" and rest:
            raise ConfigError(f"bad model spec {spec!r}: 'embedded' takes no argument; {SPEC_HELP}")
        return ModelSpec(kind=kind, path=rest)
    if kind == "openai":
        model, at, base_url = rest.rpartition("@") if "@" in rest else (rest, "", "")
        if not model:
            raise ConfigError(f"bad model spec {spec!r}: missing model name; {SPEC_HELP}")
        if not at:
            return ModelSpec(kind="openai", model=model)
        try:
            urls = check_base_urls(base_url.split(","))
        except ConfigError as exc:
            raise ConfigError(f"bad model spec {spec!r}: {exc}") from None
        return ModelSpec(kind="openai", model=model, base_url=",".join(urls))
    if kind == "scripted":
        if not rest:
            raise ConfigError(f"bad model spec {spec!r}: scripted needs a JSONL file; {SPEC_HELP}")
        return ModelSpec(kind="scripted", path=rest)
    raise ConfigError(f"bad model spec {spec!r}: {SPEC_HELP}")


def check_base_urls(urls: list[str]) -> list[str]:
    """Check the base URLs of OpenAI-compatible servers: each ``http(s)://...``, none twice (trailing ``/`` ignored).

    Returns:
        The URLs, stripped of surrounding spaces and trailing slashes.

    Raises:
        ConfigError: naming the first bad or repeated URL.
    """
    out: list[str] = []
    for raw in urls:
        url = raw.strip().rstrip("/")
        if not url:
            raise ConfigError("empty base URL (base URLs are separated by single commas)")
        if not url.startswith(("http://", "https://")) or url in ("http:/", "https:/"):
            raise ConfigError(f"base URL {raw.strip()!r} must start with http:// or https://")
        if url in out:
            raise ConfigError(f"base URL {url!r} is named twice")
        out.append(url)
    return out
