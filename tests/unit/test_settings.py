"""Configuration lives in one place: ``settings.py`` reads every environment variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import podium
from podium.agents.registry.admission import AgentChecks
from podium.errors import ConfigurationError
from podium.settings import ENV_NAMES, Settings, debug_enabled

SRC = Path(podium.__file__).parent


def test_no_module_but_settings_reads_the_environment() -> None:
    readers = re.compile(r"os\.environ|os\.getenv")
    offenders = [
        f"{path.relative_to(SRC)}:{number}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "settings.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if readers.search(line) and '"COLUMNS"' not in line  # rich's own variable
    ]
    assert offenders == []


def test_agent_and_storage_variables_are_settings() -> None:
    settings = Settings.from_env(
        {
            "PODIUM_SQLITE_SYNCHRONOUS": "full",
            "PODIUM_AGENTS_FILE": "agents.yaml",
            "PODIUM_ROUTING_POLICY": "policy.yaml",
            "PODIUM_PYTHON_AGENT_MODULES": "mycompany.agents, other",
            "PODIUM_ALLOW_PRIVATE_AGENT_URLS": "yes",
            "PODIUM_WEBHOOK_URL_ALLOWLIST": "loopback,10.0.0.0/8",
            "PODIUM_LOG_FORMAT": "JSON",
        }
    )
    assert settings.sqlite_synchronous == "FULL"
    assert (settings.agents_file, settings.routing_policy) == ("agents.yaml", "policy.yaml")
    assert settings.python_agent_modules == ("mycompany.agents", "other")
    assert settings.outbound_urls("AGENT") == (True, ())
    assert settings.outbound_urls("WEBHOOK") == (False, ("loopback", "10.0.0.0/8"))
    assert settings.log_format == "json"
    assert set(ENV_NAMES) == set(Settings.model_fields)


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.sqlite_synchronous == "NORMAL"
    assert settings.python_agent_modules == ("podium.agents.demo",)
    assert settings.log_format == "text"
    assert not debug_enabled({})
    assert debug_enabled({"PODIUM_DEBUG": "1"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PODIUM_SQLITE_SYNCHRONOUS", "sometimes"),
        ("PODIUM_ALLOW_PRIVATE_AGENT_URLS", "perhaps"),
        ("PODIUM_LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{name}: "):
        Settings.from_env({name: value})


def test_untrusted_agent_checks_take_the_modules_from_settings() -> None:
    checks = AgentChecks.from_env({"PODIUM_PYTHON_AGENT_MODULES": "mine"}, trusted=False)
    assert checks.python_modules == ("mine",)
    assert AgentChecks.from_env({}, trusted=True).python_modules is None
