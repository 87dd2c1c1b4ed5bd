"""``StarConfig``: every option of a STaR run (``ponder star``), checked before anything runs.

The training options are those of :class:`~ponder.training.sft.TrainConfig` (``method``, ``max_steps``, ...) and are
validated by building one; ``data``, ``out``, ``base`` and ``resume`` are set per round by the loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ponder.core.errors import ConfigError
from ponder.core.model_spec import parse_spec

#: The training split shipped for each suite (relative to ``settings.data_dir``); other suites need ``--train-data``.
TRAIN_FILES = {"gsm8k": "gsm8k/train.jsonl"}
#: Options of TrainConfig the loop sets itself.
_LOOP_OWNED = frozenset({"data", "out", "base", "resume"})
#: ``star.json`` options that may change on ``--resume`` (more rounds, other display or evaluation sizes keep data).
RESUMABLE = frozenset({"out", "rounds", "resume", "quiet", "workers"})


class StarConfig(BaseModel):
    """One STaR run: sample, keep the correct, rationalize failures, fine-tune from the base, evaluate; R rounds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    suite: str = Field(description="A QA suite with numeric answers (gsm8k, svamp).")
    out: Path
    rounds: int = Field(1, ge=1)
    base: str = Field("embedded", description="embedded, transformers:DIR or llamacpp:FILE.gguf.")
    agent: Literal["react"] = "react"
    samples: int = Field(4, ge=1, description="Trajectories sampled per training question.")
    temperature: float = Field(0.7, gt=0.0, le=2.0)
    seed: int = 0
    train_data: Path | None = None
    train_skip: int = Field(0, ge=0, description="Skip the first N training rows.")
    train_limit: int | None = Field(None, ge=1)
    keep_per_question: int = Field(1, ge=1)
    keep_malformed: bool = Field(False, description="Also keep correct trajectories with a parse_error step.")
    rationalize: bool = True
    seed_data: Path | None = None
    eval_data: Path | None = Field(None, description="Held-out file (default: the suite's shipped test file).")
    eval_limit: int | None = Field(None, ge=1)
    eval_extra: tuple[str, ...] = ()
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig options (method, max_steps, ...).")
    workers: int = Field(1, ge=1, le=64)
    resume: bool = False
    quiet: bool = False

    @field_validator("base")
    @classmethod
    def _base(cls, value: str) -> str:
        text = value.strip()
        if text == "embedded":
            return text
        kind = parse_spec(text).kind if ":" in text else None
        if kind not in ("transformers", "llamacpp"):
            raise ValueError(f"--base {value!r}: embedded, transformers:DIR or llamacpp:FILE.gguf")
        return text

    @model_validator(mode="after")
    def _train_options(self) -> StarConfig:
        owned = sorted(_LOOP_OWNED & set(self.train))
        if owned:
            raise ValueError(f"training option(s) {', '.join(owned)} are set by the loop")
        from pydantic import ValidationError

        from ponder.training.sft import TrainConfig

        try:
            TrainConfig(data=Path("data.jsonl"), out=Path("model"), **self.train)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = "--" + "-".join(str(p) for p in err["loc"]).replace("_", "-")
            raise ValueError(f"{name}: {str(err['msg']).removeprefix('Value error, ')}") from None
        return self

    def train_file(self, data_dir: Path) -> Path:
        """The training questions: ``train_data``, else the suite's shipped training split.

        Raises:
            ConfigError: for a suite without a shipped training split and no ``train_data``.
        """
        if self.train_data is not None:
            return self.train_data
        if self.suite not in TRAIN_FILES:
            raise ConfigError(f"suite {self.suite!r} ships no training split: pass --train-data FILE")
        return Path(data_dir) / TRAIN_FILES[self.suite]

    def seed_for(self, round_no: int) -> int:
        """The sampling seed of round ``round_no`` (each round samples afresh)."""
        return self.seed + 1000 * round_no

    def differs(self, saved: dict[str, Any]) -> list[str]:
        """Options that differ from a saved run's (``star.json``), other than :data:`RESUMABLE` ones."""
        now = self.model_dump(mode="json")
        return sorted(k for k in now if k not in RESUMABLE and saved.get(k) != now[k])


def build_config(**values: Any) -> StarConfig:
    """A :class:`StarConfig` from option values; a bad one becomes one :class:`ConfigError` line naming it.

    Raises:
        ConfigError: naming the option.
    """
    from pydantic import ValidationError

    try:
        return StarConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"--{where.replace('_', '-')}: {message}" if where else message) from None

