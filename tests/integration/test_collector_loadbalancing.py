"""collector-config/gateway-loadbalancing.yaml in our Collector build (`make collector`): one
gateway, three `otel-bridge serve` instances (own ports, own spools, TLS and the token), traces
from several app processes (tests/support/collector_app.py: the SDK's BatchSpanProcessor and
OTLP exporter, so a trace's spans may travel in different requests).

Every trace the apps' exports got acknowledged must be handed over by exactly one instance,
once (one line of its file), with exactly its spans, also when an instance is killed mid-run
and restarted. The second test finds the instances with the `dns` resolver instead of the
static list: one name with three loopback addresses.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.collector import (
    CONFIG_DIR,
    ROOT,
    TOKEN,
    Bridge,
    Collector,
    Processes,
    assert_no_deprecation_warnings,
    base_env,
    free_port,
    make_pki,
    span_ids,
    start_bridge,
    start_collector,
    wait_for,
)

pytestmark = pytest.mark.slow

APPS = 4
TRACES_PER_APP = 250
GATEWAY = CONFIG_DIR / "gateway-loadbalancing.yaml"
# Whole traces, one line each (the file sink spools requests and assembles their traces).
SINK = "    grace_period: 1.0\n    lines: trace"


def start_apps(
    processes: Processes, directory: Path, gateway: Collector, count: int, traces: int
) -> tuple[list[subprocess.Popen[bytes]], list[Path], Path]:
    """`count` app processes; each sends half its traces, then waits for the returned file."""
    resume = directory / "resume"
    reports = [directory / f"app-{n}.json" for n in range(count)]
    apps = []
    for n, report in enumerate(reports):
        argv = [sys.executable, "-m", "tests.support.collector_app"]
        argv += ["--endpoint", f"127.0.0.1:{gateway.grpc_port}", "--service", f"app-{n}"]
        argv += ["--traces", str(traces), "--resume-after", str(resume), "--report", str(report)]
        apps.append(
            processes.start(
                argv, env=base_env(PYTHONPATH=str(ROOT)), log=directory / f"app-{n}.log", cwd=ROOT
            )
        )
    return apps, reports, resume


def acknowledged(
    apps: Sequence[subprocess.Popen[bytes]], reports: Sequence[Path]
) -> dict[int, set[int]]:
    """trace id -> span ids the gateway acknowledged to the apps (every export must succeed)."""
    wait_for(lambda: all(app.poll() is not None for app in apps), "the apps to finish")
    assert [app.returncode for app in apps] == [0] * len(apps)
    sent: dict[int, set[int]] = {}
    for report in reports:
        content = json.loads(report.read_text(encoding="utf-8"))
        assert content["failed_exports"] == 0, report
        for trace, spans in content["acknowledged"].items():
            assert int(trace, 16) not in sent
            sent[int(trace, 16)] = {int(span, 16) for span in spans}
    return sent


def every_trace_delivered(bridges: Sequence[Bridge], sent: dict[int, set[int]]) -> bool:
    delivered: dict[int, set[int]] = {}
    for bridge in bridges:
        for trace, spans in span_ids(bridge.deliveries()).items():
            delivered.setdefault(trace, set()).update(spans)
    return all(delivered.get(trace) == spans for trace, spans in sent.items())


@dataclass(frozen=True, slots=True)
class Tally:
    """What the instances handed over, against what the apps' exports got acknowledged."""

    per_instance: tuple[int, ...]  # traces handed over by each instance
    lost: int  # acknowledged traces some span of which no instance handed over
    split: int  # traces handed over more than once (two lines, or two instances)
    duplicated_spans: int  # spans handed over more than once
    incomplete: int  # hand-overs without every acknowledged span of their trace
    unexpected: int  # traces handed over that no app sent

    def __str__(self) -> str:
        return (
            f"traces per instance {list(self.per_instance)}; lost {self.lost}, split "
            f"{self.split}, duplicated spans {self.duplicated_spans}, incomplete "
            f"{self.incomplete}, unexpected {self.unexpected}"
        )

    def assert_each_trace_whole_in_one_instance(self) -> None:
        assert (self.lost, self.split, self.duplicated_spans) == (0, 0, 0), str(self)
        assert (self.incomplete, self.unexpected) == (0, 0), str(self)


def tally(bridges: Sequence[Bridge], sent: dict[int, set[int]]) -> Tally:
    deliveries = [bridge.deliveries() for bridge in bridges]
    handed_over = Counter(trace.trace_id for traces in deliveries for trace in traces)
    spans = Counter(
        (trace.trace_id, span.span_id)
        for traces in deliveries
        for trace in traces
        for span in trace.spans
    )
    return Tally(
        per_instance=tuple(len(traces) for traces in deliveries),
        lost=sum(1 for t, ids in sent.items() if any((t, s) not in spans for s in ids)),
        split=sum(1 for count in handed_over.values() if count > 1),
        duplicated_spans=sum(1 for count in spans.values() if count > 1),
        incomplete=sum(
            1
            for traces in deliveries
            for trace in traces
            if trace.trace_id in sent and {s.span_id for s in trace.spans} != sent[trace.trace_id]
        ),
        unexpected=sum(1 for t in handed_over if t not in sent),
    )


