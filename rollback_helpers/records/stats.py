"""From records to answers: change-failure rate and recovery time, per environment.

Two sources, read once each: the deployment-record issues (every deploy, its
``deployed_at``, the ``rolled-back`` label) and the records store (every archived
run, read a page at a time and reduced at once to a :class:`RunFacts`, so a store
of 10,000 records never sits in memory as notebooks).

An **incident** is a bad deploy that live runs tried to roll back: the live
``path-a``/``path-b`` runs (and ``verify-flip``) outside ``drills/`` that name the
same deployment-record issue on the same environment. Its moments come from the
runs' own timelines (the run's clock), in this order:

    deployed  the bad deploy's ``deployed_at`` (its deployment record)
    started   the first run's first timeline event
    dispatched  ``dispatched <workflow>`` (Path A) or ``restore requested`` (Path B)
    on_target  ``verify: 0 machine(s) off target`` (Path A) or the restored cluster ready
    recovered  the metrics verdict's ``recovered_at`` fact where a record has one, else
               the verification: Path A's verify in a successful run, Path B's
               ``flip verified`` (verify-flip)

Recovery time is ``recovered − deployed``. Percentiles are nearest-rank: p of n
values is the ⌈p/100 · n⌉-th smallest. A drill (``drills/`` or the sandbox) is
counted apart and never as an incident; a dry run is counted nowhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rollback_helpers.domain.deployments import DeploymentRecord, Record
from rollback_helpers.records.archive import DRILLS, record_metadata
from rollback_helpers.records.store import FsspecStore, RecordStore

PAGE = 200  # records read (and dropped) at a time
ROLLBACK_PATHS = ("path-a", "path-b")
WAITS = ("approval", "workflow", "restore")


@dataclass(frozen=True)
class Deploy:
    """One deployment record, as far as stats need it."""

    number: int
    env: str
    deployed_at: datetime | None
    rolled_back: bool = False


@dataclass(frozen=True)
class RunFacts:
    """One archived run, reduced to what stats and the postmortem's summary need."""

    location: str
    env: str
    path: str
    live: bool
    drill: bool
    outcome: str
    record_issue: int | None
    started: datetime | None
    moments: dict[str, datetime] = field(default_factory=dict)  # dispatched, on_target, …
    waits: dict[str, float] = field(default_factory=dict)       # approval, workflow, restore


@dataclass
class Incident:
    env: str
    record_issue: int
    deployed: datetime | None = None
    paths: set[str] = field(default_factory=set)
    runs: list[str] = field(default_factory=list)
    moments: dict[str, datetime] = field(default_factory=dict)
    waits: dict[str, float] = field(default_factory=dict)

    @property
    def recovery_seconds(self) -> float | None:
        recovered = self.moments.get("recovered")
        if self.deployed is None or recovered is None:
            return None
        return (recovered - self.deployed).total_seconds()


@dataclass(frozen=True)
class Period:
    since: datetime | None = None
    until: datetime | None = None

    def holds(self, when: datetime | None) -> bool:
        if when is None:
            return self.since is None and self.until is None
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until)


def parse_time(text: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset) as an aware datetime; None if it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else None


def deploys_of(records: Iterable[Record]) -> list[Deploy]:
    """The deployment records that parsed (a bad one is no deploy we can date)."""
    return [Deploy(r.number, r.env, parse_time(r.deployed_at) or parse_time(r.created_at),
                   r.rolled_back) for r in records if isinstance(r, DeploymentRecord)]


# -- one record → RunFacts --------------------------------------------------------------------
_MOMENTS = (  # (moment, how its timeline event starts, which paths)
    ("dispatched", "dispatched ", "path-a"), ("dispatched", "restore requested", "path-b"),
    ("workflow_done", "workflow run ", "path-a"), ("on_target", "cluster ", "path-b"),
    ("on_target", "verify: 0 machine(s) off target", "path-a"),
    ("flip_verified", "flip verified", "verify-flip"),
    ("approval_asked", "waiting for approval", "*"))


