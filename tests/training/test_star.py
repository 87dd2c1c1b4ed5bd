"""The STaR loop on the scripted model with an injected fake trainer: data flow, fine-tune from the base, resume,
the report's numbers, the held-out guard. (No real training here; the real model: test_star_integration.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError, DataError
from ponder.core.settings import load_settings
from ponder.models.scripted import ScriptedModel
from ponder.training.examples import iter_examples
from ponder.training.rationalize import hint_text
from ponder.training.sft import TrainConfig, TrainResult
from ponder.training.star import run_star
from ponder.training.star_config import StarConfig, build_config
from ponder.training.star_runs import StarDeps

TRAIN = [("t-easy", "Tom has 3 bags of 4 apples. How many apples?", "12"),
         ("t-hard", "Ann has 5 pens and buys 6 more. How many pens?", "11"),
         ("t-never", "A box holds 7 rows of 8 eggs. How many eggs?", "56")]
EVAL = [("e-1", "Sam has 2 cats and 9 dogs. How many pets?", "11"),
        ("e-2", "Lee reads 10 pages a day for 3 days. How many pages?", "30")]
HINT = re.compile(r"\(The answer is (\S+)\. ")


def write_rows(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, q, a in rows))
    return path


class Models:
    """Scripted models by spec. The base solves t-easy and e-1 (calling the calculator), never t-hard without the
    hint; a trained model (a ``.gguf`` spec) also solves e-2. t-never stays wrong, even with the hint."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.questions: list[tuple[str, str]] = []

    def __call__(self, spec: str) -> ScriptedModel:
        self.asked.append(spec)
        trained = spec.endswith(".gguf")

        def respond(messages, params) -> str:
            question = next(m["content"] for m in reversed(messages) if m["content"].startswith("Question: "))
            self.questions.append((spec, question))
            answers = {q: a for _i, q, a in TRAIN + EVAL}
            plain = HINT.split(question)[0].removeprefix("Question: ").strip()
            hinted = HINT.search(question)
            gold = answers[plain]
            observed = messages[-1]["content"].startswith("Observation")
            if not observed:
                return "Thought: compute it\nAction: calculator\nAction Input: 1+1"
            good = ("12" in gold or "11" in gold and "Sam" in plain or trained
                    or (hinted is not None and gold != "56"))
            return f"Thought: I now know the final answer\nFinal Answer: {gold if good else '999'}"

        return ScriptedModel(respond, spec=spec)


class FakeTrainer:
    """Writes a marker model folder (config.json, model.gguf, ponder-train.json) and records its configs."""

    def __init__(self) -> None:
        self.configs: list[TrainConfig] = []

    def __call__(self, config: TrainConfig, *, quiet: bool = False) -> TrainResult:
        self.configs.append(config)
        examples = list(iter_examples(config.data))
        config.out.mkdir(parents=True, exist_ok=True)
        (config.out / "config.json").write_text("{}")
        (config.out / "model.gguf").write_text(f"trained on {len(examples)}")
        result = TrainResult(out=config.out, steps=3, examples=len(examples), epochs_done=1.0, train_tokens=420,
                             seconds=2.5, tokens_per_second=168.0, final_loss=1.0, gguf=config.out / "model.gguf",
                             stopped_by="done")
        (config.out / "ponder-train.json").write_text(json.dumps({"result": result.model_dump(mode="json")}))
        return result


@pytest.fixture
def setup(tmp_path, data_dir):
    settings = load_settings(data_dir=data_dir, out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache",
                             tools=["calculator"])
    train = write_rows(tmp_path / "train.jsonl", TRAIN)
    held = write_rows(tmp_path / "eval.jsonl", EVAL)
    return settings, train, held


def config(tmp_path: Path, train_file: Path, held: Path, **kw) -> StarConfig:
    values = {"suite": "gsm8k", "out": tmp_path / "star", "train_data": train_file, "eval_data": held, "samples": 2,
              "quiet": True, **kw}
    return StarConfig(**values)


def run(cfg: StarConfig, settings, models: Models | None = None, trainer: FakeTrainer | None = None) -> dict:
    deps = StarDeps(trainer=trainer or FakeTrainer(), models=models or Models(), log=lambda _line: None)
    return run_star(cfg, settings, deps)


