"""What content capture writes for the values orjson refuses or writes its own way: each costs only
itself, never the rest of the attribute, and the one orjson call and the careful walk (which the
redact hook always takes) write the same bytes."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_bridge._content import ContentPolicy, _fast_encode, encode
from tests.support.secret_keys import SECRET_KEY_SPELLINGS as ASCII_SPELLINGS

POLICY = ContentPolicy(max_length=100_000)


def _careful(value: Any, limit: int = 100_000) -> str:
    return encode(value, ContentPolicy(max_length=limit, redact=lambda text: text))


def _written(value: Any) -> str:
    """`encode`'s text, checked to be what the careful walk writes."""
    text = encode(value, POLICY)
    assert text == _careful(value)
    return text


class Colour(enum.Enum):
    RED = 1
    ODD = object()


class Mode(enum.StrEnum):
    FAST = "fast"


@dataclasses.dataclass
class Point:
    x: int
    label: str


class _Zone(datetime.tzinfo):
    """A tzinfo orjson does not know (it takes only zoneinfo, pytz, dateutil, ...)."""

    def utcoffset(self, dt: datetime.datetime | None) -> datetime.timedelta:
        return datetime.timedelta(hours=2)

    def dst(self, dt: datetime.datetime | None) -> datetime.timedelta:
        return datetime.timedelta(0)


class _UnreadableSequence(Sequence[int]):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: Any) -> Any:
        raise RuntimeError("cannot index")

    def __repr__(self) -> str:
        return "<unreadable sequence>"


class _UnreadableMapping(Mapping[str, int]):
    def __getitem__(self, key: str) -> int:
        raise RuntimeError("cannot look up")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("cannot iterate")

    def __len__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return "<unreadable mapping>"


def test_nan_and_the_infinities_are_written_as_null() -> None:
    value = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "ok": 1.5}
    assert _fast_encode(value, 1000) is not None
    assert _written(value) == '{"nan":null,"inf":null,"-inf":null,"ok":1.5}'


def test_small_and_large_floats_are_written_shortest() -> None:
    assert _written([1e-7, 1e300, 0.1, -0.0]) == "[1e-7,1e+300,0.1,-0.0]"


def test_uuids_are_written_as_their_string_and_enums_as_their_value() -> None:
    run = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {"run": run, "colour": Colour.RED, "mode": Mode.FAST}
    assert _fast_encode(value, 1000) is not None
    assert json.loads(_written(value)) == {"run": str(run), "colour": 1, "mode": "fast"}
    # An Enum whose value orjson cannot write: the value as everything else orjson cannot write.
    assert json.loads(_written({"odd": Colour.ODD}))["odd"].startswith("<object object at")


def test_an_integer_beyond_64_bits_costs_only_itself() -> None:
    value = {"big": 2**64, "negative": -(2**63) - 1, "max": 2**64 - 1, "min": -(2**63), "n": 7}
    assert _fast_encode(value, 1000) is None
    assert json.loads(_written(value)) == {
        "big": str(2**64),
        "negative": str(-(2**63) - 1),
        "max": 2**64 - 1,
        "min": -(2**63),
        "n": 7,
    }


def test_keys_that_are_not_strings_are_written_as_orjson_writes_them_once_each() -> None:
    value = {1: "a", None: "b", 2.5: "c", Colour.RED: "d", False: "e"}
    assert _fast_encode(value, 1000) is None
    # Colour.RED is not the key 1 but is written as its value: the later one is kept.
    assert _written(value) == '{"1":"d","null":"b","2.5":"c","false":"e"}'
    # orjson refuses a tuple key: that key is its repr, the rest as before.
    assert json.loads(_written({(1, 2): "t", 3: "n"})) == {"(1, 2)": "t", "3": "n"}


def test_a_lone_surrogate_costs_only_itself() -> None:
    value = {"lone": "a\ud800b", "pair": "\ud83d\ude00", "key\udfff": 1, "ok": "é"}
    assert _fast_encode(value, 1000) is None
    assert json.loads(_written(value)) == {
        "lone": "a\ufffdb",
        "pair": "\U0001f600",
        "key\ufffd": 1,
        "ok": "é",
    }


