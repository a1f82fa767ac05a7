"""Config errors name the field to fix, by its path in the YAML."""

from pathlib import Path

import pytest

from tests.helpers import base_config, write_config
from ticketbridge.config import ConfigError, load_config


def problems_of(path: Path, **environ: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ)
    return caught.value.problems


def test_valid_config_loads(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "c.yaml", base_config(tmp_path)))
    assert config.destinations["jira_new"].type == "jira"
    assert config.poll_interval == 0.2


def test_bad_url_is_named_by_its_path(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["destinations"]["jira_new"]["url"] = "not a url"
    problems = problems_of(write_config(tmp_path / "c.yaml", data))
    assert any(p.startswith("destinations.jira_new.url:") for p in problems)


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["destinations"]["jira_new"]["projekt"] = "OPS"
    problems = problems_of(write_config(tmp_path / "c.yaml", data))
    assert "destinations.jira_new.projekt: unknown key (check the spelling)" in problems


def test_unknown_top_level_section_is_an_error(tmp_path: Path) -> None:
    data = base_config(tmp_path, jira_oops={"x": 1})
    problems = problems_of(write_config(tmp_path / "c.yaml", data))
    assert any(p.startswith("jira_oops:") for p in problems)


def test_zero_poll_interval_is_refused(tmp_path: Path) -> None:
    data = base_config(tmp_path, poll_interval=0)
    problems = problems_of(write_config(tmp_path / "c.yaml", data))
    assert any(p.startswith("poll_interval:") for p in problems)


def test_route_to_unknown_destination_is_refused(tmp_path: Path) -> None:
    data = base_config(tmp_path, routes=[{"name": "all", "destinations": ["nope"]}])
    problems = problems_of(write_config(tmp_path / "c.yaml", data))
    assert any("unknown destination 'nope'" in p for p in problems)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("poll_interval: 1\nsources: [unclosed\n", encoding="utf-8")
    problems = problems_of(path)
    assert problems[0].startswith("line ")
    assert "YAML syntax" in problems[0]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path))
    config = load_config(path, environ={})
    assert config.poll_interval == 0.2
    import os

    os.environ["TICKETBRIDGE_POLL_INTERVAL"] = "7"
    try:
        assert load_config(path).poll_interval == 7
    finally:
        del os.environ["TICKETBRIDGE_POLL_INTERVAL"]


def test_secret_comes_from_credentials_directory(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    del data["destinations"]["jira_new"]["token"]
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "jira_new.token").write_text("from-file\n", encoding="utf-8")
    path = write_config(tmp_path / "c.yaml", data)

    config = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(creds)})

    token = config.destinations["jira_new"].token  # type: ignore[union-attr]
    assert token is not None and token.get_secret_value() == "from-file"


def test_inline_secret_in_world_readable_file_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path))
    path.chmod(0o644)
    problems = problems_of(path)
    assert any(
        p.startswith("destinations.jira_new.token: secret written inline")
        for p in problems
    )


def test_secret_never_shows_in_repr(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "c.yaml", base_config(tmp_path)))
    assert "jira-secret-token" not in repr(config)


def with_templates(tmp_path: Path, **templates: object) -> Path:
    data = base_config(tmp_path)
    data["destinations"]["jira_new"]["templates"] = templates
    return write_config(tmp_path / "c.yaml", data)


def test_template_with_a_misspelt_name_is_refused_naming_it_and_its_line(
    tmp_path: Path,
) -> None:
    """BC-29: a typo in a template is caught at load, not at the first event."""
    path = with_templates(tmp_path, summary="[{{ state }}] {{ hostnme }}")
    assert problems_of(path) == [
        "destinations.jira_new.templates.summary: line 1: 'hostnme' is undefined"
    ]


def test_template_syntax_error_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = with_templates(tmp_path, fields={"environment": "a\n{{ host "})
    [problem] = problems_of(path)
    assert problem.startswith("destinations.jira_new.templates.fields.environment: ")
    assert "line 2:" in problem


def test_template_field_may_not_replace_a_field_the_client_fills(
    tmp_path: Path,
) -> None:
    path = with_templates(tmp_path, fields={"labels": "x"})
    [problem] = problems_of(path)
    assert problem.startswith("destinations.jira_new.templates.fields.labels: ")


def test_valid_templates_load(tmp_path: Path) -> None:
    path = with_templates(
        tmp_path,
        summary="{{ extra.env | default('prod') }}: {{ host }}",
        fields={"environment": "{{ source }}"},
    )
    config = load_config(path)
    assert config.destinations["jira_new"].templates.fields == {
        "environment": "{{ source }}"
    }


def test_priority_map_severities_compare_without_case(tmp_path: Path) -> None:
    data = base_config(tmp_path)
    data["destinations"]["jira_new"]["priority_map"] = {"CRITICAL": "P1"}
    config = load_config(write_config(tmp_path / "c.yaml", data))
    assert config.destinations["jira_new"].priority_map == {"critical": "P1"}  # type: ignore[union-attr]
