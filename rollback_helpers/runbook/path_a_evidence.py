"""Path A's metrics evidence: what the plan weighs and what verify watches.

:class:`Evidence` is Path A's collaborator for the app's own traffic (issue 18):

* at the plan, the incident's signal (5xx ratio and p95 since the bad deploy against
  a baseline window before it) and the target's track record (its 5xx ratio while it
  was the running image, from its record's ``deployed_at`` to the next deploy), each a
  small table in the record. A target that was itself unhealthy stops the run before
  dispatch (:class:`~rollback_helpers.errors.UnhealthyTarget`), unless the operator
  overrides it with a reason (``override_unhealthy_target``), recorded as a decision;
* at verify, once every machine runs the target, a watch window read at a fixed rate
  with progress, and the verdict: recovered, not recovered (the run fails with the
  verification exit code), inconclusive or no evidence (the run falls back to the
  machine and health checks, and says so); then the chart of the incident.

Metrics that cannot be read never fail or hold up a rollback: each reading costs at
most the configured ``timeout`` and comes back as a reason, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollback_helpers.clients.metrics import MetricsClient, NoEvidence
from rollback_helpers.clock import parse_iso, utc_iso
from rollback_helpers.domain.deployments import DeploymentRecord
from rollback_helpers.domain.evidence import (
    IncidentSignal,
    RecoveryVerdict,
    TrackRecord,
    Unread,
    WindowSignal,
    bounds,
    evidence_rows,
    incident_signal,
    judge_track_record,
    recovery_verdict,
)
from rollback_helpers.domain.rollback_target import RollbackTarget
from rollback_helpers.errors import UnhealthyTarget, VerificationFailed
from rollback_helpers.run.context import RunContext
from rollback_helpers.run.metrics_evidence import WatchProgress, read_window, watch_recovery
from rollback_helpers.ui.decisions import Decision
from rollback_helpers.ui.display import METADATA_KEY, Report, ReportStatus, short
from rollback_helpers.ui.progress import Progress
from rollback_helpers.ui.table import Table

UNREADABLE = ("no_token", "auth", "http_error", "timeout", "unreachable", "bad_answer")
CHART_POINTS = 240  # at most this many points per line of the chart
LONG_INCIDENT = 3 * 3600.0  # a bad deploy longer before the rollback is marked at the chart's edge


@dataclass(frozen=True)
class NotAsked:
    """A window the metrics were not asked about, and why (an :class:`Unread`)."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"no metrics evidence ({self.reason}): {self.detail}"