def test_data_flow_keeps_correct_rationalizes_failures_with_the_hint_marked(tmp_path, setup) -> None:
    settings, train, held = setup
    summary = run(config(tmp_path, train, held), settings)
    examples = list(iter_examples(tmp_path / "star" / "round-1" / "data.jsonl"))
    by_task = {e.metadata["task_id"]: e for e in examples}
    assert set(by_task) == {"t-easy", "t-hard"}  # t-never: wrong even with the hint, dropped
    assert by_task["t-easy"].metadata["hint"] is False and by_task["t-hard"].metadata["hint"] is True
    for example in examples:
        questions = [t.content for t in example.messages if t.content.startswith("Question: ")]
        assert questions[-1] == "Question: " + next(q for i, q, _a in TRAIN if i == example.metadata["task_id"])
        assert all("answer is" not in t.content for t in example.messages[-4:])  # the hint never reaches the data
        assert example.messages[0].role == "system" and example.messages[-1].role == "assistant"
        assert "Action: calculator" in example.messages[-3].content
    stats = json.loads((tmp_path / "star" / "round-1" / "data.stats.json").read_text())
    recorded = dict(summary["rounds"]["1"]["data"])
    assert recorded.pop("stage_seconds") >= 0 and recorded == stats
    assert (stats["questions"], stats["samples"], stats["correct_samples"], stats["questions_solved"]) == (3, 6, 2, 1)
    assert (stats["kept"], stats["rationalize_tried"], stats["rationalized"]) == (1, 2, 1)
    assert stats["rationale_dropped"] == {"wrong_answer": 1} and stats["examples"] == 2
    hinted = [json.loads(line)["task"] for line in
              (tmp_path / "star" / "round-1" / "rationalize" / "results.jsonl").read_text().splitlines()]
    assert sorted(hinted) == sorted(f"{q} {hint_text(a)}" for i, q, a in TRAIN if i != "t-easy")


def test_every_round_fine_tunes_the_base_and_samples_with_the_last_model(tmp_path, setup) -> None:
    settings, train, held = setup
    models, trainer = Models(), FakeTrainer()
    run(config(tmp_path, train, held, rounds=2, train={"max_steps": 2, "method": "lora"}), settings, models, trainer)
    assert [c.base for c in trainer.configs] == ["embedded", "embedded"]
    assert [c.data for c in trainer.configs] == [tmp_path / "star" / f"round-{r}" / "data.jsonl" for r in (1, 2)]
    assert all(c.max_steps == 2 and c.method == "lora" and not c.resume for c in trainer.configs)
    round1 = f"llamacpp:{(tmp_path / 'star' / 'round-1' / 'model' / 'model.gguf').resolve()}"
    sampled = {spec for spec, q in models.questions if any(q.endswith(t) for _i, t, _a in TRAIN)}
    assert sampled == {"embedded", round1}
    round2_eval = f"llamacpp:{(tmp_path / 'star' / 'round-2' / 'model' / 'model.gguf').resolve()}"
    assert round2_eval in models.asked


def test_no_rationalize_and_no_data_is_a_clear_error(tmp_path, setup) -> None:
    settings, train, held = setup
    hard = write_rows(tmp_path / "hard.jsonl", [TRAIN[2]])
    with pytest.raises(DataError, match="kept no examples"):
        run(config(tmp_path, hard, held), settings)
    seed = tmp_path / "seed.jsonl"
    seed.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant",
                                                                                "content": "a"}]}) + "\n")
    out = tmp_path / "seeded"
    run(config(tmp_path, train, held, out=out, rationalize=False, seed_data=seed), settings)
    stats = json.loads((out / "round-1" / "data.stats.json").read_text())
    assert (stats["kept"], stats["rationalize_tried"], stats["seed_examples"], stats["examples"]) == (1, 0, 1, 2)


def test_resume_skips_done_stages(tmp_path, setup) -> None:
    settings, train, held = setup
    cfg = config(tmp_path, train, held)
    trainer = FakeTrainer()
    run(cfg, settings, trainer=trainer)
    with pytest.raises(ConfigError, match="--resume"):
        run(cfg, settings)
    with pytest.raises(ConfigError, match="other options .*samples"):
        run(cfg.model_copy(update={"resume": True, "samples": 3}), settings)
    models = Models()
    run(cfg.model_copy(update={"resume": True}), settings, models, trainer)
    assert models.questions == [] and len(trainer.configs) == 1  # nothing ran again
    (tmp_path / "star" / "round-1" / "stages" / "train.json").unlink()  # trained, but not marked
    (tmp_path / "star" / "round-1" / "stages" / "eval-gsm8k.json").unlink()
    run(cfg.model_copy(update={"resume": True, "rounds": 2}), settings, models, trainer)
    assert len(trainer.configs) == 2  # round 1 reused its ponder-train.json; round 2 trained
    played = {spec for spec, _q in models.questions}
    assert "embedded" not in played  # round 0 and round 1's sampling were not run again
    assert json.loads((tmp_path / "star" / "star.json").read_text())["rounds"].keys() == {"0", "1", "2"}