def run_facts(location: str, block: dict[str, Any], *, drill: bool) -> RunFacts:
    """What a record's ``rollback_runbook`` block says, read once."""
    path = str(block.get("path", ""))
    events = [(parse_time(e.get("at")), str(e.get("event", "")))
              for e in block.get("timeline", []) if isinstance(e, dict)]
    moments: dict[str, datetime] = {}
    for at, event in events:
        for name, prefix, paths in _MOMENTS:
            if at is not None and event.startswith(prefix) and paths in ("*", path) \
                    and (name != "on_target" or path != "path-b" or " ready " in event):
                moments.setdefault(name, at)
    approvals = [parse_time(d.get("at")) for d in block.get("decisions", [])
                 if isinstance(d, dict) and d.get("step") == "approval"]
    if approvals and approvals[-1] is not None:
        moments["approved"] = approvals[-1]
    facts = block.get("facts") if isinstance(block.get("facts"), dict) else {}
    success = block.get("outcome") == "success"
    verified = moments.get("on_target") if path == "path-a" else moments.get("flip_verified")
    recovered = parse_time(facts.get("recovered_at")) if facts else None
    if recovered or (success and verified):
        moments["recovered"] = recovered or verified  # type: ignore[assignment]
    issue = block.get("record_issue")
    started = events[0][0] if events and events[0][0] else parse_time(block.get("started_at"))
    return RunFacts(location=location, env=str(block.get("env", "")), path=path,
                    live=block.get("dry_run", True) is False,
                    drill=drill or block.get("backend") == "sandbox",
                    outcome=str(block.get("outcome", "")),
                    record_issue=issue if isinstance(issue, int) and not isinstance(issue, bool)
                    else None, started=started, moments=moments, waits=_waits(moments, path))


def _waits(moments: dict[str, datetime], path: str) -> dict[str, float]:
    pairs = {"approval": ("approval_asked", "approved"),
             "workflow": ("dispatched", "workflow_done") if path == "path-a" else None,
             "restore": ("dispatched", "on_target") if path == "path-b" else None}
    waits = {}
    for name, pair in pairs.items():
        if pair is not None and pair[0] in moments and pair[1] in moments:
            waits[name] = max((moments[pair[1]] - moments[pair[0]]).total_seconds(), 0.0)
    return waits


def read_runs(store: RecordStore, *, drills: bool = True, page: int = PAGE) -> Iterator[RunFacts]:
    """Every record of ``store`` (and ``drills/``), a page at a time, as :class:`RunFacts`."""
    folders = [(store, False)] + ([(store.child(DRILLS), True)] if drills else [])
    for folder, drill in folders:
        names = [r.name for r in folder.list_records()]
        for first in range(0, len(names), page):
            chunk = names[first:first + page]
            blobs = folder.read_many(chunk) if isinstance(folder, FsspecStore) else {
                name: folder.read(name) for name in chunk}
            for name in chunk:
                if name in blobs:
                    yield run_facts(folder.location_of(name), record_metadata(blobs[name]),
                                    drill=drill)


# -- runs → incidents → figures ------------------------------------------------------------------
def incidents_of(runs: Iterable[RunFacts], deploys: dict[tuple[str, int], Deploy]
                 ) -> tuple[list[Incident], list[RunFacts], list[RunFacts]]:
    """(incidents, drills, live runs naming no deployment record)."""
    incidents: dict[tuple[str, int], Incident] = {}
    drills: list[RunFacts] = []
    unattributed: list[RunFacts] = []
    for run in runs:
        if not run.live:
            continue
        if run.drill:
            drills.append(run)
            continue
        if run.record_issue is None:
            unattributed.append(run)
            continue
        key = (run.env, run.record_issue)
        incident = incidents.get(key)
        if incident is None:
            if run.path not in ROLLBACK_PATHS:
                unattributed.append(run)  # a verify-flip with no rollback before it
                continue
            deploy = deploys.get(key)
            incident = incidents[key] = Incident(run.env, run.record_issue,
                                                 deploy.deployed_at if deploy else None)
        _join(incident, run)
    return sorted(incidents.values(), key=_order), drills, unattributed


def _join(incident: Incident, run: RunFacts) -> None:
    if run.path in ROLLBACK_PATHS:
        incident.paths.add(run.path)
    incident.runs.append(run.location)
    moments = dict(run.moments)
    if run.started is not None:
        moments["started"] = run.started
    for name, at in moments.items():
        earliest = incident.moments.get(name)
        incident.moments[name] = at if earliest is None or at < earliest else earliest
    for name, seconds in run.waits.items():
        incident.waits[name] = incident.waits.get(name, 0.0) + seconds


