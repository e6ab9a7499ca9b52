"""The cost of a model call, from a price table the user supplies.

The table maps a model name to its prices per 1,000 tokens, in one currency of the user's
choosing (nothing here converts):

    gpt-4o: {input: 0.0025, output: 0.01, cached_input: 0.00125}
    claude-sonnet: {input: 0.003, output: 0.015}

as a mapping, or a JSON or YAML file (`.yaml`/`.yml`). A call's response model is looked up
first, then its requested model; a name matches its own entry, else the longest entry it starts
with (`gpt-4o-2024-08-06` -> `gpt-4o`). Cached input tokens cost `cached_input` (default:
`input`); a model with no entry, or a call with no token counts, has no cost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otel_bridge._extract import Usage

__all__ = ["ModelPrice", "PriceTable"]

_PER = 1000.0
_FIELDS = ("input", "output", "cached_input")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage) -> float | None:
        if usage.input_tokens is None and usage.output_tokens is None:
            return None
        cached = usage.cache_read_input_tokens or 0
        fresh = max((usage.input_tokens or 0) - cached, 0)
        cached_price = self.input if self.cached_input is None else self.cached_input
        total = (
            fresh * self.input + cached * cached_price + (usage.output_tokens or 0) * self.output
        )
        return total / _PER


class PriceTable:
    """Model name -> `ModelPrice`; see the module's documentation for the format."""

    __slots__ = ("_by_prefix", "_prices")

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = dict(prices)
        # Longest first, so the most specific entry a name starts with wins.
        self._by_prefix = sorted(self._prices, key=len, reverse=True)

    @classmethod
    def load(cls, source: str | os.PathLike[str] | Mapping[str, Any]) -> PriceTable:
        """From a mapping or a JSON/YAML file; ValueError names what is wrong and where."""
        if isinstance(source, Mapping):
            return cls.from_mapping(source, "the price table")
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"cannot read the price table {path}: {error.strerror}") from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                raw = yaml.safe_load(text)
            else:
                raw = json.loads(text)
        except ValueError as error:  # json.JSONDecodeError and yaml.YAMLError's parse errors
            raise ValueError(f"the price table {path} does not parse: {error}") from None
        except Exception as error:
            raise ValueError(f"the price table {path} does not parse: {error}") from None
        if not isinstance(raw, Mapping):
            raise ValueError(f"the price table {path} must map model names to prices")
        return cls.from_mapping(raw, str(path))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str) -> PriceTable:
        prices: dict[str, ModelPrice] = {}
        for model, entry in raw.items():
            if isinstance(entry, ModelPrice):
                prices[str(model)] = entry
                continue
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where}: {model}: expected {{input: ..., output: ...}}")
            unknown = set(entry) - set(_FIELDS)
            if unknown:
                raise ValueError(f"{where}: {model}: unknown keys {sorted(unknown)}")
            values: dict[str, float] = {}
            for field in _FIELDS:
                if field not in entry:
                    continue
                value = entry[field]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"{where}: {model}.{field}: not a price ({value!r})")
                values[field] = float(value)
            if "input" not in values or "output" not in values:
                raise ValueError(f"{where}: {model}: needs both input and output")
            prices[str(model)] = ModelPrice(**values)
        return cls(prices)

    def price_of(self, *models: str | None) -> ModelPrice | None:
        for model in models:
            if not model:
                continue
            found = self._prices.get(model)
            if found is not None:
                return found
            for name in self._by_prefix:
                if model.startswith(name):
                    return self._prices[name]
        return None

    def cost(self, usage: Usage | None, *models: str | None) -> float | None:
        if usage is None:
            return None
        price = self.price_of(*models)
        return None if price is None else price.cost(usage)
