"""The one configuration rule: argument > OTEL_BRIDGE_<SINK>_<NAME> > OTEL_BRIDGE_<NAME> >
generic variable > default, for the core and every sink."""

from __future__ import annotations

import logging

import pytest

from otel_bridge.settings import Setting, parse_bool, parse_list

SHARED: Setting[float] = Setting(
    "grace_period", 2.0, "", name="GRACE_PERIOD", shared=True, generic=("GENERIC",), parse=float
)
OWN: Setting[str | None] = Setting("url", None, "", name="URL", sink="demo", generic=("DEMO_URL",))


def test_variables_in_order() -> None:
    assert SHARED.for_sink("demo").variables == (
        "OTEL_BRIDGE_DEMO_GRACE_PERIOD",
        "OTEL_BRIDGE_GRACE_PERIOD",
        "GENERIC",
    )
    assert SHARED.variables == ("OTEL_BRIDGE_GRACE_PERIOD", "GENERIC")
    assert OWN.variables == ("OTEL_BRIDGE_DEMO_URL", "DEMO_URL")
    assert Setting("clock", None, "").variables == ()


def test_a_sink_or_shared_setting_is_named_after_its_parameter() -> None:
    assert Setting("project_url", None, "", sink="demo").variables == (
        "OTEL_BRIDGE_DEMO_PROJECT_URL",
    )
    assert Setting("max_age", 1.0, "", shared=True).for_sink("demo").variables == (
        "OTEL_BRIDGE_DEMO_MAX_AGE",
        "OTEL_BRIDGE_MAX_AGE",
    )
    assert Setting("url", None, "", name="SERVER", sink="demo").variables == (
        "OTEL_BRIDGE_DEMO_SERVER",
    )


@pytest.mark.parametrize(
    ("argument", "environ", "expected", "source"),
    [
        (5.0, {"OTEL_BRIDGE_DEMO_GRACE_PERIOD": "4", "GENERIC": "1"}, 5.0, "grace_period"),
        (None, {"OTEL_BRIDGE_DEMO_GRACE_PERIOD": "4", "OTEL_BRIDGE_GRACE_PERIOD": "3"}, 4.0, None),
        (None, {"OTEL_BRIDGE_GRACE_PERIOD": "3", "GENERIC": "1"}, 3.0, None),
        (None, {"GENERIC": "1"}, 1.0, "GENERIC"),
        (None, {}, 2.0, None),
        # An argument of 0 is given; a blank variable is not set.
        (0.0, {"OTEL_BRIDGE_DEMO_GRACE_PERIOD": "4"}, 0.0, "grace_period"),
        (None, {"OTEL_BRIDGE_DEMO_GRACE_PERIOD": " ", "GENERIC": "1"}, 1.0, "GENERIC"),
    ],
)
def test_argument_beats_sink_variable_beats_shared_beats_generic_beats_default(
    argument: float | None, environ: dict[str, str], expected: float, source: str | None
) -> None:
    setting = SHARED.for_sink("demo")
    assert setting.resolve(argument, environ=environ) == expected
    found = setting.lookup(argument, environ=environ)
    if source is not None:
        assert found is not None and found.source == source


def test_an_empty_string_argument_counts_as_not_given() -> None:
    assert OWN.resolve("", environ={"DEMO_URL": "http://x"}) == "http://x"
    assert OWN.resolve(None, environ={}) is None


def test_an_invalid_value_names_its_variable() -> None:
    with pytest.raises(ValueError, match="OTEL_BRIDGE_GRACE_PERIOD='soon' is not valid"):
        SHARED.resolve(environ={"OTEL_BRIDGE_GRACE_PERIOD": "soon", "GENERIC": "1"})


def test_a_lenient_setting_logs_an_invalid_value_and_reads_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lenient: Setting[int] = Setting(
        "n", 7, "", name="N", generic=("GENERIC_N",), parse=int, lenient=True
    )
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        assert lenient.resolve(environ={"OTEL_BRIDGE_N": "many", "GENERIC_N": "3"}) == 3
        assert lenient.resolve(environ={"OTEL_BRIDGE_N": "many"}) == 7
    assert "OTEL_BRIDGE_N='many'" in caplog.text


def test_an_explicit_variable_list_replaces_the_declared_one() -> None:
    environ = {"OTEL_BRIDGE_DEMO_URL": "http://a", "OTHER": "http://b"}
    assert OWN.resolve(environ=environ, variables=("OTHER",)) == "http://b"


@pytest.mark.parametrize(("raw", "value"), [("1", True), (" Yes ", True), ("off", False)])
def test_booleans(raw: str, value: bool) -> None:
    assert parse_bool(raw) is value


def test_a_word_that_is_no_boolean_is_refused() -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        parse_bool("maybe")


def test_lists_are_comma_separated_and_drop_blanks() -> None:
    assert parse_list(" a, b ,,c ") == ("a", "b", "c")
