"""``ponder star``: the STaR self-improvement loop (Zelikman et al. 2022) on a QA suite with numeric answers.

Round 0 evaluates the base model. Each round r = 1..R then:

1. ``sample``: the current model (round 1: the base; later: the previous round's ``model/model.gguf`` on llama.cpp)
   runs the ReAct agent k times per training question (``round-r/samples/``);
2. ``rationalize``: questions no sample solved run once more with the answer as a hint (``round-r/rationalize/``);
3. ``data``: correct samples (up to ``keep_per_question`` each) and usable rationales (``hint: True``, the question
   turn without the hint), plus any seed data, go to ``round-r/data.jsonl`` (counts in ``data.stats.json``);
4. ``train``: fine-tune the BASE model on that data (``round-r/model/``), as STaR does every round;
5. ``eval-<suite>``: the new model on the held-out questions.

Each stage leaves a marker ``round-r/stages/<stage>.json`` (its record); ``--resume`` skips marked stages and
continues a stage's run directory where it stopped. ``star.json`` (options and every stage's record) and
``report.md`` summarize the run after every stage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError, DataError
from ponder.core.io import write_atomic
from ponder.core.settings import Settings
from ponder.envs.base import Episode
from ponder.envs.qa import QASuite
from ponder.training.held_out import question_key
from ponder.training.star_config import StarConfig
from ponder.training.star_runs import ModelRun, StarDeps, evaluate, play

SUMMARY_FILE = "star.json"
Evals = list[tuple[str, QASuite, list[Episode]]]


def qa_suite(name: str) -> QASuite:
    """The QA suite ``name``, which must score numeric answers.

    Raises:
        ConfigError: for an unknown suite or one without numeric answers.
    """
    from ponder.envs.registry import get_suite

    suite = get_suite(name)
    if not isinstance(suite, QASuite) or suite.answer_kind != "number":
        raise ConfigError(f"suite {name!r} has no numeric answers; STaR runs on gsm8k, svamp or another numeric "
                          "QA suite")
    return suite


def check_heldout(train: list[Episode], evals: Evals) -> None:
    """Refuse training questions that are also evaluated (same question, case and spacing aside: ``question_key``).

    Raises:
        ConfigError: naming how many overlap and a few ids.
    """
    seen = {question_key(ep.task): ep.id for ep in train}
    for name, _suite, episodes in evals:
        clash = [f"{seen[key]}={ep.id}" for ep in episodes if (key := question_key(ep.task)) in seen]
        if clash:
            raise ConfigError(f"{len(clash)} training question(s) are in the held-out {name} questions (e.g. "
                              f"{', '.join(clash[:3])}); train on other rows (--train-data, --train-skip) or "
                              "evaluate on others")


def load_questions(config: StarConfig, settings: Settings) -> tuple[QASuite, list[Episode], Evals]:
    """The suite, its training questions and the held-out evaluations (checked for overlap).

    Raises:
        ConfigError: unknown suite, no training split, overlap. DataError: unreadable data files.
    """
    suite = qa_suite(config.suite)
    limit = config.train_skip + config.train_limit if config.train_limit else None
    train = suite.episodes(settings, config.train_file(Path(settings.data_dir)), limit)[config.train_skip:]
    if not train:
        raise DataError(f"no training questions left after --train-skip {config.train_skip}")
    evals: Evals = [(suite.name, suite, suite.episodes(settings, config.eval_data, config.eval_limit))]
    for name in config.eval_extra:
        if name in [e[0] for e in evals]:
            raise ConfigError(f"--eval-extra {name}: evaluated already")
        extra = qa_suite(name)
        evals.append((name, extra, extra.episodes(settings, None, config.eval_limit)))
    check_heldout([*train, *seed_questions(config)], evals)
    return suite, train, evals


def seed_questions(config: StarConfig) -> list[Episode]:
    """The questions of ``--seed-data`` (each example's first ``Question:`` turn), for the held-out check.

    Raises:
        DataError: for unreadable seed data.
    """
    if config.seed_data is None:
        return []
    from ponder.training.examples import iter_examples

    out = []
    for n, example in enumerate(iter_examples(config.seed_data), 1):
        turn = next((t.content for t in example.messages if t.role == "user" and t.content.startswith("Question: ")),
                    None)
        if turn is not None:
            out.append(Episode(id=f"{config.seed_data.name}:{n}", suite="seed", task=turn.removeprefix("Question: ")))
    return out


class Stages:
    """Per-stage done markers and the summary (``star.json``) of one STaR output folder."""

    def __init__(self, config: StarConfig, log: Callable[[str], None]) -> None:
        self.config, self.log = config, log
        self.out = config.out
        self.summary: dict[str, Any] = {"config": config.model_dump(mode="json"), "rounds": {}}

    def open(self) -> None:
        """Start a new folder, or reopen one with ``resume`` (same options but the round count).

        Raises:
            ConfigError: ``out`` is a file, an existing run without ``resume``, or one made with other options.
        """
        path = self.out / SUMMARY_FILE
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {self.out} is a file; name the folder for the STaR run")
        if path.is_file():
            if not self.config.resume:
                raise ConfigError(f"{self.out} holds a STaR run; pass --resume to continue it or choose another --out")
            saved = json.loads(path.read_text(encoding="utf-8"))
            changed = self.config.differs(saved.get("config", {}))
            if changed:
                raise ConfigError(f"{self.out} was made with other options ({', '.join(changed)}); --resume "
                                  "continues a run with its own options (only --rounds may grow)")
            self.summary["rounds"] = saved.get("rounds", {})
        self.out.mkdir(parents=True, exist_ok=True)
        self.save()

    def round_dir(self, round_no: int) -> Path:
        """``<out>/round-<r>``."""
        return self.out / f"round-{round_no}"

    def run(self, round_no: int, name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The record of stage ``name``: from its marker when done, else ``work()`` (marked and summarized)."""
        marker = self.round_dir(round_no) / "stages" / f"{name}.json"
        if marker.is_file():
            self.log(f"[star] round {round_no} {name}: done already (skipped)")
            record = json.loads(marker.read_text(encoding="utf-8"))
        else:
            self.log(f"[star] round {round_no} {name}: started")
            started = time.monotonic()
            record = work()
            record.setdefault("stage_seconds", round(time.monotonic() - started, 2))
            write_atomic(marker, json.dumps(record, indent=2) + "\n")
        self.summary["rounds"].setdefault(str(round_no), {})[name] = record
        self.save()
        return record

    def save(self) -> None:
        """Write ``star.json`` and ``report.md``."""
        from ponder.training.star_report import write_report

        self.summary["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_atomic(self.out / SUMMARY_FILE, json.dumps(self.summary, indent=2) + "\n")
        write_report(self.out, self.summary)


def run_star(config: StarConfig, settings: Settings, deps: StarDeps | None = None) -> dict[str, Any]:
    """Run (or continue) the STaR loop; returns the summary also saved as ``<out>/star.json``.

    Raises:
        ConfigError: bad options, overlap of training and held-out questions, an existing folder without
            ``resume``. DataError: unreadable data, or a round with nothing to train on.
    """
    deps = deps or StarDeps()
    suite, train, evals = load_questions(config, settings)
    stages = Stages(config, deps.log)
    stages.open()
    deps.log(f"[star] {config.suite}: {len(train)} training questions x {config.samples} samples, "
             f"{config.rounds} round(s); held-out: " + ", ".join(f"{n} ({len(e)})" for n, _s, e in evals))
    _evaluate_round(stages, 0, config.base, evals, settings, deps)
    spec = config.base
    for round_no in range(1, config.rounds + 1):
        spec = _round(stages, round_no, spec, suite, train, evals, settings, deps)
        if deps.models is None:
            from ponder.models.spec import close_models

            close_models()  # the round's models are not used again
    deps.log(f"[star] done: {config.out / SUMMARY_FILE}, {config.out / 'report.md'}")
    return stages.summary


def _evaluate_round(stages: Stages, round_no: int, spec: str, evals: Evals, settings: Settings,
                    deps: StarDeps) -> None:
    config = stages.config
    for name, suite, episodes in evals:
        run = ModelRun(spec=spec, out_dir=stages.round_dir(round_no) / f"eval-{name}")
        record = stages.run(round_no, f"eval-{name}", lambda s=suite, e=episodes, r=run: evaluate(
            s, e, r, settings, deps, workers=config.workers, quiet=config.quiet))
        low, high = record["ci95"]
        deps.log(f"[star] round {round_no} eval-{name}: {record['solved']}/{record['episodes']} = "
                 f"{100 * record['accuracy']:.1f} % [{100 * low:.1f}, {100 * high:.1f}]")


def _round(stages: Stages, round_no: int, spec: str, suite: QASuite, train: list[Episode], evals: Evals,
           settings: Settings, deps: StarDeps) -> str:
    """One STaR round with the model ``spec``; returns the spec of the round's fine-tuned model."""
    from ponder.training.star_round import collect, fine_tune

    config, rdir = stages.config, stages.round_dir(round_no)
    sampling = ModelRun(spec=spec, out_dir=rdir / "samples", temperature=config.temperature,
                        seed=config.seed_for(round_no), samples=config.samples)

    def sample() -> dict[str, Any]:
        run = play(suite, train, sampling, settings, deps, workers=config.workers, quiet=config.quiet)
        return {"model": spec, "questions": len(train), "samples": config.samples,
                "solved_by_vote": sum(r.success for r in run.results)}

    stages.run(round_no, "sample", sample)
    hinting = ModelRun(spec=spec, out_dir=rdir / "rationalize", seed=config.seed_for(round_no))
    stats = stages.run(round_no, "data", lambda: collect(config, round_no, suite, train, sampling, hinting,
                                                         settings, deps))
    deps.log(f"[star] round {round_no} data: {stats['correct_samples']} correct samples on "
             f"{stats['questions_solved']}/{stats['questions']} questions, {stats['rationalized']} rationalized, "
             f"{stats['examples']} examples")
    trained = stages.run(round_no, "train", lambda: fine_tune(config, rdir, deps))
    deps.log(f"[star] round {round_no} train: {trained['steps']} steps, {trained['train_tokens']:,} tokens, "
             f"{trained['seconds']:.0f} s")
    model_spec = str(trained["model_spec"])
    _evaluate_round(stages, round_no, model_spec, evals, settings, deps)
    return model_spec
