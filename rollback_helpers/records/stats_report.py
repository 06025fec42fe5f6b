"""The stats in four forms: a terminal table, JSON, an HTML page with a chart, OpenMetrics.

JSON keys are snake_case and numbers stay numbers (seconds, a rate between 0 and 1).
The OpenMetrics text is for node_exporter's textfile collector or a Pushgateway: one
family per figure, labelled by ``env`` (and ``wait`` for the waiting time), ending in
``# EOF``.
"""

from __future__ import annotations

import base64
import html
import json
import textwrap
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rollback_helpers.ui.stats_chart import recovery_chart

PREFIX = "rollback_runbook"


def as_json(stats: dict[str, Any]) -> str:
    return json.dumps(stats, indent=2, ensure_ascii=False)


def duration(seconds: float | None) -> str:
    """``—``, ``45s``, ``12m05s`` or ``3h02m``: short enough for a narrow terminal."""
    if seconds is None:
        return "—"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _rate(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def summary_rows(stats: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per environment: the figures a reader asks for first."""
    rows: list[tuple[str, ...]] = []
    for env in stats["environments"]:
        spread, waits = env["recovery_seconds"], env["waiting_seconds"]
        rows.append((env["env"], str(env["deploys"]), str(env["failed_deploys"]),
                     _rate(env["change_failure_rate"]), str(env["rollbacks"]),
                     f"{env['path_a']}/{env['path_b']}", str(env["recovered"]),
                     duration(spread["p50"]), duration(spread["p90"]), duration(spread["max"]),
                     duration(waits["approval"]), duration(waits["workflow"]),
                     duration(waits["restore"])))
    return rows


HEADERS = ("env", "deploys", "failed", "CFR", "rollbacks", "A/B", "recovered", "p50", "p90",
           "max", "wait:approval", "wait:workflow", "wait:restore")
NARROW = ("env", "deploys", "CFR", "rollbacks", "p50", "p90", "max")


def as_table(stats: dict[str, Any], width: int = 100) -> str:
    """Aligned text no wider than ``width``: the narrow columns alone when it would be wider."""
    rows = summary_rows(stats)
    headers: Sequence[str] = HEADERS
    if _width(HEADERS, rows) > width:
        keep = [HEADERS.index(name) for name in NARROW]
        headers, rows = NARROW, [tuple(row[i] for i in keep) for row in rows]
    lines = [_line(headers, rows, headers)] + [_line(row, rows, headers) for row in rows]
    drills = stats["drills"]
    lines.append("")
    lines.append(f"drills (apart, never incidents): {drills['drills']} "
                 f"(Path A {drills['path_a']}, Path B {drills['path_b']}, verify-flip "
                 f"{drills['verify_flip']}; {drills['succeeded']} succeeded), p50 to verified "
                 f"{duration(drills['seconds_to_verified']['p50'])}")
    if not stats["records_read"]:
        lines.append("no records in the store: check --incidents-dir (or incidents_dir)")
    if stats["unattributed_runs"]:
        lines.append(f"live runs naming no deployment record (not counted): "
                     f"{len(stats['unattributed_runs'])}")
    return "\n".join(wrapped for line in lines
                     for wrapped in (textwrap.wrap(line, width, subsequent_indent="  ")
                                     if line.startswith(("drills", "live", "no records")) else [line]))


def _width(headers: Sequence[str], rows: list[tuple[str, ...]]) -> int:
    return sum(max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(headers))


def _line(cells: Sequence[str], rows: list[tuple[str, ...]], headers: Sequence[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                     for i, (cell, w) in enumerate(zip(cells, widths, strict=True)))


# -- OpenMetrics ------------------------------------------------------------------------------------
def _family(lines: list[str], name: str, kind: str, help_text: str,
            samples: list[tuple[str, dict[str, str], float]]) -> None:
    lines += [f"# TYPE {PREFIX}_{name} {kind}", f"# HELP {PREFIX}_{name} {help_text}"]
    for suffix, labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{PREFIX}_{name}{suffix}{{{label_text}}} {_number(value)}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def as_openmetrics(stats: dict[str, Any]) -> str:
    """The figures as OpenMetrics text (gauges: a period's figures are recomputed each time)."""
    lines: list[str] = []
    envs = stats["environments"]
    counts = [("deploys", "deployment records in the period"),
              ("failed_deploys", "deploys rolled back or labelled rolled-back"),
              ("rollbacks", "incidents: bad deploys that live runs rolled back"),
              ("recovered", "incidents recovered")]
    for key, help_text in counts:
        _family(lines, key, "gauge", help_text, [("", {"env": e["env"]}, e[key]) for e in envs])
    _family(lines, "rollbacks_by_path", "gauge", "incidents by the path that ran",
            [("", {"env": e["env"], "path": p}, e[k]) for e in envs
             for p, k in (("path-a", "path_a"), ("path-b", "path_b"))])
    _family(lines, "change_failure_rate_ratio", "gauge", "failed deploys over deploys",
            [("", {"env": e["env"]}, e["change_failure_rate"]) for e in envs
             if e["change_failure_rate"] is not None])
    _family(lines, "recovery_time_seconds", "summary",
            "recovery time per incident, bad deploy to recovered (nearest-rank quantiles)",
            [sample for e in envs for sample in _summary(e["env"], e["recovery_seconds"])])
    _family(lines, "waiting_seconds", "gauge", "time the incidents waited, by what they waited on",
            [("", {"env": e["env"], "wait": w}, s) for e in envs
             for w, s in e["waiting_seconds"].items()])
    _family(lines, "drills", "gauge", "drills in the period (never counted as incidents)",
            [("", {"outcome": o}, stats["drills"][o]) for o in ("succeeded", "failed")])
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _summary(env: str, spread: dict[str, Any]) -> list[tuple[str, dict[str, str], float]]:
    samples = [("", {"env": env, "quantile": q}, spread[k])
               for q, k in (("0.5", "p50"), ("0.9", "p90"), ("1.0", "max"))
               if spread[k] is not None]
    return samples + [("_sum", {"env": env}, spread["sum"]),
                      ("_count", {"env": env}, spread["count"])]


# -- HTML -------------------------------------------------------------------------------------------
def chart_series(stats: dict[str, Any]) -> dict[str, list[tuple[datetime, float]]]:
    series: dict[str, list[tuple[datetime, float]]] = {}
    for env in stats["environments"]:
        points = series.setdefault(env["env"], [])
        for incident in env["incidents"]:
            seconds, when = incident["recovery_seconds"], incident["deployed_at"]
            if seconds is not None and when:
                points.append((datetime.fromisoformat(when.replace("Z", "+00:00")),
                               seconds / 60))
    return series


def as_html(stats: dict[str, Any], title: str) -> str:
    """A self-contained page: the summary table, the chart (an embedded PNG), each incident."""
    png = base64.b64encode(recovery_chart(chart_series(stats), title="Recovery time")).decode()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in summary_rows(stats))
    incidents = "".join(_incident_row(i) for e in stats["environments"] for i in e["incidents"])
    period = f"{stats['since'] or 'the first record'} → {stats['until'] or 'now'}"
    drills = stats["drills"]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='period'>{html.escape(period)}</p>"
            f"<table class='stats'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<p>Drills, apart and never counted as incidents: {drills['drills']} "
            f"({drills['succeeded']} succeeded).</p>"
            f"<img alt='recovery time over time' src='data:image/png;base64,{png}'>"
            f"<h2>Incidents</h2><table class='stats'><thead><tr>{INCIDENT_HEAD}</tr></thead>"
            f"<tbody>{incidents}</tbody></table></body></html>")


INCIDENT_COLUMNS = ("env", "record_issue", "paths", "deployed_at", "started_at",
                    "dispatched_at", "on_target_at", "recovered_at", "recovery")
INCIDENT_HEAD = "".join(f"<th>{c}</th>" for c in INCIDENT_COLUMNS)


def _incident_row(incident: dict[str, Any]) -> str:
    cells = [incident["env"], f"#{incident['record_issue']}", ", ".join(incident["paths"])]
    cells += [incident[k] or "—" for k in INCIDENT_COLUMNS[3:8]]
    cells.append(duration(incident["recovery_seconds"]))
    return "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"


STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
         "table.stats{border-collapse:collapse;margin:1em 0}table.stats td,table.stats th"
         "{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right;font-size:13px;"
         "white-space:nowrap}"
         "table.stats td:first-child,table.stats th:first-child{text-align:left}"
         "img{max-width:100%;border:1px solid #eee}.period{color:#555}")
