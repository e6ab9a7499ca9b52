"""Every public attribute and method of each langchain_community handler exists on its drop-in:
the originals' class members, and the attributes their constructors and callbacks set
(`self.name = ...`), read from their source. Whether each works is tested in the sink's own
handler tests; this test fails when an original has a name its drop-in lacks. Left out: the
callbacks themselves, the per-callback record lists (`on_llm_start_records`, ...) and the
flags behind `ignore_*`/`always_verbose` (`ignore_llm_`, ...) of langchain_community's
`BaseMetadataCallbackHandler`, which the originals fill or read only internally."""

from __future__ import annotations

import importlib
import inspect
import re
import warnings

import pytest
from langchain_core.callbacks import BaseCallbackHandler

PAIRS = [
    ("labelstudio_callback", "LabelStudioCallbackHandler", "otel_bridge_labelstudio"),
    ("uptrain_callback", "UpTrainCallbackHandler", "otel_bridge_uptrain"),
    ("clearml_callback", "ClearMLCallbackHandler", "otel_bridge_clearml"),
    ("sagemaker_callback", "SageMakerCallbackHandler", "otel_bridge_sagemaker"),
]
_ASSIGNED = re.compile(r"self\.([A-Za-z]\w*)\s*[:=]")


def _public_names(cls: type) -> set[str]:
    names = {name for name in dir(cls) if not name.startswith("_")}
    for klass in cls.__mro__:
        if klass.__module__.startswith(("langchain_community", "otel_bridge")):
            names |= set(_ASSIGNED.findall(inspect.getsource(klass)))
    return names


@pytest.mark.parametrize(("module", "name", "package"), PAIRS)
def test_the_drop_in_has_every_public_name_of_the_original(
    module: str, name: str, package: str
) -> None:
    drop_in = getattr(importlib.import_module(package), name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        original = getattr(importlib.import_module(f"langchain_community.callbacks.{module}"), name)
    wanted = _public_names(original) - set(dir(BaseCallbackHandler))
    missing = sorted(
        n
        for n in wanted - _public_names(drop_in)
        if not n.startswith("on_") and not n.endswith("_")
    )
    assert missing == []
