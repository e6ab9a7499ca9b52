"""The README cannot drift from the code: its opening, its runnable quickstart, and a
configuration and attribute reference that names every constructor parameter, environment
variable, `serve` configuration key, CLI option and semconv name the code has."""

from __future__ import annotations

import argparse
import ast
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from otel_bridge import semconv
from otel_bridge.settings import Setting

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCES = [
    *(ROOT / "otel_bridge").rglob("*.py"),
    *(ROOT / "exporters").glob("*/otel_bridge_*/**/*.py"),
]
# Prefixes of the variables our code reads: ours, the OpenTelemetry specification's, and the
# generic ones of the services (the names langchain_community's handlers read).
_ENV_NAME = re.compile(
    r"^(OTEL|LABEL_STUDIO|UPTRAIN|CLEARML|OPENAI|ANTHROPIC|AWS)_[A-Z0-9_]*[A-Z0-9]$"
)
_ENV_PREFIX = re.compile(r"^OTEL_BRIDGE_(?:[A-Z]+_)?$")


def section(title: str) -> str:
    """The README text under the heading `title`, up to the next heading of the same level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", README, re.MULTILINE)
    assert match, f"README has no section {title!r}"
    level = len(match.group(1))
    rest = README[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert README.startswith("# otel-bridge\n\n```\n")
    assert commands == ["make demo", "make test"]


def test_the_quickstart_is_ten_lines_and_runs(tmp_path: Path) -> None:
    """Runs the README's quickstart block as is (the fake chat model stands in for a paid API)."""
    (code,) = re.findall(r"```python\n(.*?)```", section("Quickstart"), re.DOTALL)
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    script = tmp_path / "quickstart.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("A tree of spans.\n")
    assert '"langchain.run.type": "chat_model"' in result.stdout


def _documented_callables() -> list[tuple[str, Callable[..., Any]]]:
    from otel_bridge_clearml import ClearMLCallbackHandler, ClearMLSpanExporter
    from otel_bridge_labelstudio import LabelStudioCallbackHandler, LabelStudioSpanExporter
    from otel_bridge_sagemaker import SageMakerCallbackHandler, SageMakerSpanExporter
    from otel_bridge_uptrain import UpTrainCallbackHandler, UpTrainSpanExporter

    from otel_bridge import (
        OTelCallbackHandler,
        TraceExporter,
        configure_tracer_provider,
        instrument,
    )
    from otel_bridge.file_sink import FileSpanExporter

    handler_section = "`OTelCallbackHandler` and `instrument()`"
    return [
        (handler_section, OTelCallbackHandler),
        (handler_section, instrument),
        (handler_section, configure_tracer_provider),
        ("Every sink exporter (`TraceExporter`)", TraceExporter),
        ("File sink (`otel_bridge.file_sink.FileSpanExporter`)", FileSpanExporter),
        (
            "Label Studio (`otel_bridge_labelstudio.LabelStudioSpanExporter`)",
            LabelStudioSpanExporter,
        ),
        (
            "Label Studio (`otel_bridge_labelstudio.LabelStudioSpanExporter`)",
            LabelStudioCallbackHandler,
        ),
        ("UpTrain (`otel_bridge_uptrain.UpTrainSpanExporter`)", UpTrainSpanExporter),
        ("UpTrain (`otel_bridge_uptrain.UpTrainSpanExporter`)", UpTrainCallbackHandler),
        ("ClearML (`otel_bridge_clearml.ClearMLSpanExporter`)", ClearMLSpanExporter),
        ("ClearML (`otel_bridge_clearml.ClearMLSpanExporter`)", ClearMLCallbackHandler),
        ("SageMaker (`otel_bridge_sagemaker.SageMakerSpanExporter`)", SageMakerSpanExporter),
        ("SageMaker (`otel_bridge_sagemaker.SageMakerSpanExporter`)", SageMakerCallbackHandler),
    ]


