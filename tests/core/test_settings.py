from pathlib import Path

import pytest

from ponder.core.errors import ConfigError
from ponder.core.settings import default_data_dir, load_settings


def test_defaults():
    s = load_settings()
    assert s.model == "embedded" and s.agent == "react" and s.max_steps == 8


def test_precedence_defaults_toml_env_overrides(tmp_path, monkeypatch):
    toml = tmp_path / "ponder.toml"
    toml.write_text('max_steps = 5\ntemperature = 0.3\nagent = "pal"\n')
    monkeypatch.setenv("PONDER_CONFIG", str(toml))
    s = load_settings()
    assert (s.max_steps, s.temperature, s.agent) == (5, 0.3, "pal")
    monkeypatch.setenv("PONDER_MAX_STEPS", "7")
    s = load_settings()
    assert (s.max_steps, s.temperature) == (7, 0.3)
    s = load_settings(max_steps=2, temperature=None)  # None = flag not given
    assert (s.max_steps, s.temperature) == (2, 0.3)


def test_toml_in_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("PONDER_CONFIG")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ponder.toml").write_text("max_tokens = 99\n")
    assert load_settings().max_tokens == 99


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temperature": 5}, "temperature"),
        ({"max_steps": 0}, "max_steps"),
        ({"agent": "cot"}, "agent"),
        ({"no_such_setting": 1}, "no_such_setting"),
        ({"model": "gpt:4"}, "bad model spec"),
    ],
)
def test_invalid_values_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(**overrides)


def test_invalid_env_value(monkeypatch):
    monkeypatch.setenv("PONDER_MAX_STEPS", "many")
    with pytest.raises(ConfigError, match="max_steps"):
        load_settings()


def test_default_data_dir_is_the_data_shipped_in_the_package(tmp_path, monkeypatch):
    import ponder

    monkeypatch.chdir(tmp_path)  # the default must not depend on the working directory
    data = default_data_dir()
    assert data.is_absolute() and data.parent == Path(ponder.__file__).resolve().parent
    assert (data / "manifest.json").is_file() and (data / "gsm8k" / "test_dev.jsonl").is_file()
    assert load_settings().data_dir == data


def test_data_dir_setting_replaces_the_shipped_data(tmp_path, monkeypatch):
    toml = tmp_path / "ponder.toml"
    toml.write_text(f'data_dir = "{tmp_path / "from-toml"}"\n')
    monkeypatch.setenv("PONDER_CONFIG", str(toml))
    assert load_settings().data_dir == tmp_path / "from-toml"
    monkeypatch.setenv("PONDER_DATA_DIR", str(tmp_path / "from-env"))
    assert load_settings().data_dir == tmp_path / "from-env"
    assert load_settings(data_dir=tmp_path / "flag").data_dir == tmp_path / "flag"


def test_import_reads_nothing(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PONDER_MAX_STEPS": "not-a-number", "PONDER_CONFIG": str(tmp_path / "bad.toml")}
    (tmp_path / "bad.toml").write_text("this is = = not toml")
    code = "import ponder.core.settings, ponder.cli, ponder.agents.runner; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_bad_toml_is_a_config_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text("max_steps = = 3")
    monkeypatch.setenv("PONDER_CONFIG", str(bad))
    with pytest.raises(ConfigError, match="bad.toml"):
        load_settings()
