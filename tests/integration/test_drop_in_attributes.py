"""Every public name of each langchain_community handler exists on its drop-in and has its row
in docs/migration.md: the constructor arguments, the members of the originals' classes
(`langchain_community`'s own, `BaseMetadataCallbackHandler` included: callbacks, properties,
`ignore_llm_`, `on_llm_start_records`, ...) and the attributes their methods set
(`self.name = ...`), read from their source, so neither the drop-ins nor the document can drift
from the originals. Whether each name works is tested in the sinks' own tests
(exporters/<sink>/tests/test_handler.py, test_migration.py, test_seed_parity.py)."""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIGRATION = (ROOT / "docs" / "migration.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")

PAIRS = [
    ("labelstudio_callback", "LabelStudioCallbackHandler", "otel_bridge_labelstudio"),
    ("uptrain_callback", "UpTrainCallbackHandler", "otel_bridge_uptrain"),
    ("clearml_callback", "ClearMLCallbackHandler", "otel_bridge_clearml"),
    ("sagemaker_callback", "SageMakerCallbackHandler", "otel_bridge_sagemaker"),
]
_ASSIGNED = re.compile(r"self\.([A-Za-z]\w*)\s*[:=]")


def _original(module: str, name: str) -> type:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return getattr(importlib.import_module(f"langchain_community.callbacks.{module}"), name)  # type: ignore[no-any-return]


def _arguments(cls: type) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


def original_attributes(cls: type) -> set[str]:
    """The public members and attributes the original's own source gives it."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("langchain_community"):
            names |= {name for name in vars(klass) if not name.startswith("_")}
            names |= set(_ASSIGNED.findall(inspect.getsource(klass)))
    return names


def drop_in_names(cls: type) -> set[str]:
    names = {name for name in dir(cls) if not name.startswith("_")}
    for klass in cls.__mro__:
        if klass.__module__.startswith("otel_bridge"):
            names |= set(_ASSIGNED.findall(inspect.getsource(klass)))
    return names


def table_rows(handler_name: str) -> dict[str, list[str]]:
    """The rows of the docs/migration.md section whose heading names `handler_name`: each name
    of a row's first cell, with the row's cells."""
    sections = re.split(r"^## ", MIGRATION, flags=re.MULTILINE)
    (section,) = [s for s in sections if f".{handler_name}`" in s.splitlines()[0]]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        for name in re.findall(r"`(\w+)`", cells[0]):
            rows[name] = cells
    return rows


@pytest.mark.parametrize(("module", "name", "package"), PAIRS)
def test_the_drop_in_has_every_public_name_of_the_original(
    module: str, name: str, package: str
) -> None:
    drop_in = getattr(importlib.import_module(package), name)
    original = _original(module, name)
    assert sorted(original_attributes(original) - drop_in_names(drop_in)) == []
    ours = _arguments(drop_in)
    assert [argument for argument in _arguments(original) if argument not in ours] == []


@pytest.mark.parametrize(("module", "name", "package"), PAIRS)
def test_docs_migration_has_a_row_for_every_public_name(
    module: str, name: str, package: str
) -> None:
    rows = table_rows(name)
    original = _original(module, name)
    names = original_attributes(original) | set(_arguments(original))
    assert sorted(names - set(rows)) == []
    for cells in rows.values():
        assert len(cells) == 3 and all(cells), cells  # name | original | drop-in


def test_nothing_is_called_missing_and_the_readme_links_the_tables() -> None:
    start = README.index("## Migrating from the langchain_community handlers")
    readme_section = README[start : README.index("\n## ", start + 1)]
    assert "docs/migration.md" in readme_section
    for text in (MIGRATION, readme_section):
        assert re.search(r"missing", text, re.IGNORECASE) is None