def test_1000_traces_from_4_apps_each_whole_in_one_instance_across_a_kill(
    processes: Processes, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path, ["127.0.0.1"])
    bridges = [
        start_bridge(processes, tmp_path / f"bridge-{n}", pki=pki, sink=SINK) for n in range(3)
    ]
    gateway = start_collector(
        processes,
        [GATEWAY],
        tmp_path,
        env={
            "OTEL_BRIDGE_INSTANCES": "[" + ", ".join(b.grpc_endpoint for b in bridges) + "]",
            "OTEL_BRIDGE_TOKEN": TOKEN,
            "OTEL_BRIDGE_CA_FILE": str(pki.ca),
        },
        name="gateway",
    )
    assert_no_deprecation_warnings(gateway)
    apps, reports, resume = start_apps(processes, tmp_path, gateway, APPS, TRACES_PER_APP)
    victim = bridges[1]

    # Mid-run: the apps' first halves have started to arrive and their second halves wait.
    wait_for(lambda: len(victim.deliveries()) >= 10, "traces at the instance to kill")
    victim.kill()
    handed_over_before_kill = len(victim.deliveries())
    resume.touch()
    sent = acknowledged(apps, reports)
    assert len(sent) == APPS * TRACES_PER_APP
    wait_for(
        lambda: any(
            str(victim.grpc_port) in str(r.get("error", ""))
            for r in gateway.records()
            if str(r.get("msg", "")).startswith("Exporting failed. Will retry")
        ),
        "the gateway retrying the killed instance",
    )
    assert not every_trace_delivered(bridges, sent)  # the killed instance's share is pending

    victim.start()
    wait_for(lambda: every_trace_delivered(bridges, sent), "every trace after the restart")
    outcome = tally(bridges, sent)
    after_restart = outcome.per_instance[1] - handed_over_before_kill
    print(
        f"{len(sent)} traces ({sum(map(len, sent.values()))} spans) from {APPS} apps: {outcome}; "
        f"the killed instance handed over {handed_over_before_kill} before SIGKILL and "
        f"{after_restart} after its restart"
    )
    outcome.assert_each_trace_whole_in_one_instance()
    assert sum(outcome.per_instance) == len(sent)
    assert all(count > 0 for count in outcome.per_instance), outcome
    assert handed_over_before_kill > 0
    assert after_restart > 0
    assert_no_deprecation_warnings(gateway)


def _can_give_a_name_private_addresses() -> str:
    """Empty when `unshare --mount` can bind-mount a hosts file here, else why not."""
    try:
        result = subprocess.run(
            ["unshare", "--mount", "sh", "-c", "mount --bind /etc/hosts /etc/hosts"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        return "unshare is not installed"
    return "" if result.returncode == 0 else result.stderr.strip()


def test_the_dns_resolver_spreads_traces_over_the_addresses_of_one_name(
    processes: Processes, tmp_path: Path
) -> None:
    """`otel-bridge.test` resolves to 127.0.0.2-4 in the gateway's own mount namespace (its
    /etc/hosts is a bind-mounted copy, the machine's is untouched); one instance listens on
    each address, all on the same port, as pods behind a headless service do."""
    reason = _can_give_a_name_private_addresses()
    if reason:
        pytest.skip(f"needs a private mount namespace for /etc/hosts: {reason}")
    addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    port = _port_free_on_all(addresses)
    hosts = tmp_path / "hosts"
    hosts.write_text(
        Path("/etc/hosts").read_text(encoding="utf-8")
        + "".join(f"{address} otel-bridge.test\n" for address in addresses),
        encoding="utf-8",
    )
    pki = make_pki(tmp_path, addresses)
    bridges = [
        start_bridge(
            processes, tmp_path / f"bridge-{n}", host=address, grpc_port=port, pki=pki, sink=SINK
        )
        for n, address in enumerate(addresses)
    ]
    gateway = start_collector(
        processes,
        [
            GATEWAY,
            "yaml:exporters::load_balancing::resolver: "
            f'{{static: null, dns: {{hostname: otel-bridge.test, port: "{port}", interval: 1s}}}}',
        ],
        tmp_path,
        env={"OTEL_BRIDGE_TOKEN": TOKEN, "OTEL_BRIDGE_CA_FILE": str(pki.ca)},
        name="gateway",
        wrapper=[
            "unshare",
            "--mount",
            "sh",
            "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"',
            str(hosts),
        ],
    )
    assert_no_deprecation_warnings(gateway)
    apps, reports, resume = start_apps(processes, tmp_path, gateway, 2, 150)
    resume.touch()
    sent = acknowledged(apps, reports)
    wait_for(lambda: every_trace_delivered(bridges, sent), "every trace at the instances")
    outcome = tally(bridges, sent)
    print(f"dns resolver, {len(sent)} traces: {outcome}")
    outcome.assert_each_trace_whole_in_one_instance()
    assert all(count > 0 for count in outcome.per_instance), outcome


def _port_free_on_all(addresses: Sequence[str]) -> int:
    for _ in range(100):
        port = free_port(addresses[0])
        if all(_bindable(address, port) for address in addresses[1:]):
            return port
    raise AssertionError(f"no port free on all of {addresses}")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True
