"""The distributions as a user installs them: wheels built from this tree (the core, each sink
and the optional C code), installed (not editable) into a clean virtual environment, then the README's quickstart
and `otel-bridge --version` run from a directory outside the source tree.

uv builds and installs (the one `make install` brings); the versions are the project's
constraints, so the packages come from uv's cache on a machine that ran `make install`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.integration.test_readme import section

ROOT = Path(__file__).resolve().parents[2]
SINKS = ("labelstudio", "uptrain", "clearml", "sagemaker")
UV = Path(sys.executable).with_name("uv")
_TIMEOUT_S = 600


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """Built wheels, and a fresh environment with all of them installed."""
    if not UV.exists():
        pytest.fail(f"{UV} missing: `make install` puts uv in the virtual environment")
    scratch = tmp_path_factory.mktemp("wheels")
    dist = scratch / "dist"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "VIRTUAL_ENV", "PYTHON"))
    }
    for project in (ROOT, *(ROOT / "exporters" / sink for sink in SINKS), ROOT / "native"):
        _run(
            [str(UV), "build", "--wheel", "--quiet", "--out-dir", str(dist), str(project)],
            ROOT,
            env,
        )
    venv = scratch / "venv"
    _run([str(UV), "venv", "--quiet", "-p", sys.executable, str(venv)], scratch, env)
    wheels = sorted(str(wheel) for wheel in dist.glob("*.whl"))
    _run(
        [
            str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
            "-c", str(ROOT / "requirements" / "constraints.txt"), *wheels,
        ],
        scratch,
        env,
    )  # fmt: skip
    return dist, venv, env


def test_each_distribution_builds_one_wheel_with_its_package_and_no_tests(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    dist, _, _ = installed
    names = sorted(wheel.name for wheel in dist.glob("*.whl"))
    assert [re.sub(r"-0\.1\.0-.*", "", name) for name in names] == [
        "otel_bridge",
        *sorted([*(f"otel_bridge_{sink}" for sink in SINKS), "otel_bridge_speedups"]),
    ]
    core = zipfile.ZipFile(next(dist.glob("otel_bridge-0.1.0-*.whl"))).namelist()
    assert "otel_bridge/py.typed" in core and "otel_bridge/cli.py" in core
    assert not [name for name in core if name.startswith(("tests/", "exporters/", "bench/"))]
    for sink in SINKS:
        (wheel,) = dist.glob(f"otel_bridge_{sink}-*.whl")
        files = zipfile.ZipFile(wheel).namelist()
        assert f"otel_bridge_{sink}/__init__.py" in files
        assert not [name for name in files if "/tests/" in name or name.startswith("tests/")]
    (native,) = dist.glob("otel_bridge_speedups-*.whl")
    files = zipfile.ZipFile(native).namelist()
    assert [
        name for name in files if re.fullmatch(r"otel_bridge_speedups/_otlp_json\..*\.so", name)
    ]


def test_the_installed_wheels_run_the_quickstart_and_name_every_sink(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, venv, env = installed
    python, cli = venv / "bin" / "python", venv / "bin" / "otel-bridge"
    where = _run(
        [str(python), "-c", "import otel_bridge, otel_bridge_labelstudio as s; print(otel_bridge.__file__, s.__file__)"],
        tmp_path,
        env,
    )  # fmt: skip
    assert all(path.startswith(str(venv)) for path in where.stdout.split()), where.stdout
    # The C walk is the one the file sink uses, from the installed wheel.
    native = "from otel_bridge import otlp_json; print(otlp_json._native_spans_json.__module__)"
    assert (
        _run([str(python), "-c", native], tmp_path, env).stdout
        == "otel_bridge_speedups._otlp_json\n"
    )
    (code,) = re.findall(r"```python\n(.*?)```", section("Quickstart"), re.DOTALL)
    (tmp_path / "quickstart.py").write_text(code, encoding="utf-8")
    ran = _run([str(python), "quickstart.py"], tmp_path, env)
    assert ran.stdout.startswith("A tree of spans.\n")
    assert '"langchain.run.type": "chat_model"' in ran.stdout
    version = _run([str(cli), "--version"], tmp_path, env).stdout
    assert version.startswith("otel-bridge 0.1.0 (sinks: ")
    for sink in SINKS:
        assert f"{sink} 0.1.0" in version
