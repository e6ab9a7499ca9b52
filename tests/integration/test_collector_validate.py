"""Every Collector file in collector-config/ in our Collector build (`make collector`):
`otelcol validate` accepts it with the variables collector-config/README.md names, refuses it
without each required one, and a start prints no deprecation warning (old component names only
warn at start, never in `validate`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.collector import (
    CONFIG_DIR,
    Processes,
    assert_no_deprecation_warnings,
    base_env,
    otelcol_binary,
    start_collector,
)

COLLECTOR_FILES = sorted(p.name for p in CONFIG_DIR.glob("*.yaml") if p.name != "bridge.yaml")
README = (CONFIG_DIR / "README.md").read_text(encoding="utf-8")
# Values for the variables a file requires (those without a default).
REQUIRED_VALUES = {
    "BACKEND_OTLP_ENDPOINT": "backend.example:4317",
    "OTEL_BRIDGE_TOKEN": "a-token",
}
_REFERENCE = re.compile(r"\$\{env:([A-Z0-9_]+)(:-)?")


def references(name: str) -> dict[str, bool]:
    """Each variable the file reads -> whether it is required (has no default)."""
    text = (CONFIG_DIR / name).read_text(encoding="utf-8")
    found: dict[str, bool] = {}
    for variable, default in _REFERENCE.findall(text):
        found[variable] = found.get(variable, True) and not default
    return found


def validate(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(otelcol_binary()), "validate", "--config", str(CONFIG_DIR / name)],
        env=base_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_collector_file_is_tested() -> None:
    assert COLLECTOR_FILES == ["agent.yaml", "gateway-loadbalancing.yaml", "tail-sampling.yaml"]


@pytest.mark.parametrize("name", COLLECTOR_FILES)
def test_the_readme_names_every_variable_the_file_reads(name: str) -> None:
    section = README.split(f"## {name}", 1)[1].split("\n## ", 1)[0]
    for variable in references(name):
        assert f"`{variable}`" in section, f"collector-config/README.md ## {name}: {variable}"


@pytest.mark.parametrize("name", COLLECTOR_FILES)
def test_validate_accepts_the_file_with_its_required_variables(name: str) -> None:
    required = {v: REQUIRED_VALUES[v] for v, needed in references(name).items() if needed}
    result = validate(name, required)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        (name, variable)
        for name in COLLECTOR_FILES
        for variable, needed in references(name).items()
        if needed
    ],
)
def test_validate_refuses_the_file_without_a_required_variable(name: str, variable: str) -> None:
    required = {v: REQUIRED_VALUES[v] for v, needed in references(name).items() if needed}
    del required[variable]
    result = validate(name, required)
    assert result.returncode != 0
    assert result.stderr.startswith("Error: "), result.stderr


@pytest.mark.parametrize("name", COLLECTOR_FILES)
def test_the_file_starts_healthy_without_deprecation_warnings(
    name: str, processes: Processes, tmp_path: Path
) -> None:
    """Started on free loopback ports; the bridge and backend need not be up to start."""
    env = {
        "BACKEND_OTLP_ENDPOINT": "127.0.0.1:9",
        "OTEL_BRIDGE_TOKEN": "a-token",
        "OTEL_BRIDGE_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_BRIDGE_INSTANCES": "[127.0.0.1:9, 127.0.0.2:9]",
        "OTELCOL_STORAGE_DIR": str(tmp_path / "storage"),
    }
    collector = start_collector(processes, [CONFIG_DIR / name], tmp_path, env=env)
    assert collector.stop() == 0
    records = collector.records()
    assert any(
        r.get("msg") == "Everything is ready. Begin running and processing data." for r in records
    )
    assert_no_deprecation_warnings(collector)
