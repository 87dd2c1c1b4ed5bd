"""``RunSpec``: every option of how a task is run (agent, samples and their vote, trials and memory), once.

The CLI options of ``ponder run`` and ``ponder eval`` and chat's slash commands are generated from this model:
each field's ``description`` is its help text, its type (a ``Literal`` from :mod:`ponder.core.types`, or a
bounded number) its choices and range, and the validators below its cross-field checks. Nothing else
validates these options.

For option generators:

- :func:`spec_fields` lists the fields as :class:`SpecField` (name, option flag, annotation, default, help,
  choices, bounds, whether the CLI shows it). Fields with ``cli=False`` are Python-API only (the samples'
  own temperature, top-p and seed, the batching window).
- :func:`parse_spec` builds a :class:`RunSpec` from option values (``None`` values mean "not given" and are
  dropped) and turns a validation failure into one :class:`~ponder.core.errors.ConfigError` naming the
  option, e.g. ``--vote must be one of: majority, weighted, judge (got 'loudest')``.
- :meth:`RunSpec.with_updates` applies a slash command's change (``/samples 5``) through the same checks.

How the options become a strategy: :func:`ponder.graphs.strategies.build.build_strategy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from annotated_types import Ge
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ponder.core.errors import ConfigError
from ponder.core.types import AgentName, MemoryMode, StopRule, StrategyName, VerifierName, VoteMethod, choices

#: How trials and self-consistency nest when both are asked for.
Compose = Literal["trials_of_samples", "samples_of_trials"]


class RunSpec(BaseModel):
    """How one task is run: which agent, how many voted samples, how many trials with which memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: AgentName | None = Field(None, description="The agent: react or pal (default: the settings').")
    strategy: StrategyName | None = Field(None, description="How the task is attempted: single, sc, best_of_n, "
                                                            "beam, lats, refine or adaptive (default: sc with "
                                                            "--samples N > 1, else single).")
    verifier: str | None = Field(None, description="Verifiers that score attempts, weighted: e.g. 'self,env' or "
                                                   "'execution:0.7,self:0.3' (env, execution, self, prm, agreement; "
                                                   "default: env in environments, execution for pal, else self).")
    prm: str | None = Field(None, description="Model spec of the process reward model for --verifier prm "
                                              "(default: the run's model).")
    beam_width: int = Field(3, ge=1, description="Beam search: beams kept after each step.")
    expansions: int = Field(3, ge=1, description="Beam: candidates sampled per beam per step; LATS: children "
                                                 "sampled per expansion.")
    exploration: float = Field(1.0, ge=0.0, description="LATS: the UCT exploration constant.")
    iterations: int | None = Field(None, ge=1, description="LATS: select-expand-evaluate iterations (default: "
                                                           "until the budget or a win).")
    rollout_steps: int | None = Field(None, ge=0, description="LATS: most steps of each rollout (default: up to "
                                                              "the step cap; 0: no rollouts, the new children's "
                                                              "values are backed up).")
    rounds: int = Field(3, ge=1, description="Refine: revisions after the first attempt.")
    accept: float = Field(0.8, gt=0.0, le=1.0, description="A verifier score that ends refine and search early.")
    samples: int = Field(1, ge=1, description="Run N independent trajectories: voted (sc), scored by the verifier "
                                              "(best_of_n), or a vote over N runs of beam, lats or refine (default: "
                                              "5 for --strategy sc and best_of_n, else 1).")
    vote: VoteMethod = Field("majority", description="How samples are aggregated: majority, weighted or judge.")
    answer_kind: str = Field("auto", description="Vote normalizer: auto, number, text, choice or code "
                                                 "(or a registered one).")
    early_stop: bool = Field(False, description="Stop sampling once the vote is settled (see --stop-rule).")
    stop_rule: StopRule = Field("certain", description="When the vote is settled: certain (never changes the "
                                                       "answer), beta or esc.")
    threshold: float = Field(0.95, gt=0.0, lt=1.0, description="Confidence that settles the vote for --stop-rule "
                                                               "beta.")
    window: int | None = Field(None, ge=1, description="Agreeing samples that settle the vote for --stop-rule esc "
                                                       "(default: the wave size, at least 4).")
    wave: int | None = Field(None, ge=1, description="Samples per wave (default: all; half with --early-stop).")
    budget: str | None = Field(None, description="Cap of self-consistency or a search: tokens ('20000t') or "
                                                 "samples ('6s').")
    batch: bool = Field(True, description="Gather the samples' model calls into batches when the backend decodes "
                                          "batches natively.")
    batch_window: float = Field(0.05, ge=0.0, description="Longest wait for a batch to fill (seconds).",
                                json_schema_extra={"cli": False})
    sample_temperature: float | None = Field(None, ge=0.0, description="Temperature of every sample (default: "
                                                                       "the settings' when above 0, else 0.7).",
                                             json_schema_extra={"cli": False})
    sample_top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling of every sample "
                                                                         "(default: the settings').",
                                       json_schema_extra={"cli": False})
    sample_seed: int | None = Field(None, description="Sample i uses seed + i (default: the settings' seed, "
                                                      "else 0).", json_schema_extra={"cli": False})
    trials: int = Field(1, ge=1, description="Run up to K trials, stopping at the first success.")
    memory: MemoryMode | None = Field(None, description="Memory: none (clean baseline), reflexion, expel or both "
                                                        "(default: the settings').")
    learn: bool = Field(True, description="With ExpeL memory, extract insights after the trials.")
    compose: Compose = Field("trials_of_samples", description="With both --samples and --trials: trials_of_samples "
                                                              "(each trial votes) or samples_of_trials (each "
                                                              "sample is a trials run with memory).")

    @field_validator("answer_kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        from ponder.graphs.self_consistency.normalize import NORMALIZERS

        if value not in NORMALIZERS:
            raise ValueError(f"must be one of: {', '.join(NORMALIZERS)} (got {value!r})")
        return value

    @field_validator("verifier")
    @classmethod
    def _verifiers(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parse_verifiers(value)
        return value.replace(" ", "")

    @model_validator(mode="before")
    @classmethod
    def _default_samples(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("strategy") in ("sc", "best_of_n") and data.get("samples") is None:
            return {**data, "samples": DEFAULT_SAMPLES}
        return data

    @field_validator("budget")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        from ponder.graphs.self_consistency.stopping import Budget

        if value is None:
            return None
        try:
            Budget.parse(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    @model_validator(mode="after")
    def _samples_options(self) -> RunSpec:
        if self.strategy == "single" and self.samples > 1:
            raise ValueError("--strategy single runs one sample: drop --samples or use --strategy sc")
        if self.strategy == "sc" and self.samples == 1:
            raise ValueError("--strategy sc needs --samples N (N > 1)")
        searching = self.strategy not in (None, "single", "sc")
        if self.samples == 1 and searching and (self.early_stop or self.wave):
            raise ValueError("--early-stop and --wave apply to self-consistency: add --samples N (N > 1)")
        if self.samples == 1 and not searching:
            values = {"early_stop": self.early_stop, "budget": self.budget, "wave": self.wave}
            given = [flag(name) for name, value in values.items() if value not in (None, False)]
            if given:
                verb = "applies" if len(given) == 1 else "apply"
                raise ValueError(f"{' and '.join(given)} {verb} to self-consistency: add --samples N (N > 1)")
        return self

    @model_validator(mode="after")
    def _strategy_options(self) -> RunSpec:
        name = self.strategy_name
        values = self.model_dump(include={*STRATEGY_OPTIONS, *VOTE_OPTIONS})
        for option, (strategies, default) in STRATEGY_OPTIONS.items():
            if values[option] != default and name not in strategies:
                raise ValueError(f"{flag(option)} applies to {_strategy_list(strategies)}")
        if name in ("best_of_n", "adaptive"):
            given = [flag(option) for option, default in VOTE_OPTIONS.items() if values[option] != default]
            if given:
                raise ValueError(f"{given[0]} applies to self-consistency (--strategy sc), not {name}")
        if self.budget is not None and not self.voting and name in ("best_of_n", "refine"):
            bound = "--samples" if name == "best_of_n" else "--rounds"
            raise ValueError(f"--budget applies to --strategy sc, beam, lats or adaptive ({name}: {bound} bounds it)")
        if self.prm is not None and self.verifier is not None and "prm" not in dict(parse_verifiers(self.verifier)):
            raise ValueError("--prm applies to --verifier prm (add prm to --verifier)")
        if name == "best_of_n" and self.vote == "judge":
            raise ValueError("--vote judge applies to --strategy sc (best_of_n: majority picks by score, weighted "
                             "votes weighted by score)")
        return self

    @property
    def voting(self) -> bool:
        """Whether this spec runs self-consistency (more than one sample voted; best-of-N picks, never votes)."""
        return self.samples > 1 and self.strategy not in ("best_of_n", "adaptive")

    @property
    def strategy_name(self) -> StrategyName:
        """The strategy this spec runs (``strategy``, else ``sc`` with several samples, else ``single``)."""
        if self.strategy is not None:
            return self.strategy
        return "sc" if self.samples > 1 else "single"

    def with_updates(self, **changes: Any) -> RunSpec:
        """A copy with ``changes`` applied and validated again.

        A change of ``strategy`` (``/strategy lats``) drops the options of the old strategy that the new one does
        not read (the vote's unless the new one is ``sc``), and the sample count (``sc`` and ``best_of_n`` default
        to :data:`DEFAULT_SAMPLES`, the others to 1), unless they change too.

        Raises:
            ConfigError: naming the bad option.
        """
        kept = self.model_dump(exclude_unset=True)
        new = changes.get("strategy")
        if new is not None and new != self.strategy_name and new in choices(StrategyName):
            kept.pop("samples", None)
            for option, (strategies, _) in STRATEGY_OPTIONS.items():
                if new not in strategies:
                    kept.pop(option, None)
            dropped = [*VOTE_OPTIONS, "vote"] if new != "sc" else []
            dropped += ["budget"] if new in ("single", "best_of_n", "refine") else []
            for option in dropped:
                kept.pop(option, None)
        return parse_spec({**kept, **changes})


#: Samples of ``--strategy sc`` / ``best_of_n`` when ``--samples`` is not given.
DEFAULT_SAMPLES = 5

#: Options that only some strategies read: ``option -> (those strategies, the default)``; a value other than the
#: default with another strategy is refused (``--beam-width applies to --strategy beam``).
STRATEGY_OPTIONS: dict[str, tuple[tuple[StrategyName, ...], Any]] = {
    "beam_width": (("beam",), 3),
    "expansions": (("beam", "lats"), 3),
    "exploration": (("lats",), 1.0),
    "iterations": (("lats",), None),
    "rollout_steps": (("lats",), None),
    "rounds": (("refine",), 3),
    "accept": (("refine", "beam", "lats", "adaptive"), 0.8),
    "verifier": (("best_of_n", "refine", "beam", "lats", "adaptive"), None),
    "prm": (("best_of_n", "refine", "beam", "lats", "adaptive"), None),
}

#: Options of self-consistency's vote and stopping, with their defaults (no use to best_of_n and adaptive).
VOTE_OPTIONS: dict[str, Any] = {"early_stop": False, "stop_rule": "certain", "threshold": 0.95, "window": None,
                                "wave": None}


def _strategy_list(strategies: tuple[str, ...]) -> str:
    """``--strategy beam`` / ``--strategy beam or lats`` / ``--strategy a, b or c``."""
    names = list(strategies)
    return "--strategy " + (names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}")


def parse_verifiers(text: str) -> list[tuple[VerifierName, float]]:
    """``"self:0.5,env"`` -> ``[("self", 0.5), ("env", 1.0)]`` (weights default to 1, need not sum to 1).

    Raises:
        ValueError: for an unknown name, a bad or negative weight, a repeated name, or an empty list.
    """
    known = choices(VerifierName)
    out: list[tuple[VerifierName, float]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        name = name.strip()
        if name not in known:
            raise ValueError(f"unknown verifier {name!r} (choose from: {', '.join(known)})")
        try:
            value = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ValueError(f"the weight of {name} must be a number (got {weight!r})") from None
        if value < 0:
            raise ValueError(f"the weight of {name} must be at least 0 (got {value})")
        if any(n == name for n, _ in out):
            raise ValueError(f"verifier {name} is given twice")
        out.append((name, value))  # type: ignore[arg-type]
    if not out:
        raise ValueError("name at least one verifier (e.g. self or env)")
    if sum(w for _, w in out) <= 0:
        raise ValueError("at least one verifier weight must be above 0")
    return out


@dataclass(frozen=True)
class SpecField:
    """One :class:`RunSpec` field as an option generator needs it.

    Attributes:
        name: The field name (``early_stop``).
        flag: The command-line flag (``--early-stop``).
        annotation: The field's type (e.g. ``Literal[...] | None``, ``int``, ``bool``).
        default: The default value.
        help: The description (the help text).
        choices: The allowed values for ``Literal`` fields, else ``None``.
        minimum: The inclusive lower bound of a number, if any (``ge``).
        cli: Whether the CLI shows it (``False``: Python API only).
    """

    name: str
    flag: str
    annotation: Any
    default: Any
    help: str
    choices: tuple[str, ...] | None
    minimum: float | None
    cli: bool


def flag(name: str) -> str:
    """The command-line flag of a field (``early_stop`` -> ``--early-stop``)."""
    return "--" + name.replace("_", "-")


def _choices(annotation: Any) -> tuple[str, ...] | None:
    if get_origin(annotation) is Literal:
        return choices(annotation)
    for arg in get_args(annotation):
        if get_origin(arg) is Literal:
            return choices(arg)
    return None


def spec_fields() -> list[SpecField]:
    """The fields of :class:`RunSpec`, in declaration order, for generating CLI options and slash commands."""
    out = []
    for name, info in RunSpec.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        minimum = next((float(m.ge) for m in info.metadata if isinstance(m, Ge)), None)
        out.append(SpecField(name=name, flag=flag(name), annotation=info.annotation, default=info.default,
                             help=info.description or "", choices=_choices(info.annotation), minimum=minimum,
                             cli=bool(extra.get("cli", True))))
    return out


def parse_spec(values: dict[str, Any]) -> RunSpec:
    """A :class:`RunSpec` from option values; ``None`` means "not given" (the default applies).

    Raises:
        ConfigError: one line per bad option, naming it as a flag (``--samples must be at least 1 (got 0)``).
    """
    given = {k: v for k, v in values.items() if v is not None}
    try:
        return RunSpec(**given)
    except ValidationError as exc:
        raise ConfigError("; ".join(_message(err, given) for err in exc.errors())) from None


def _message(err: Any, given: dict[str, Any]) -> str:
    loc = [str(part) for part in err.get("loc", ()) if isinstance(part, str)]
    name = loc[0] if loc else ""
    text = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not name:
        return text
    got = given.get(name)
    kind = err.get("type", "")
    if kind == "literal_error":
        allowed = _choices(RunSpec.model_fields[name].annotation) or ()
        return f"{flag(name)} must be one of: {', '.join(allowed)} (got {got!r})"
    if kind == "extra_forbidden":
        return f"unknown option {flag(name)}"
    if kind in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
        bound = next(iter((err.get("ctx") or {}).values()), "")
        words = {"greater_than_equal": "at least", "greater_than": "above", "less_than": "below",
                 "less_than_equal": "at most"}[kind]
        return f"{flag(name)} must be {words} {bound} (got {got!r})"
    return f"{flag(name)} {text}" if text.startswith("must") else f"{flag(name)}: {text}"
