"""QA and math suites: ``gsm8k``, ``svamp`` (exact numeric match), ``hotpotqa``, ``musique`` (EM / F1).

Each suite reads its shipped JSONL file under ``settings.data_dir`` (the shipped ``data/``; see ``data/README.md``) or
a user's file in the same schema (``--data``); every malformed row is reported as ``file:line: problem``
and the file is refused (:class:`~ponder.core.errors.BadLinesError`). The agent is ``run_agent`` (ReAct or
PAL) run by the strategy the options describe (:func:`ponder.graphs.strategies.build.build_strategy`: trials
with memory, a self-consistency vote, or both). For HotpotQA and
MuSiQue the ReAct agent gets the ``search`` and ``lookup`` tools over that dataset's corpus
(``<data_dir>/<dataset>/corpus.jsonl``, unless the ``search_corpus`` setting names another). Harness
policy ``gold`` answers with the gold answer: it checks loading, scoring and the runner, not an agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, field_validator

from ponder.core.answers import AnswerKind, is_correct
from ponder.core.datafiles import read_jsonl_file
from ponder.envs.base import Episode, EpisodeResult, EvalContext, FailureKind
from ponder.envs.context import EpisodeTimeoutError, past_deadline
from ponder.envs.metrics import best_over, exact_match, f1_score
from ponder.graphs.strategies.base import Outcome

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.envs.context import EvalOptions

class QARow(BaseModel):
    """The fields every QA / math row must have (others are kept as metadata)."""

    model_config = {"extra": "allow"}

    id: str
    question: str
    answer: str
    answer_aliases: list[str] = []

    @field_validator("id", "answer", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("id", "question")
    @classmethod
    def _nonempty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


def read_rows(path: Path, row_model: type[BaseModel], limit: int | None = None) -> list[tuple[int, BaseModel]]:
    """Validated rows of a user's JSONL data file with their line numbers (blank lines skipped).

    Read by :func:`ponder.core.datafiles.read_jsonl_file`: every bad line is reported and any bad line refuses
    the file, since a score over part of the file the user gave would be misleading.

    Raises:
        DataError: for a missing or empty file.
        BadLinesError: every bad line as ``file:line: problem`` (bad JSON, a missing or mistyped field, a
            duplicate id).
    """
    def parse(obj: Any) -> BaseModel:
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        return row_model.model_validate(obj)

    def row_id(row: BaseModel) -> str:
        return str(getattr(row, "id", None) or getattr(row, "task_id", ""))

    return read_jsonl_file(path, parse, what="data", key=row_id, limit=limit).rows


@dataclass
class QASuite:
    """A question-answering or math-word-problem suite.

    Attributes:
        name: Suite name (also the memory task family).
        data_file: The shipped file, relative to ``settings.data_dir``.
        answer_kind: ``number`` (exact numeric match) or ``text`` (EM / F1).
        corpus: For search suites, the corpus relative to ``data_dir``; the agent then gets ``tools``.
        tools: ReAct tools for this suite (``None``: the ``tools`` setting).
    """

    name: str
    data_file: str
    answer_kind: AnswerKind = "number"
    corpus: str | None = None
    tools: list[str] | None = None
    policies: tuple[str, ...] = ("gold",)
    needs_process: bool = False
    metadata_keys: tuple[str, ...] = field(default=("type", "level", "setting", "equation"))

    def check_options(self, options: EvalOptions) -> None:
        """Nothing to check beyond the run spec: every strategy option applies to this suite."""

    def episodes(self, settings: Settings, data: Path | None = None, limit: int | None = None) -> list[Episode]:
        """Rows of ``data`` (default: the shipped file) as episodes, in file order.

        Raises:
            DataError: for a missing file or a malformed row (with its line number).
        """
        path = Path(data) if data is not None else Path(settings.data_dir) / self.data_file
        out = []
        for lineno, row in read_rows(path, QARow, limit):
            extra = row.model_extra or {}
            meta = {k: extra[k] for k in self.metadata_keys if k in extra}
            meta.update(source=f"{path.name}:{lineno}", answer_aliases=list(row.answer_aliases))  # type: ignore[attr-defined]
            tier = str(extra.get("type") or "")
            if self.name == "musique" and "hop" in row.id.split("__")[0]:  # type: ignore[attr-defined]
                tier = row.id.split("__")[0]  # type: ignore[attr-defined]  # 2hop, 3hop1, 4hop1, ...
            out.append(Episode(id=row.id, suite=self.name, task=row.question, gold=row.answer,  # type: ignore[attr-defined]
                               tier=tier, metadata=meta))
        return out

    def settings_for(self, settings: Settings) -> Settings:
        """The episode's settings: the suite's tools and, for search suites, its own corpus."""
        update: dict[str, Any] = {}
        if self.tools is not None:
            update["tools"] = list(self.tools)
        if self.corpus is not None and settings.search_corpus is None:
            update["search_corpus"] = Path(settings.data_dir) / self.corpus
        return settings.model_copy(update=update) if update else settings

    def score(self, prediction: str | None, episode: Episode) -> tuple[bool, float, dict[str, float]]:
        """``(success, score, metrics)``: numeric exact match, or EM (the score) and F1 over gold + aliases."""
        if self.answer_kind == "number":
            ok = is_correct(prediction, episode.gold, "number")
            return ok, float(ok), {"em": float(ok)}
        golds = [g for g in [episode.gold, *episode.metadata.get("answer_aliases", [])] if g]
        em = best_over(exact_match, prediction, golds)
        return em == 1.0, em, {"em": em, "f1": round(best_over(f1_score, prediction, golds), 6)}

    def run_episode(self, episode: Episode, ctx: EvalContext) -> EpisodeResult:
        """Answer the question with the run's strategy (or the ``gold`` harness policy) and score the answer."""
        if ctx.policy == "gold":
            outcome = Outcome(kind="single", task=episode.task, answer=episode.gold, status="solved")
        else:
            outcome = self._solve(episode, ctx)
        prediction = outcome.answer
        voted = outcome.kind == "self_consistency"
        status = ("solved" if prediction is not None else "no_answer") if voted else outcome.status
        success, score, metrics = self.score(prediction, episode)
        failure: FailureKind = "" if success else _failure(status, prediction)
        trajs = outcome.trajectories
        attempts = len(outcome.attempts) if outcome.kind == "trials" else 1
        return EpisodeResult(
            episode_id=episode.id, suite=self.name, task=episode.task, tier=episode.tier,
            policy=ctx.policy, policy_kind="agent" if ctx.policy == "agent" else "harness",
            success=success, score=score, metrics=metrics, prediction=prediction, gold=episode.gold,
            status=status, failure=failure, error=trajs[-1].error if trajs and not voted else None,
            usage=outcome.usage, samples=int(outcome.metadata.get("samples_run", ctx.spec.samples)), trials=attempts,
            trajectory_ids=[t.id for t in trajs],
            metadata={"source": episode.metadata.get("source"), "strategy": ctx.spec.strategy_name,
                      **(outcome.metadata if outcome.kind in _SEARCHED else {})})

    def _solve(self, episode: Episode, ctx: EvalContext) -> Outcome:
        """Run the strategy of ``ctx`` (one agent run, trials with memory, a vote, or both) on the question.

        Trajectories the strategy did not write itself (the samples of a vote) are appended to
        ``trajectories.jsonl`` with the episode's metadata.
        """
        from ponder.core.io import append_jsonl
        from ponder.graphs.strategies.base import StrategyContext
        from ponder.graphs.strategies.build import build_strategy

        def on_step(_step: object) -> None:
            if past_deadline(ctx):
                raise EpisodeTimeoutError(f"episode {episode.id} passed its deadline")

        spec = ctx.spec.with_updates(agent=ctx.spec.agent or ctx.settings.agent, answer_kind=self.answer_kind)
        store = ctx.memory_context.store if ctx.memory_context is not None else None
        run_ctx = StrategyContext(settings=self.settings_for(ctx.settings), model=ctx.model, agent=spec.agent,  # type: ignore[arg-type]
                                  store=store, task_family=self.name, answer_kind=self.answer_kind,
                                  out_dir=Path(ctx.out_dir), on_step=on_step,
                                  metadata={"suite": self.name, "episode_id": episode.id})
        outcome = build_strategy(spec).run(episode.task, run_ctx, label=episode.gold)
        for traj in outcome.trajectories:
            if "trajectory_path" not in traj.metadata:
                append_jsonl(Path(ctx.out_dir) / "trajectories.jsonl", traj)
        return outcome


