"""The self-consistency record: every sample's trajectory, the vote table, the choice and the compute."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ponder.core.records import RunRecord, Trajectory, Usage
from ponder.core.types import StopRule, VoteMethod
from ponder.graphs.self_consistency.voting import VoteRow

#: The file (under the run directory) each self-consistency record is appended to.
SC_FILE = "self_consistency.jsonl"


class SampleRecord(BaseModel):
    """One sample: its sampling parameters, its whole trajectory and how its answer was read."""

    index: int
    wave: int
    seed: int | None = None
    temperature: float
    top_p: float
    key: str | None = Field(None, description="The normalized answer the vote used (None: abstained).")
    weight: float = 1.0
    trajectory: Trajectory = Field(description="The trajectory that gave the sample's answer.")
    earlier: list[Trajectory] = Field(default_factory=list, description="The sample's other trajectories, in "
                                      "order (earlier trials when each sample is a trials run).")
    discarded: bool = Field(False, description="Cancelled by early stopping before it finished (the vote had "
                            "settled): it never votes; the steps it finished count in the usage.")
    start_s: float | None = Field(None, description="When the sample started, seconds after the vote began.")
    end_s: float | None = Field(None, description="When the sample ended, seconds after the vote began.")
    spent: Usage | None = Field(None, description="Everything the sample's strategy spent, when it is more than "
                                "its trajectories' steps (a search's verifier, value and reflection calls, a "
                                "trials run's reflections); None: its trajectories' usage.")

    @property
    def usage(self) -> Usage:
        """What the sample spent: ``spent``, else every one of its trajectories."""
        if self.spent is not None:
            return self.spent
        return sum((t.usage for t in self.earlier), self.trajectory.usage)


class JudgeRecord(BaseModel):
    """What the LLM judge saw and chose (``--vote judge``)."""

    choice: int | None = Field(None, description="1-based row of the vote table the judge picked.")
    raw: str = ""
    fallback: bool = Field(False, description="True when the judge's reply was unusable and the vote decided.")
    prompt_tokens: int = 0
    completion_tokens: int = 0


class SelfConsistencyResult(RunRecord):
    """A whole self-consistency run (one line of ``self_consistency.jsonl``)."""

    answer_kind: str = "auto"
    vote: VoteMethod = "majority"
    samples_planned: int
    samples_run: int = Field(description="Samples that ran to the end and voted (discarded ones excluded).")
    samples_discarded: int = Field(0, description="Samples cancelled in flight (or before they started) once the "
                                   "vote settled; recorded in ``samples`` with ``discarded`` set.")
    waves: int = 0
    stop_rule: StopRule | None = None
    stop_reason: str = Field("all_samples", description="all_samples, settled, budget, cancelled (the caller's "
                             "cancel scope was cancelled) or error.")
    budget: str | None = None
    final_answer: str | None = None
    winner_key: str | None = None
    chosen_sample: int | None = Field(None, description="The sample whose trajectory represents the answer.")
    agreement: float = 0.0
    votes: list[VoteRow] = Field(default_factory=list)
    abstained: list[int] = Field(default_factory=list)
    judge: JudgeRecord | None = None
    samples: list[SampleRecord] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage, description="All samples (and the judge) together.")
    samples_saved: int = 0
    tokens_saved_estimate: int = Field(0, description="Saved samples × mean tokens per sample run, less the "
                                       "tokens the discarded samples spent.")
    batch_sizes: list[int] = Field(default_factory=list, description="Sizes of the batched model calls.")
    memory: dict[str, object] = Field(default_factory=dict)
    metadata: dict[str, object] = Field(default_factory=dict)

    def voters(self) -> list[SampleRecord]:
        """The samples that voted (every sample but the discarded ones)."""
        return [s for s in self.samples if not s.discarded]

    def chosen(self) -> Trajectory | None:
        """The chosen sample's trajectory."""
        for sample in self.samples:
            if sample.index == self.chosen_sample:
                return sample.trajectory
        return None