class Evidence:
    """The metrics of one Path A run: read at the plan, watched at verify."""

    def __init__(self, ctx: RunContext, *, override: str = "") -> None:
        self.ctx = ctx
        self.settings = ctx.env.metrics
        self.override = override.strip()
        self._client: MetricsClient | None = None
        self.down: NoEvidence | None = None  # the endpoint failed once: not asked again
        self.bad_at: float | None = None  # the bad deploy's deployed_at
        self.signal: IncidentSignal | None = None
        self.track: TrackRecord | None = None
        self.overridden: Decision | None = None
        self.verdict: RecoveryVerdict | None = None
        self.moments: dict[str, float] = {}  # "dispatch", "all machines on target", …

    @property
    def client(self) -> MetricsClient:
        if self._client is None:
            self._client = self.ctx.backends.metrics(self.ctx.cfg, self.ctx.env.name)
        return self._client

    def _read(self, start: float, end: float) -> WindowSignal | Unread:
        if end <= start:
            return NotAsked("empty_window", f"the window {start:.0f}–{end:.0f} is empty.")
        if self.down is not None:  # a down or slow endpoint costs the run one timeout, once
            return self.down
        found = read_window(self.client, self.settings, self.ctx.env.app, start, end,
                            clock=self.ctx.backends.clock)
        if isinstance(found, NoEvidence) and found.reason in UNREADABLE:
            self.down = found
        return found

    # -- the plan --------------------------------------------------------------------------
    def incident(self, bad: DeploymentRecord | None) -> Report:
        """The incident's signal: since the ``bad`` deploy against the baseline before it."""
        now = self.ctx.backends.clock.now()
        self.bad_at = _when(bad.deployed_at) if bad is not None else None
        if self.bad_at is None:
            why = NotAsked("no_bad_deploy", "no record dates the bad deploy, so the incident "
                           "has no start to measure from.")
            self.signal = IncidentSignal(why, why)
        else:
            baseline = self._read(self.bad_at - self.settings.baseline_window, self.bad_at)
            self.signal = incident_signal(baseline, self._read(self.bad_at, now), self.settings)
        return self._signal_report()

    def plan(self, target: RollbackTarget) -> list[Report]:
        """The incident signal and the target's track record, as two small tables."""
        now = self.ctx.backends.clock.now()
        signal = self.incident(target.bad_record)
        self.track = judge_track_record(self._track_window(target, now), self.settings,
                                        image=short(target.image.digest))
        self.ctx.log(f"metrics: incident {self._signal_line()}; target {self.track.status}")
        return [signal, self._track_report()]

    def _track_window(self, target: RollbackTarget, now: float) -> WindowSignal | Unread:
        record = target.target
        start = _when(record.deployed_at) if record is not None else None
        if record is None or start is None:
            return NotAsked("no_record", "the target has no dated deployment record, so when "
                            "it ran is unknown.")
        later = [at for other in target.examined if isinstance(other, DeploymentRecord)
                 and (at := _when(other.deployed_at)) is not None and at > start]
        return self._read(start, min(later, default=now))

    def _signal_line(self) -> str:
        signal = self.signal
        if signal is None or not isinstance(signal.incident, WindowSignal):
            return "no evidence"
        return "degraded: " + "; ".join(map(str, signal.findings)) if signal.degraded else \
            "within the baseline's bounds"

    def _signal_report(self) -> Report:
        signal = self.signal
        assert signal is not None
        status: ReportStatus = "warning" if signal.degraded else "ok"
        report = Report("Metrics: the incident's signal", status=status, table=Table(
            evidence_rows({"baseline (before the bad deploy)": signal.baseline,
                           "since the bad deploy": signal.incident})))
        report.fact("signal", self._signal_line())
        if not isinstance(signal.incident, WindowSignal):
            report.status = "warning"
            report.note(f"{signal.incident} The rollback goes on; verify falls back to the "
                        "machine and health checks.")
        return report

    def _track_report(self) -> Report:
        track = self.track
        assert track is not None
        statuses: dict[str, ReportStatus] = {"healthy": "ok", "unknown": "warning"}
        status = statuses.get(track.status, "failed")
        report = Report("Metrics: the target's track record", status=status, table=Table(
            evidence_rows({"while the target ran": track.window})))
        report.fact("track record", track.status)
        report.note(track.reason)
        if track.status == "unhealthy" and self.override:
            report.status = "warning"
            report.note(f"Overridden by {self.ctx.operator}: {self.override}")
        return report

    def check_target(self, target: RollbackTarget) -> None:
        """Stop before dispatch if the target was unhealthy while it ran, unless overridden."""
        track = self.track
        if track is None or track.status != "unhealthy":
            return
        if self.override and self.overridden is not None:  # the plan cell run again
            return
        if self.override:
            self.overridden = self.ctx.decide(
                f"roll back to {target.image} although it was unhealthy while it ran "
                f"({track.reason.split(' while it ran')[0]})",
                f"override_unhealthy_target: {self.override}", "plan")
            self.ctx.show(self.overridden.report())  # into the record, with who and why
            return
        raise UnhealthyTarget(
            f"The rollback target {short(target.image.digest)} was itself unhealthy: "
            f"{track.reason}",
            "Pick another target with target_digest=…, or, if rolling back to it is still "
            "right, re-run with --override-unhealthy-target \"why\" (notebook parameter "
            "override_unhealthy_target): who and why are recorded.")

    # -- verify ------------------------------------------------------------------------------
    def watch(self, on_target_at: float) -> Report:
        """Watch the app from ``on_target_at`` and give the verdict; raise when not recovered."""
        self.moments["all machines on target"] = on_target_at
        signal = self.signal
        baseline: WindowSignal | Unread = signal.baseline if signal else NotAsked(
            "no_plan", "the plan read no baseline.")
        during: WindowSignal | Unread = signal.incident if signal else baseline
        progress = Progress("metrics watch", total=self.settings.watch_window,
                            every=self.settings.poll_interval, interactive=self.ctx.interactive)

        def shown(step: WatchProgress) -> None:
            reading = step.reading
            state = str(reading) if not isinstance(reading, WindowSignal) else \
                "; ".join(f"{k} {v}" for k, v in evidence_rows({"": reading})[0].items()
                          if k in ("requests", "5xx ratio", "p95"))
            progress.update(step.elapsed, state)
            self.ctx.lifecycle.keep_alive()  # a live run's lease outlasts the watch

        verdict = recovery_verdict(baseline, during, self.down, self.settings) \
            if self.down is not None else watch_recovery(
                self.client, self.settings, self.ctx.env.app, start=on_target_at,
                baseline=baseline, during=during, clock=self.ctx.backends.clock,
                on_progress=shown)
        self.verdict = verdict
        progress.close(verdict.outcome.replace("_", " "),
                       ok=verdict.outcome in ("recovered", "inconclusive", "no_evidence"))
        self.moments["verdict"] = self.ctx.backends.clock.now()
        self.ctx.log(f"metrics verdict: {verdict.outcome}: {verdict.reason}")
        return self.verdict_report()

    def judge_recent(self) -> Report:
        """The verdict over the last ``watch_window`` before now, without waiting (verify-flip,
        run by a human some minutes after the flip)."""
        now = self.ctx.backends.clock.now()
        signal = self.signal
        baseline: WindowSignal | Unread = signal.baseline if signal else NotAsked(
            "no_plan", "no baseline was read.")
        after = self._read(now - self.settings.watch_window, now)
        self.verdict = recovery_verdict(baseline, signal.incident if signal else baseline,
                                        after, self.settings)
        self.moments["verdict"] = now
        self.ctx.log(f"metrics verdict: {self.verdict.outcome}: {self.verdict.reason}")
        return self.verdict_report()

    def verdict_report(self) -> Report:
        verdict = self.verdict
        assert verdict is not None
        statuses: dict[str, ReportStatus] = {"recovered": "ok", "not_recovered": "failed"}
        status = statuses.get(verdict.outcome, "warning")
        report = Report(f"Metrics verdict: {verdict.outcome.replace('_', ' ')}", status=status,
                        table=Table(evidence_rows({"before": verdict.baseline,
                                                   "during": verdict.during,
                                                   "after": verdict.after})))
        report.note(verdict.reason)
        report.metadata = {METADATA_KEY: {"metrics": {"outcome": verdict.outcome,
                                                      "summary": self.summary()}}}
        if verdict.outcome == "inconclusive":
            report.note("Inconclusive is not recovery: the machine and health checks passed, "
                        "the metrics cannot confirm that users stopped getting errors.")
        return report

    def after_rollout(self, on_target_at: float) -> str:
        """Every machine runs the target and health passed: watch, show the verdict and the
        chart, put the verdict on the run comment, and fail if the incident did not end. The
        verdict's one line, for the verification table."""
        self.ctx.show(self.watch(on_target_at))
        self.ctx.show(self.chart())
        recovered = self.verdict is None or self.verdict.outcome != "not_recovered"
        self.ctx.lifecycle.update_record(state="verified" if recovered else None,
                                         metrics=self.summary())
        self.raise_if_not_recovered()
        return self.summary()

    def raise_if_not_recovered(self) -> None:
        verdict = self.verdict
        if verdict is None or verdict.outcome != "not_recovered":
            return
        app = self.ctx.env.app
        raise VerificationFailed(
            f"Every machine of {app} runs the target and its health check passes, but the "
            f"incident did not end: {'; '.join(verdict.bad_signals)}.",
            f"Look at `flyctl logs -a {app}` and the app's dashboards; if the target is broken "
            "too, pick an older one with target_digest=…, or escalate (Path B if the data is "
            "damaged).")

    def summary(self) -> str:
        """One line for the run comment and the notifications: the verdict and its numbers."""
        verdict = self.verdict
        if verdict is None:
            return ""
        if verdict.outcome == "no_evidence":
            return f"no evidence: {verdict.after}"
        rows = evidence_rows({"before": verdict.baseline, "during": verdict.during,
                              "after": verdict.after})
        numbers = " · ".join(f"{row['window']} {row['5xx ratio']} 5xx, p95 {row['p95']}"
                             for row in rows)
        return f"{verdict.outcome.replace('_', ' ')} ({numbers})"

    # -- the chart ---------------------------------------------------------------------------
    def chart(self) -> Any:
        """The incident's chart as an image for the notebook, or a report saying why not."""
        from rollback_helpers.run.metrics_evidence import Timeline, read_timeline
        from rollback_helpers.ui.chart import Marker, chart_image, incident_chart

        if self.down is not None:
            return Report("Metrics chart: none", status="warning").note(str(self.down))
        clock = self.ctx.backends.clock
        end = clock.now()
        first = min(self.moments.values(), default=end - self.settings.watch_window)
        start = (self.bad_at or first) - self.settings.baseline_window
        long_ago = self.bad_at is not None and first - self.bad_at > LONG_INCIDENT
        if long_ago:  # the rollback's moments would be one line: show the hour before them
            start = first - LONG_INCIDENT / 3
        step = max(60.0, round((end - start) / CHART_POINTS))
        timeline = read_timeline(self.client, self.settings, self.ctx.env.app, start, end,
                                 clock=clock, step=step)
        if not isinstance(timeline, Timeline):
            return Report("Metrics chart: none", status="warning").note(str(timeline))
        markers = [] if self.bad_at is None else [Marker(start, "bad deploy: " + utc_iso(
            self.bad_at)[:16].replace("T", " ") + " UTC")] if long_ago else [Marker(self.bad_at,
                                                                                   "bad deploy")]
        markers += [Marker(at, name) for name, at in self.moments.items() if name != "verdict"]
        if self.verdict is not None and "verdict" in self.moments:
            markers.append(Marker(self.moments["verdict"],
                                  f"verdict: {self.verdict.outcome.replace('_', ' ')}"))
        limits = bounds(self.signal.baseline if self.signal and isinstance(
            self.signal.baseline, WindowSignal) else None, self.settings)
        png = incident_chart(timeline.error_ratio, timeline.p95, markers,
                             title=f"{self.ctx.env.app}: the incident and the rollback",
                             bounds=(limits.error_ratio, limits.p95))
        return chart_image(png)


def _when(text: str) -> float | None:
    try:
        return parse_iso(text) if text else None
    except ValueError:
        return None