@pytest.mark.parametrize(
    ("title", "documented"),
    _documented_callables(),
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_every_constructor_parameter_is_in_its_section(
    title: str, documented: Callable[..., Any]
) -> None:
    text = section(title)
    parameters = [
        name
        for name, parameter in inspect.signature(documented).parameters.items()
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    missing = [name for name in parameters if f"`{name}`" not in text and f"{name}=" not in text]
    assert not missing, f"{documented.__name__}: undocumented parameters {missing} in {title!r}"


def _declared_settings() -> dict[str, Setting[Any]]:
    """Every `Setting` of the core's and the sinks' `settings` modules, by `module.NAME`."""
    from importlib import import_module

    declared: dict[str, Setting[Any]] = {}
    for path in [ROOT / "otel_bridge" / "settings.py", *ROOT.glob("exporters/*/*/settings.py")]:
        module = import_module(f"{path.parent.name}.settings")
        for name, value in vars(module).items():
            for setting in value if isinstance(value, tuple) else (value,):
                if isinstance(setting, Setting):
                    declared[f"{module.__name__}.{name}.{setting.parameter}"] = setting
    return declared


def _variables_read_by_the_code() -> dict[str, Path]:
    """Every environment variable name in our sources: those of the declared settings (a setting
    every sink shares as `OTEL_BRIDGE_<SINK>_<NAME>`), string literals that look like one, and
    prefix + name for the `_env("NAME")` / `_setting(..., "NAME", ...)` helper conventions."""
    found: dict[str, Path] = {}
    for where, setting in _declared_settings().items():
        if setting.shared and setting.sink is None:
            setting = setting.for_sink("<sink>")
        for variable in setting.variables:
            found.setdefault(variable, Path(where))
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        strings = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        prefixes = [s for s in strings if _ENV_PREFIX.match(s)]
        for string in strings:
            if _ENV_NAME.match(string):
                found.setdefault(string, path)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if not name.startswith(("_env", "_setting")):
                continue
            # The helpers take the setting's own name first; further arguments are the
            # generic variables, literal names found above.
            first = node.args[0] if node.args else None
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and re.fullmatch(r"[A-Z][A-Z0-9_]*", first.value)
            ):
                for prefix in prefixes:
                    found.setdefault(prefix + first.value, path)
    return found


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    variables = _variables_read_by_the_code()
    assert "OTEL_BRIDGE_SPOOL_DIR" in variables and "LABEL_STUDIO_API_KEY" in variables
    reference = section("Configuration reference")
    missing = {
        name: str(path.relative_to(ROOT) if path.is_absolute() else path)
        for name, path in sorted(variables.items())
        if not re.search(rf"\b{name}\b", reference)
    }
    assert not missing, f"environment variables missing from the configuration reference: {missing}"


def test_the_configuration_tables_are_written_from_the_settings() -> None:
    """`scripts/config_reference.py --check` finds no drift, and every package's settings have a
    table."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_reference.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tables = set(re.findall(r"<!-- settings: ([\w.]+) -->", README))
    modules = {ref.rpartition(".")[0] for ref in tables}
    packages = ["otel_bridge", *(path.name for path in ROOT.glob("exporters/*/otel_bridge_*"))]
    assert modules == {f"{package}.settings" for package in packages}


def _settings_of(ref: str) -> tuple[Setting[Any], ...]:
    from importlib import import_module

    module, _, name = ref.rpartition(".")
    settings: tuple[Setting[Any], ...] = getattr(import_module(module), name)
    return settings


def _configured_callables() -> list[tuple[str, Callable[..., Any]]]:
    from otel_bridge_clearml import ClearMLSpanExporter
    from otel_bridge_labelstudio import LabelStudioSpanExporter
    from otel_bridge_sagemaker import SageMakerSpanExporter

    from otel_bridge import OTelCallbackHandler, TraceExporter
    from otel_bridge.file_sink import FileSpanExporter

    return [
        ("otel_bridge.settings.HANDLER_SETTINGS", OTelCallbackHandler),
        ("otel_bridge.settings.EXPORTER_SETTINGS", TraceExporter),
        ("otel_bridge.settings.FILE_SINK_SETTINGS", FileSpanExporter),
        ("otel_bridge_clearml.settings.SETTINGS", ClearMLSpanExporter),
        ("otel_bridge_sagemaker.settings.SETTINGS", SageMakerSpanExporter),
        ("otel_bridge_labelstudio.settings.SETTINGS", LabelStudioSpanExporter),
    ]


@pytest.mark.parametrize(("ref", "configured"), _configured_callables(), ids=lambda v: str(v))
def test_the_settings_are_the_constructors_parameters(
    ref: str, configured: Callable[..., Any]
) -> None:
    """Same names in the same order, and the same defaults where both name a value."""
    settings = _settings_of(ref)
    parameters = {
        name: parameter
        for name, parameter in inspect.signature(configured).parameters.items()
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }
    assert [setting.parameter for setting in settings] == list(parameters)
    for setting in settings:
        default = parameters[setting.parameter].default
        if default not in (None, inspect.Parameter.empty) and setting.default is not None:
            assert setting.default == default, setting.parameter


def _unknown_key_message(document: dict[str, Any]) -> list[str]:
    from otel_bridge.receiver.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as error:
        parse_config(document, {})
    match = re.search(r"expected one of: ([^)]*)\)", str(error.value))
    assert match, str(error.value)
    return [key.strip() for key in match.group(1).split(",")]


@pytest.mark.parametrize(
    ("path", "document"),
    [
        ("", {"not_a_key": 1}),
        ("receiver.", {"receiver": {"not_a_key": 1}}),
        ("receiver.http.", {"receiver": {"http": {"not_a_key": 1}}}),
        ("receiver.grpc.", {"receiver": {"grpc": {"not_a_key": 1}}}),
        ("receiver.http.cors.", {"receiver": {"http": {"cors": {"not_a_key": 1}}}}),
        ("receiver.auth.", {"receiver": {"auth": {"not_a_key": 1}}}),
        ("receiver.auth.tls.", {"receiver": {"auth": {"tls": {"not_a_key": 1}}}}),
        ("telemetry.", {"telemetry": {"not_a_key": 1}}),
    ],
)
def test_every_serve_configuration_key_is_documented(path: str, document: dict[str, Any]) -> None:
    """The keys come from the validator itself: it names the allowed keys of each section."""
    text = section("`otel-bridge serve`")
    for key in _unknown_key_message(document):
        assert f"`{path}{key}" in text, f"serve configuration key {path}{key} is not documented"


def test_every_cli_option_is_documented() -> None:
    from importlib import import_module

    from otel_bridge.cli import _COMMANDS

    for command, module_path in _COMMANDS.items():
        parser = argparse.ArgumentParser()
        import_module(module_path).add_arguments(parser)
        options = [
            option
            for action in parser._actions
            for option in action.option_strings
            if option.startswith("--") and option != "--help"
        ]
        for option in options:
            assert re.search(rf"{re.escape(option)}\b", README), (
                f"`{command} {option}` undocumented"
            )
        assert f"otel-bridge {command}" in README


def test_every_semconv_name_is_in_the_attribute_reference() -> None:
    text = section("Attribute reference")
    names = {
        constant: value
        for constant, value in vars(semconv).items()
        if constant.isupper() and isinstance(value, str)
    }
    missing = sorted(value.rstrip(".") for value in names.values() if value.rstrip(".") not in text)
    assert not missing, f"semconv names missing from the attribute reference: {missing}"


def test_relative_links_point_to_files_that_exist() -> None:
    for target in re.findall(r"\]\(((?!https?://|#)[^)]+)\)", README):
        assert (ROOT / target.split("#")[0]).exists(), f"README links to missing {target}"


def test_every_example_is_in_the_examples_table() -> None:
    text = section("Examples")
    for example in sorted((ROOT / "examples").glob("*.py")):
        assert f"examples/{example.name}" in text, f"{example.name} is not in the README"
