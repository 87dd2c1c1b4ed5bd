"""RunSpec: every run option once, validated by pydantic with one clear line per bad option."""

from __future__ import annotations

import pytest

from ponder.core.errors import ConfigError
from ponder.core.types import MemoryMode, StopRule, VoteMethod, choices
from ponder.graphs.self_consistency.graph import SCConfig
from ponder.graphs.self_consistency.stopping import Budget
from ponder.graphs.strategies.spec import RunSpec, parse_spec, spec_fields


def test_defaults_are_one_plain_run():
    spec = parse_spec({})
    assert (spec.samples, spec.trials, spec.memory, spec.agent, spec.vote) == (1, 1, None, None, "majority")
    assert not spec.voting and spec.compose == "trials_of_samples"


@pytest.mark.parametrize(("values", "message"), [
    ({"samples": 0}, "--samples must be at least 1 (got 0)"),
    ({"trials": 0}, "--trials must be at least 1 (got 0)"),
    ({"vote": "loudest"}, "--vote must be one of: majority, weighted, judge (got 'loudest')"),
    ({"stop_rule": "magic"}, "--stop-rule must be one of: certain, beta, esc"),
    ({"memory": "lots"}, "--memory must be one of: none, reflexion, expel, both (got 'lots')"),
    ({"agent": "cot"}, "--agent must be one of: react, pal"),
    ({"compose": "nested"}, "--compose must be one of: trials_of_samples, samples_of_trials"),
    ({"answer_kind": "colour"}, "--answer-kind must be one of: auto, number"),
    ({"samples": 3, "budget": "lots"}, "--budget: invalid budget 'lots'"),
    ({"samples": 3, "wave": 0}, "--wave must be at least 1"),
    ({"samples": 3, "threshold": 1.5}, "--threshold must be below 1"),
    ({"budget": "10t"}, "--budget applies to self-consistency: add --samples N"),
    ({"early_stop": True, "wave": 2}, "--early-stop and --wave apply to self-consistency: add --samples N"),
    ({"samples_per_trial": 3}, "unknown option --samples-per-trial"),
])
def test_bad_options_are_one_line_naming_the_option(values, message):
    with pytest.raises(ConfigError) as err:
        parse_spec(values)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_none_means_not_given_and_updates_are_validated_again():
    spec = parse_spec({"samples": 4, "budget": " 6s ", "early_stop": True, "vote": None, "memory": None})
    assert spec.budget == "6s" and spec.vote == "majority" and spec.memory is None
    assert spec.with_updates(vote="judge").vote == "judge" and spec.with_updates(vote="judge").samples == 4
    with pytest.raises(ConfigError, match="--early-stop and --budget apply to self-consistency"):
        spec.with_updates(samples=1)
    with pytest.raises(ValueError):
        spec.samples = 2  # frozen: a change goes through with_updates and its checks


def test_spec_fields_describe_every_option_for_the_generators():
    fields = {f.name: f for f in spec_fields()}
    assert list(fields) == list(RunSpec.model_fields)
    assert all(f.help for f in fields.values())
    assert fields["vote"].choices == choices(VoteMethod) and fields["stop_rule"].choices == choices(StopRule)
    assert fields["memory"].choices == choices(MemoryMode) and fields["agent"].choices == ("react", "pal")
    assert fields["early_stop"].flag == "--early-stop" and fields["early_stop"].annotation is bool
    assert fields["samples"].minimum == 1 and fields["samples"].default == 1 and fields["samples"].choices is None
    assert {n for n, f in fields.items() if not f.cli} == {"batch_window", "sample_temperature", "sample_top_p",
                                                          "sample_seed"}


def test_sc_config_from_spec():
    spec = parse_spec({"samples": 6, "vote": "weighted", "budget": "4000t", "early_stop": True, "stop_rule": "esc",
                       "wave": 2, "window": 3, "answer_kind": "number", "sample_temperature": 0.3, "sample_seed": 7})
    config = SCConfig.from_spec(spec)
    assert (config.samples, config.vote, config.stop_rule, config.wave, config.window) == (6, "weighted", "esc", 2, 3)
    assert config.budget == Budget("tokens", 4000) and config.early_stop and config.answer_kind == "number"
    assert (config.temperature, config.seed, config.top_p) == (0.3, 7, None) and config.wave_size() == 2


def test_sc_config_is_typed():
    with pytest.raises(ValueError, match="vote"):
        SCConfig(vote="plurality")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="samples"):
        SCConfig(samples=0)
