"""Model spec strings with several base URLs (``openai:<model>@<url1>,<url2>``) and the ``openai_base_urls`` setting."""

from __future__ import annotations

import pytest

from ponder.core.errors import ConfigError
from ponder.core.model_spec import SPEC_HELP, ModelSpec, check_base_urls, parse_spec
from ponder.core.settings import Settings


@pytest.mark.parametrize(
    ("text", "urls", "canonical"),
    [
        ("openai:m@http://a:8000/v1", ("http://a:8000/v1",), "openai:m@http://a:8000/v1"),
        ("openai:m@http://a:8000/v1,https://b/v1", ("http://a:8000/v1", "https://b/v1"),
         "openai:m@http://a:8000/v1,https://b/v1"),
        ("openai:org/m@http://a/v1/ , http://b/v1/,http://c/v1", ("http://a/v1", "http://b/v1", "http://c/v1"),
         "openai:org/m@http://a/v1,http://b/v1,http://c/v1"),
        ("openai:m", (), "openai:m"),
    ],
)
def test_base_urls_are_parsed_and_round_trip(text: str, urls: tuple[str, ...], canonical: str) -> None:
    parsed = parse_spec(text)
    assert parsed.base_urls == urls and str(parsed) == canonical
    assert parse_spec(str(parsed)) == parsed


def test_a_model_spec_keeps_its_urls_as_one_field() -> None:
    assert parse_spec("openai:m@http://a/v1,http://b/v1") == ModelSpec("openai", "m", "http://a/v1,http://b/v1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("openai:m@", "empty base URL"),
        ("openai:m@http://a/v1,", "empty base URL"),
        ("openai:m@http://a/v1,,http://b/v1", "empty base URL"),
        ("openai:m@http://a/v1,b:8000/v1", "base URL 'b:8000/v1' must start with http:// or https://"),
        ("openai:m@http://a/v1,http://a/v1/", "base URL 'http://a/v1' is named twice"),
        ("openai:m@localhost:8000", "must start with http"),
    ],
)
def test_bad_base_urls_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(text)
    assert message in str(caught.value) and f"bad model spec {text!r}" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_help_names_the_list_form() -> None:
    assert "openai:<model>@<base_url>[,<base_url>...]" in SPEC_HELP


def test_the_settings_list_is_checked_and_normalised() -> None:
    assert Settings(openai_base_urls=["http://a/v1/", " http://b/v1"]).openai_base_urls == ["http://a/v1",
                                                                                             "http://b/v1"]
    assert Settings().openai_base_urls == []
    with pytest.raises(ConfigError, match="named twice"):
        Settings(openai_base_urls=["http://a/v1", "http://a/v1"])
    with pytest.raises(ConfigError, match="must start with http"):
        Settings(openai_base_urls=["a:1"])


def test_the_settings_list_comes_from_ponder_toml(tmp_path, monkeypatch) -> None:
    from ponder.core.settings import load_settings

    toml = tmp_path / "ponder.toml"
    toml.write_text('openai_base_urls = ["http://a:8000/v1", "http://b:8000/v1"]\n')
    monkeypatch.setenv("PONDER_CONFIG", str(toml))
    assert load_settings().openai_base_urls == ["http://a:8000/v1", "http://b:8000/v1"]


def test_check_base_urls_keeps_the_order() -> None:
    assert check_base_urls(["http://b", "http://a"]) == ["http://b", "http://a"]