def _order(incident: Incident) -> tuple[str, int]:
    started = incident.moments.get("started")
    return (started.isoformat() if started else "", incident.record_issue)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest rank: the ⌈p/100 · n⌉-th smallest of ``values`` (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


# -- the figures ----------------------------------------------------------------------------------
def _spread(values: Sequence[float]) -> dict[str, float | int | None]:
    return {"count": len(values), "sum": sum(values), "p50": percentile(values, 50),
            "p90": percentile(values, 90), "max": max(values) if values else None}


def _period_of(incident: Incident) -> datetime | None:
    return incident.deployed or incident.moments.get("started")


def environment_stats(env: str, deploys: Sequence[Deploy], incidents: Sequence[Incident],
                      period: Period) -> dict[str, Any]:
    """One environment's figures over ``period`` (deploys by ``deployed_at``, incidents by
    their bad deploy's, else by when the rollback started)."""
    mine = [d for d in deploys if d.env == env and period.holds(d.deployed_at)]
    kept = [i for i in incidents if i.env == env and period.holds(_period_of(i))]
    failed = {d.number for d in mine if d.rolled_back} | {
        i.record_issue for i in kept if any(d.number == i.record_issue for d in mine)}
    recovered = [i for i in kept if "recovered" in i.moments]
    times = [t for i in recovered if (t := i.recovery_seconds) is not None]
    return {
        "env": env, "deploys": len(mine), "failed_deploys": len(failed),
        "change_failure_rate": round(len(failed) / len(mine), 4) if mine else None,
        "rollbacks": len(kept), "path_a": sum("path-a" in i.paths for i in kept),
        "path_b": sum("path-b" in i.paths for i in kept), "recovered": len(recovered),
        "not_recovered": len(kept) - len(recovered),
        "recovery_seconds": _spread(times),
        "waiting_seconds": {name: round(sum(i.waits.get(name, 0.0) for i in kept), 3)
                            for name in WAITS},
        "incidents": [incident_row(i) for i in kept]}


def incident_row(incident: Incident) -> dict[str, Any]:
    moments = incident.moments

    def at(name: str) -> str | None:
        return moments[name].isoformat().replace("+00:00", "Z") if name in moments else None

    return {"env": incident.env, "record_issue": incident.record_issue,
            "paths": sorted(incident.paths),
            "deployed_at": incident.deployed.isoformat().replace("+00:00", "Z")
            if incident.deployed else None,
            "started_at": at("started"), "dispatched_at": at("dispatched"),
            "on_target_at": at("on_target"), "recovered_at": at("recovered"),
            "recovery_seconds": incident.recovery_seconds,
            "waiting_seconds": {k: round(v, 3) for k, v in sorted(incident.waits.items())},
            "records": list(incident.runs)}


def drill_stats(drills: Sequence[RunFacts], period: Period) -> dict[str, Any]:
    """Drills apart: how many, of which path, how many ended well, how long they took."""
    kept = [d for d in drills if period.holds(d.started)]
    took = [(d.moments["recovered"] - d.started).total_seconds() for d in kept
            if d.started is not None and "recovered" in d.moments]
    return {"drills": len(kept), "path_a": sum(d.path == "path-a" for d in kept),
            "path_b": sum(d.path == "path-b" for d in kept),
            "verify_flip": sum(d.path == "verify-flip" for d in kept),
            "succeeded": sum(d.outcome == "success" for d in kept),
            "failed": sum(d.outcome != "success" for d in kept),
            "seconds_to_verified": _spread(took)}


def compute(deploys: Sequence[Deploy], runs: Iterable[RunFacts], *, envs: Sequence[str],
            period: Period) -> dict[str, Any]:
    """The whole answer: per environment, the drills apart, and what could not be placed."""
    by_key = {(d.env, d.number): d for d in deploys}
    read: list[int] = [0]

    def counted() -> Iterator[RunFacts]:
        for run in runs:
            read[0] += 1
            yield run

    incidents, drills, unattributed = incidents_of(counted(), by_key)
    return {
        "records_read": read[0],
        "since": period.since.isoformat() if period.since else None,
        "until": period.until.isoformat() if period.until else None,
        "environments": [environment_stats(env, deploys, incidents, period) for env in envs],
        "drills": drill_stats([d for d in drills if not envs or d.env in envs], period),
        "unattributed_runs": [r.location for r in unattributed
                              if r.env in envs and period.holds(r.started)]}
