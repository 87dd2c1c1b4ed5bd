"""The `ray up` recipe (examples/ray/cluster.yaml) is a cluster config Ray itself accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ponder.core.model_spec import parse_spec

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "ray" / "cluster.yaml"


def test_cluster_yaml_passes_rays_own_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    prepared = prepare_config(config)  # what `ray up` does before it starts anything
    validate_config(prepared)
    assert prepared["provider"]["type"] == "local"
    assert prepared["max_workers"] == len(config["provider"]["worker_ips"])


def test_cluster_yaml_starts_ray_from_ponders_venv_and_its_eval_command_is_valid() -> None:
    config = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all(cmd.startswith("ponder/.venv/bin/ray ") for cmd in starts)  # shards import the installed ponder
    header = RECIPE.read_text(encoding="utf-8").split("cluster_name:")[0]
    model = header.split('--model "')[1].split('"')[0].replace("$MODEL", "qwen")
    assert len(parse_spec(model).base_urls) == 2  # one spec, two vLLM replicas


def test_a_bad_recipe_is_rejected_by_the_same_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    config["min_workerz"] = 2
    with pytest.raises(Exception, match="min_workerz"):
        validate_config(prepare_config(config))
