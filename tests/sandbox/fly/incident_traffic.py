"""One incident's timeline, as the metrics tests replay it on each traffic profile.

The target ran for an hour, the bad image for ten minutes, then the rollback put
the target back; the model runs fifteen minutes past the rollback. Deploy times sit
7 s off the 15 s scrape grid, so no window edge falls on a sample.
"""

from __future__ import annotations

import httpx

from rollback_helpers.clients.metrics import MetricsClient, NoEvidence
from rollback_helpers.clock import VirtualClock
from rollback_helpers.domain.evidence import (
    IncidentSignal,
    RecoveryVerdict,
    TrackRecord,
    WindowSignal,
    incident_signal,
    judge_track_record,
    recovery_verdict,
)
from rollback_helpers.domain.metrics_settings import MetricsSettings
from rollback_helpers.run.metrics_evidence import read_window
from rollback_helpers.sandbox.fly.metrics import prometheus_handler
from rollback_helpers.sandbox.fly.traffic import Deploy, TrafficModel, scenario_profile
from rollback_helpers.secrets import Secret

TARGET, BAD = "registry.fly.io/app@sha256:" + "a" * 64, "registry.fly.io/app@sha256:" + "b" * 64
SETTINGS = MetricsSettings()
TOKEN = Secret("fm2_sandboxmetrics0123456789")


class Incident:
    def __init__(self, t0: float) -> None:
        self.t0 = t0 + 7.0
        self.bad_at = self.t0 + 3600
        self.rollback_at = self.bad_at + 600
        self.end = self.rollback_at + 900
        self.timeline = [Deploy(TARGET, self.t0), Deploy(BAD, self.bad_at),
                         Deploy(TARGET, self.rollback_at)]

    def model(self, profile: str, app: str = "app") -> TrafficModel:
        return TrafficModel(app, self.timeline, scenario_profile(profile, target=TARGET, bad=BAD),
                            self.end)

    def emulated(self, model: TrafficModel, clock: VirtualClock) -> MetricsClient:
        transport = httpx.MockTransport(prometheus_handler(model, wait=clock.advance))
        return MetricsClient(httpx.Client(transport=transport), "https://api.fly.io/prometheus/o/",
                             TOKEN, budget=SETTINGS.timeout)

    def windows(self, client: MetricsClient, app: str, clock: VirtualClock
                ) -> dict[str, WindowSignal | NoEvidence]:
        spans = {"track": (self.t0, self.bad_at),
                 "baseline": (self.bad_at - SETTINGS.baseline_window, self.bad_at),
                 "incident": (self.bad_at, self.rollback_at),
                 "after": (self.rollback_at + 60, self.rollback_at + 60 + SETTINGS.watch_window)}
        return {name: read_window(client, SETTINGS, app, start, end, clock=clock)
                for name, (start, end) in spans.items()}


def decisions(windows: dict[str, WindowSignal | NoEvidence]
              ) -> tuple[TrackRecord, IncidentSignal, RecoveryVerdict]:
    return (judge_track_record(windows["track"], SETTINGS),
            incident_signal(windows["baseline"], windows["incident"], SETTINGS),
            recovery_verdict(windows["baseline"], windows["incident"], windows["after"], SETTINGS))