def test_report_numbers_come_from_the_evaluations(tmp_path, setup) -> None:
    settings, train, held = setup
    summary = run(config(tmp_path, train, held), settings)
    base, tuned = summary["rounds"]["0"]["eval-gsm8k"], summary["rounds"]["1"]["eval-gsm8k"]
    assert (base["solved"], base["episodes"], tuned["solved"]) == (1, 2, 2)
    assert base["calculator_per_episode"] == 1.0 and base["parse_error_rate"] == 0.0
    results = (tmp_path / "star" / "round-1" / "eval-gsm8k" / "results.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["success"] for line in results) == 2
    report = (tmp_path / "star" / "report.md").read_text()
    assert "| 0 | gsm8k | 50.0 % | [9.5, 90.5] | 1/2 |" in report
    assert "| 1 | gsm8k | 100.0 % | [34.2, 100.0] | 2/2 |" in report
    assert "| 1 | 3 | 2 | 2 | 1 | 1 | 0 | 2 | 3 | 420 | 2 |" in report
    assert json.loads((tmp_path / "star" / "star.json").read_text())["rounds"] == summary["rounds"]


def test_heldout_guard_refuses_overlap(tmp_path, setup) -> None:
    settings, train, held = setup
    leaky = write_rows(tmp_path / "leaky.jsonl", [*TRAIN, ("t-x", "  sam HAS 2 cats and 9 dogs.\n How many pets? ",
                                                           "11")])
    with pytest.raises(ConfigError, match="1 training question.*t-x=e-1"):
        run(config(tmp_path, leaky, held), settings)
    assert not (tmp_path / "star").exists()
    seed = tmp_path / "seed.jsonl"
    seed.write_text(json.dumps({"messages": [{"role": "user", "content": "Question: " + EVAL[1][1]},
                                             {"role": "assistant", "content": "Final Answer: 30"}]}) + "\n")
    with pytest.raises(ConfigError, match="seed.jsonl:1=e-2"):
        run(config(tmp_path, train, held, seed_data=seed), settings)
    run(config(tmp_path, leaky, held, train_limit=3), settings)  # the first three rows do not overlap


def test_config_errors_name_the_option(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--base"):
        build_config(suite="gsm8k", out=tmp_path, base="openai:m@http://x/v1")
    with pytest.raises(ConfigError, match="--max-steps"):
        build_config(suite="gsm8k", out=tmp_path, train={"max_steps": 0})
    with pytest.raises(ConfigError, match="set by the loop"):
        build_config(suite="gsm8k", out=tmp_path, train={"base": "x"})
    with pytest.raises(ConfigError, match="training split"):
        build_config(suite="svamp", out=tmp_path).train_file(tmp_path)


def test_a_trajectory_that_sent_another_prompt_is_not_kept() -> None:
    from ponder.core.records import Step, Trajectory
    from ponder.envs.base import Episode
    from ponder.training.prompt import agent_prefix, prefix_sha256
    from ponder.training.star_data import to_example

    prefix = agent_prefix("react", ["calculator"])
    episode = Episode(id="q", suite="gsm8k", task="What is 2+2?", gold="4")
    steps = [Step(index=0, kind="final", raw="Thought: I now know the final answer\nFinal Answer: 4")]
    ours = Trajectory(task="What is 2+2?", agent="react", model="m", steps=steps, status="solved",
                      final_answer="4", metadata={"prompt_sha256": prefix_sha256(prefix)})
    example = to_example(ours, episode, prefix, hint=False, round_no=1)
    assert example is not None and example.messages[-1].content == steps[0].raw
    other = ours.model_copy(update={"metadata": {"prompt_sha256": "0123456789abcdef"}})
    assert to_example(other, episode, prefix, hint=False, round_no=1) is None


def test_a_loop_stopped_in_training_resumes_there(tmp_path, setup) -> None:
    settings, train, held = setup
    cfg = config(tmp_path, train, held)

    def crash(config: TrainConfig, *, quiet: bool = False) -> TrainResult:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        run_star(cfg, settings, StarDeps(trainer=crash, models=Models(), log=lambda _line: None))
    stages = tmp_path / "star" / "round-1" / "stages"
    assert sorted(p.name for p in stages.iterdir()) == ["data.json", "sample.json"]
    models, trainer, lines = Models(), FakeTrainer(), []
    run_star(cfg.model_copy(update={"resume": True}), settings, StarDeps(trainer=trainer, models=models,
                                                                         log=lines.append))
    assert len(trainer.configs) == 1 and {spec for spec, _q in models.questions} == {
        f"llamacpp:{(tmp_path / 'star' / 'round-1' / 'model' / 'model.gguf').resolve()}"}
    assert "[star] round 1 sample: done already (skipped)" in lines
