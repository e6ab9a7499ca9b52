"""The sink contract's HTTP classifier: which failed answers are retried, and how long a
Retry-After header makes the worker wait (bounded, and read in GMT whatever the local zone)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from email.utils import formatdate

import pytest

from otel_bridge import delivery
from otel_bridge.sink import (
    MAX_RETRY_AFTER_SECONDS,
    RETRYABLE_HTTP_STATUS,
    PermanentError,
    RetryableError,
    error_for_http_status,
    http_status_is_retryable,
    retry_after_seconds,
)

NOW = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (None, True),  # no answer at all: the request may never have arrived
        (0, True),
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (507, True),
        (520, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (413, False),
        (422, False),
        (501, False),
        (505, False),
    ],
)
def test_status_classification(status: int | None, retryable: bool) -> None:
    assert http_status_is_retryable(status) is retryable
    error = error_for_http_status(status, "x", "7")
    assert isinstance(error, RetryableError if retryable else PermanentError)
    if isinstance(error, RetryableError):
        assert error.retry_after == 7.0


def test_the_otlp_retryable_statuses_are_in_the_table() -> None:
    assert {429, 502, 503, 504} <= RETRYABLE_HTTP_STATUS


def test_the_names_stay_importable_from_delivery() -> None:
    assert delivery.retry_after_seconds is retry_after_seconds
    assert delivery.error_for_http_status is error_for_http_status
    assert delivery.RETRYABLE_HTTP_STATUS is RETRYABLE_HTTP_STATUS


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:28:30 -0000", 30.0),
        ("Wed, 21 Oct 2015 07:28:30", 30.0),
        ("Wed, 21 Oct 2015 09:28:30 +0200", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past
        ("99999999999", MAX_RETRY_AFTER_SECONDS),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_SECONDS),
        ("inf", None),
        ("Infinity", None),
        ("nan", None),
        ("-5", None),
        ("1e3", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header, now=NOW) == seconds


@pytest.mark.parametrize("zone", ["GMT", "-0000", ""])
def test_an_http_date_is_read_in_gmt_whatever_the_local_time_zone(zone: str) -> None:
    """A date 60 s ahead once read as 18059 s under TZ=America/New_York (local time)."""
    script = textwrap.dedent(
        f"""
        import os, time
        os.environ["TZ"] = "America/New_York"
        time.tzset()
        from otel_bridge.sink import retry_after_seconds
        header = {formatdate(NOW + 60, usegmt=True).removesuffix(" GMT")!r} + " {zone}"
        print(retry_after_seconds(header.strip(), now={NOW}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert float(done.stdout) == 60.0
