"""Model spec strings (``embedded``, ``openai:<model>@<url>``, ...): their grammar, checked without loading anything."""

from __future__ import annotations

from dataclasses import dataclass

from ponder.core.errors import ConfigError

SPEC_HELP = (
    "expected one of: embedded | llamacpp[:<file.gguf>] | transformers[:<file.gguf|model dir>] "
    "| openai:<model>@<base_url> | scripted:<file.jsonl>"
)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec."""

    kind: str
    model: str = ""
    base_url: str = ""
    path: str = ""

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
        if at and not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"bad model spec {spec!r}: base URL must start with http:// or https://")
        return ModelSpec(kind="openai", model=model, base_url=base_url)
    if kind == "scripted":
        if not rest:
            raise ConfigError(f"bad model spec {spec!r}: scripted needs a JSONL file; {SPEC_HELP}")
        return ModelSpec(kind="scripted", path=rest)
    raise ConfigError(f"bad model spec {spec!r}: {SPEC_HELP}")
