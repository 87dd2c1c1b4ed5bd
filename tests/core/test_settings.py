from pathlib import Path

import pytest
from pydantic import ValidationError

from ponder.core.errors import ConfigError
from ponder.core.model_spec import parse_spec
from ponder.core.settings import (
    AgentSettings,
    EcosystemSettings,
    LlamaCppSettings,
    MemorySettings,
    ModelSettings,
    OpenAISettings,
    PathSettings,
    SandboxSettings,
    SearchSettings,
    Settings,
    corpus_path,
    default_data_dir,
    load_settings,
)


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


# -- groups ---------------------------------------------------------------------------------------------------

GROUPS = (PathSettings, ModelSettings, OpenAISettings, LlamaCppSettings, AgentSettings, SandboxSettings,
          SearchSettings, MemorySettings, EcosystemSettings)


def test_settings_is_every_group_and_every_field_is_in_a_group():
    s = load_settings()
    assert all(isinstance(s, group) for group in GROUPS)
    grouped = set().union(*(group.model_fields for group in GROUPS))
    assert grouped == set(Settings.model_fields)
    assert list(Settings.model_fields)[:4] == ["data_dir", "out_dir", "cache_dir", "model"]


def test_old_flat_toml_and_env_still_load(tmp_path, monkeypatch):
    """One flat file, keys from every group, exactly as before the split."""
    toml = tmp_path / "ponder.toml"
    toml.write_text(
        'model = "openai:m@http://127.0.0.1:1/v1"\nopenai_timeout = 9.5\nllamacpp_n_ctx = 2048\n'
        'agent = "pal"\ntools = ["calculator", "search"]\nsandbox_isolation = "bwrap"\nexec_timeout = 3\n'
        'search_mode = "hybrid"\nmemory = "expel"\nmemory_k = 4\n'
        f'out_dir = "{tmp_path / "runs"}"\n'
    )
    monkeypatch.setenv("PONDER_CONFIG", str(toml))
    monkeypatch.setenv("PONDER_SEARCH_K", "9")
    monkeypatch.setenv("PONDER_TOOLS", '["python"]')
    s = load_settings()
    assert (s.model, s.openai_timeout, s.llamacpp_n_ctx) == ("openai:m@http://127.0.0.1:1/v1", 9.5, 2048)
    assert s.agent == "pal"
    assert (s.sandbox_isolation, s.exec_timeout, s.search_mode, s.search_k) == ("bwrap", 3.0, "hybrid", 9)
    assert (s.memory, s.memory_k, s.out_dir, s.tools) == ("expel", 4, tmp_path / "runs", ["python"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tools": ["calculator", "teleport"]},
         "tools.1: unknown value 'teleport'; expected 'calculator', 'python', 'search', 'lookup' or 'retrieve'"),
        ({"sandbox": "docker"}, "sandbox: unknown value 'docker'; expected 'local' or 'e2b'"),
        ({"memory": "all"}, "memory: unknown value 'all'"),
        ({"search_mode": "fuzzy"}, "search_mode: unknown value 'fuzzy'"),
        ({"sandbox_isolation": "chroot"}, "sandbox_isolation: unknown value 'chroot'"),
    ],
)
def test_a_value_outside_its_choices_names_the_value_and_the_choices(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    assert message in str(info.value)


def test_bad_tool_name_from_the_environment(monkeypatch):
    monkeypatch.setenv("PONDER_TOOLS", '["calculator", "frobnicate"]')
    with pytest.raises(ConfigError, match="tools.1: unknown value 'frobnicate'; expected 'calculator'"):
        load_settings()


def test_a_group_stands_alone_and_rejects_other_groups_fields():
    sandbox = SandboxSettings(exec_timeout=2)
    assert (sandbox.sandbox, sandbox.exec_timeout) == ("local", 2.0)
    with pytest.raises(ValidationError, match="max_steps"):
        SandboxSettings(max_steps=3)
    with pytest.raises(ValidationError, match="sandbox"):
        SandboxSettings(sandbox="docker")
    with pytest.raises(ConfigError, match="bad model spec"):
        ModelSettings(model="gpt:4")


def test_functions_typed_with_a_group_accept_the_group_and_settings(tmp_path):
    from ponder.models.openai import OpenAIBackend

    search = SearchSettings(data_dir=tmp_path)
    assert corpus_path(search) == tmp_path / "hotpotqa" / "corpus.jsonl"
    assert corpus_path(load_settings(data_dir=tmp_path)) == corpus_path(search)
    assert corpus_path(SearchSettings(search_corpus=tmp_path / "c.jsonl")) == tmp_path / "c.jsonl"
    spec = parse_spec("openai:m@http://127.0.0.1:1/v1")
    alone = OpenAIBackend.from_settings(spec, OpenAISettings(openai_timeout=3.0, openai_context_window=512))
    full = OpenAIBackend.from_settings(spec, load_settings(openai_timeout=3.0, openai_context_window=512))
    for backend in (alone, full):
        assert backend.timeout == 3.0 and backend.capabilities.context_window == 512


def test_settings_imports_nothing_above_core():
    import subprocess
    import sys

    code = ("import sys, ponder.core.settings; "
            "print(sorted(m for m in sys.modules if m.startswith('ponder.') and not m.startswith('ponder.core')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_mcp_servers_from_toml_and_their_checks(tmp_path, monkeypatch):
    toml = tmp_path / "ponder.toml"
    toml.write_text('mcp_servers = ["files"]\n[mcp.servers.files]\ncommand = "npx"\nargs = ["-y", "srv"]\n'
                    '[mcp.servers.remote]\nurl = "http://127.0.0.1:9/mcp"\nheaders = {Authorization = "Bearer x"}\n')
    monkeypatch.setenv("PONDER_CONFIG", str(toml))
    s = load_settings()
    assert s.mcp_servers == ["files"]
    assert (s.mcp.servers["files"].transport, s.mcp.servers["files"].args) == ("stdio", ["-y", "srv"])
    assert s.mcp.servers["remote"].transport == "http"
    with pytest.raises(ConfigError, match="unknown MCP server.*nope; known: files, remote"):
        load_settings(mcp_servers=["nope"])
    toml.write_text('[mcp.servers.both]\ncommand = "x"\nurl = "http://127.0.0.1:1/mcp"\n')
    with pytest.raises(ConfigError, match="exactly one of 'command'"):
        load_settings()