def test_datetimes_dataclasses_and_sets_are_converted_the_same_by_both_paths() -> None:
    moment = datetime.datetime(2026, 12, 4, 15, 0, tzinfo=_Zone())
    value = {
        "at": moment,
        "day": datetime.date(2026, 12, 4),
        "point": Point(1, "p"),
        "set": {3},
        "bytes": b"\x00\x01",
    }
    assert _fast_encode(value, 1000) is not None
    assert json.loads(_written(value)) == {
        "at": "2026-12-04T15:00:00+02:00",
        "day": "2026-12-04",
        "point": {"x": 1, "label": "p"},
        "set": [3],
        "bytes": "AAE=",
    }


def test_a_conversion_that_raises_costs_only_its_value() -> None:
    value = {"seq": _UnreadableSequence(), "map": _UnreadableMapping(), "ok": [1, 2]}
    assert json.loads(_written(value)) == {
        "seq": "<unreadable sequence>",
        "map": "<unreadable mapping>",
        "ok": [1, 2],
    }


def test_nesting_deeper_than_orjson_takes_is_cut_not_lost() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(300):
        inner.append([])
        inner = inner[0]
    assert _fast_encode({"deep": deep, "ok": 1}, 100_000) is None
    written = json.loads(_written({"deep": deep, "ok": 1}))
    assert written["ok"] == 1
    assert "[max depth]" in json.dumps(written["deep"])


def test_a_key_mentioning_tokens_keeps_the_one_call_and_a_secret_key_is_masked() -> None:
    usage = {"input_tokens": 3, "output_tokens": 4, "text": "the api_key is a token"}
    assert (
        _fast_encode(usage, 1000)
        == '{"input_tokens":3,"output_tokens":4,"text":"the api_key is a token"}'
    )
    # A string value that looks like a secret key followed by ":" is still a value.
    quoted = {"text": 'he wrote "api_key": x'}
    assert _written(quoted) == json.dumps(quoted, separators=(",", ":"))
    secret = {"nested": [{"Authorization": "Bearer abc"}], "n": 1}
    assert _fast_encode(secret, 1000) is None
    assert json.loads(_written(secret)) == {"nested": [{"Authorization": "[REDACTED]"}], "n": 1}


key_pieces = st.sampled_from(
    ["api_key", "API-KEY", "token", "input_tokens", "secret", "passwd", '"', "\\", ":", "a", "é"]
)
keys = st.lists(key_pieces, max_size=4).map("".join)
values = st.recursive(
    st.none() | st.integers() | st.text(max_size=8) | keys,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=10,
)


@given(value=values)
@settings(max_examples=300, deadline=None)
def test_no_secret_looking_key_escapes_the_mask(value: Any) -> None:
    # The one call's output is taken only where it equals the careful walk, which masks every
    # secret-looking key, escaped quotes and backslashes in keys included.
    fast = _fast_encode(value, 100_000)
    if fast is not None:
        assert fast == _careful(value)
    assert encode(value, POLICY) == _careful(value)


# Every spelling of a secret-looking key the mask knows, in the cases a key is written in, and
# with the letters that match ASCII ones when case is ignored (the Kelvin sign, the long s, the
# dotless i and the dotted capital I): the one orjson call must not write any of them unmasked.
SECRET_KEY_SPELLINGS = [
    *ASCII_SPELLINGS,
    "\u212aey_api_\u212aey",
    "api_\u212aey",
    "\u017fecret",
    "pa\u017f\u017fword",
    "author\u0131zation",
    "credent\u0131al",
    "author\u0130zation",
]


def test_every_secret_looking_key_is_masked_in_every_case() -> None:
    for spelling in SECRET_KEY_SPELLINGS:
        # Lowering the dotted capital I gives two characters: no longer the key's spelling.
        cases = {spelling, spelling.upper()}
        if spelling.isascii():
            cases |= {spelling.lower(), spelling.title()}
        for key in cases:
            for value in ({key: "v", "n": 1}, [{"outer": {key: "v"}}]):
                written = _written(value)
                assert '"v"' not in written, (key, written)
                assert _fast_encode(value, 100_000) is None
