"""Writes the README's configuration tables from the settings declarations, so the two cannot
drift: each table stands between `<!-- settings: MODULE.NAME -->` and `<!-- /settings -->`, where
MODULE.NAME is a tuple of `otel_bridge.settings.Setting`s (a package's `settings` module).

    python scripts/config_reference.py            # rewrite README.md
    python scripts/config_reference.py --check    # exit 1 and show the difference if it drifted
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from otel_bridge.settings import Setting

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"(<!-- settings: (?P<ref>[\w.]+) -->\n)(?P<table>.*?)(<!-- /settings -->)", re.S
)
_HEADER = "| parameter | environment | default | meaning |\n| --- | --- | --- | --- |\n"


def declared(ref: str) -> tuple[Setting[Any], ...]:
    module, _, name = ref.rpartition(".")
    settings = getattr(import_module(module), name)
    if not (isinstance(settings, tuple) and all(isinstance(s, Setting) for s in settings)):
        raise TypeError(f"{ref} is not a tuple of Settings")
    return settings


def shown_default(setting: Setting[Any]) -> str:
    if setting.default_text:
        return setting.default_text
    value = setting.default
    if value is None or value == ():
        return "none"
    if isinstance(value, bool | str):
        return f"`{value}`"
    return str(value)


def row(setting: Setting[Any]) -> str:
    if setting.shared and setting.sink is None:
        setting = setting.for_sink("<sink>")
    variables = ", ".join(f"`{variable}`" for variable in setting.variables)
    cells = (f"`{setting.parameter}`", variables, shown_default(setting), setting.meaning)
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|\n"


def table(settings: Sequence[Setting[Any]]) -> str:
    return _HEADER + "".join(row(setting) for setting in settings)


def render(text: str) -> str:
    """`text` with every marked table written anew."""
    return BLOCK.sub(
        lambda match: match.group(1) + table(declared(match.group("ref"))) + match.group(4), text
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    parser.add_argument("readme", nargs="?", type=Path, default=README)
    args = parser.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    wanted = render(current)
    if wanted == current:
        return 0
    if args.check:
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                f"{args.readme} (as it is)",
                f"{args.readme} (from the settings)",
            )
        )
        print(f"\n{args.readme} drifted from the settings: run python scripts/config_reference.py")
        return 1
    args.readme.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