#: Outcome kinds whose metadata (vote, scores, search tree id, allocation) the result keeps.
_SEARCHED = frozenset({"self_consistency", "best_of_n", "beam", "lats", "refine", "adaptive"})


def _failure(status: str, prediction: str | None) -> FailureKind:
    if status in ("max_steps", "parse_error", "error"):
        return status  # type: ignore[return-value]
    return "no_answer" if not (prediction or "").strip() else "wrong_answer"


def gsm8k_suite() -> QASuite:
    """GSM8K (dev: the first 1000 test problems), exact numeric match."""
    return QASuite(name="gsm8k", data_file="gsm8k/test_dev.jsonl", answer_kind="number")


def svamp_suite() -> QASuite:
    """SVAMP (800 problems), exact numeric match; the tier is the problem type."""
    return QASuite(name="svamp", data_file="svamp/svamp.jsonl", answer_kind="number")


def hotpotqa_suite() -> QASuite:
    """HotpotQA dev (258 hard questions), EM / F1; ReAct gets search + lookup over the HotpotQA corpus."""
    return QASuite(name="hotpotqa", data_file="hotpotqa/questions.jsonl", answer_kind="text",
                   corpus="hotpotqa/corpus.jsonl", tools=["search", "lookup"])


def musique_suite() -> QASuite:
    """MuSiQue (75 questions), EM / F1 over the answer and its aliases; search + lookup over its corpus."""
    return QASuite(name="musique", data_file="musique/questions.jsonl", answer_kind="text",
                   corpus="musique/corpus.jsonl", tools=["search", "lookup"])
