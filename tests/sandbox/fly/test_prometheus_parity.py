"""The runbook's queries give the same verdicts on a real Prometheus as on the sandbox's
emulation: the same raw series are backfilled into Debian's prometheus with promtool, and
every traffic profile is read through the same client from both."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import httpx
import pytest
from incident_traffic import SETTINGS, Incident, decisions
from prometheus_server import backfill, ensure_prometheus, running_prometheus

from rollback_helpers.clients.metrics import MetricsClient, NoEvidence
from rollback_helpers.clock import VirtualClock
from rollback_helpers.domain.evidence import WindowSignal

# The profiles whose series differ; the endpoint profiles are about the endpoint, not the data.
PROFILES = ("healthy", "target-already-bad", "flapping", "partial-recovery", "slow", "no-traffic")
# Three hours ago, on the scrape grid: inside the server's retention, wholly in the past.
INCIDENT = Incident(math.floor(time.time() / 900) * 900 - 3 * 3600)


def app(profile: str) -> str:
    return f"app-{profile}"


@pytest.fixture(scope="module")
def real_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsClient]:
    """One prometheus for the module, serving every profile's series (one app each)."""
    ensure_prometheus()
    directory = tmp_path_factory.mktemp("prometheus")
    text = "".join(INCIDENT.model(profile, app(profile)).openmetrics().removesuffix("# EOF\n")
                   for profile in PROFILES) + "# EOF\n"
    data = backfill(_one_family_per_name(text), directory)
    with running_prometheus(data, directory) as url, httpx.Client() as http:
        yield MetricsClient(http, url, None, budget=30.0)


def _one_family_per_name(text: str) -> str:
    """OpenMetrics wants each family once: gather the apps' samples under one TYPE line."""
    families: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            families.setdefault(name, [])
        elif line and not line.startswith("#"):
            families[name].append(line)
    out = [f"# TYPE {n} unknown\n" + "".join(f"{s}\n" for s in lines)
           for n, lines in families.items()]
    return "".join(out) + "# EOF\n"


def _numbers(window: WindowSignal | NoEvidence) -> tuple[float, ...]:
    assert isinstance(window, WindowSignal), window
    return (window.requests, window.errors, window.p95 or 0.0)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_same_verdicts_on_a_real_prometheus(real_prometheus: MetricsClient,
                                                profile: str) -> None:
    clock = VirtualClock(INCIDENT.end)
    emulated = INCIDENT.windows(INCIDENT.emulated(INCIDENT.model(profile, app(profile)), clock),
                                app(profile), clock)
    real = INCIDENT.windows(real_prometheus, app(profile), clock)
    for name in emulated:
        assert _numbers(real[name]) == pytest.approx(_numbers(emulated[name]), rel=0.02), name
    (track_e, signal_e, verdict_e), (track_r, signal_r, verdict_r) = \
        decisions(emulated), decisions(real)
    assert track_r.status == track_e.status
    assert [str(f) for f in signal_r.findings] == [str(f) for f in signal_e.findings]
    assert verdict_r.outcome == verdict_e.outcome
    assert verdict_r.bad_signals == verdict_e.bad_signals


def test_the_real_server_answers_an_unknown_app_with_no_series(real_prometheus: MetricsClient
                                                               ) -> None:
    answer = real_prometheus.query(SETTINGS.requests_query.replace("$app", "nobody")
                                   .replace("$window", "300s"), INCIDENT.end)
    assert isinstance(answer, NoEvidence) and answer.reason == "no_series"
