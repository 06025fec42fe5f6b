"""Every archived run in a records store, newest first, from the records' own metadata.

One row per record: when, env, path, operator, mode, outcome and exit code,
duration, what changed (from → to image, or the restored cluster), workflow run,
record issue, and whether the record's SHA-256 verifies against its issue.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from rollback_helpers.errors import RecordHashMissing, RecordTampered, RollbackError
from rollback_helpers.records.archive import DRILLS, record_metadata
from rollback_helpers.records.store import FsspecStore, RecordStore

COLUMNS = ["when", "env", "path", "operator", "mode", "outcome", "exit", "duration", "change",
           "workflow run", "issue", "verified", "record"]
Verifier = Callable[[str, bytes], str]  # (location, bytes) → "yes" / "NO: …" / "not checked…"


@dataclass(frozen=True)
class Filters:
    env: str = ""
    since: datetime | None = None
    drills: bool = False


def folders(store: RecordStore, *, drills: bool) -> list[RecordStore]:
    """The store (and, with ``drills``, its ``drills/`` folder)."""
    return [store, store.child(DRILLS)] if drills else [store]


def read_all(stores: list[RecordStore]) -> dict[str, bytes]:
    """location → bytes of every record in ``stores``; an object store reads concurrently."""
    data: dict[str, bytes] = {}
    for store in stores:
        records = store.list_records()
        if isinstance(store, FsspecStore):
            got = store.read_many([r.name for r in records])
            data.update({r.location: got[r.name] for r in records if r.name in got})
        else:
            data.update({r.location: store.read(r.name) for r in records})
    return data


def row_for(location: str, block: dict[str, Any]) -> dict[str, Any]:
    """One history row from a record's ``rollback_runbook`` block."""
    params = _dict(block.get("parameters"))
    facts = _dict(block.get("facts"))
    mode = ("dry run" if block.get("dry_run", True) else "live") + ", " + str(
        block.get("mode", "headless"))
    change = ""
    if facts.get("from_image") or facts.get("to_image"):
        change = f"{facts.get('from_image', '?')} → {facts.get('to_image', '?')}"
    elif facts.get("new_cluster"):
        change = f"restored into {facts['new_cluster']}"
    operator = str(params.get("operator") or "") or next(
        (str(d.get("who")) for d in block.get("decisions", []) if d.get("who")), "")
    return {"when": str(block.get("started_at", "")), "env": str(block.get("env", "")),
            "path": str(block.get("path", "")), "operator": operator, "mode": mode,
            "outcome": str(block.get("outcome", "")), "exit": block.get("exit_code"),
            "duration": _duration(block.get("seconds")), "change": change,
            "workflow run": str(facts.get("workflow_run", "")),
            "issue": block.get("record_issue") or "", "verified": "not checked",
            "record": location}


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ""
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def history_rows(store: RecordStore, filters: Filters,
                 verify: Verifier | None = None) -> list[dict[str, Any]]:
    """The rows, newest first, filtered by env and start time."""
    data = read_all(folders(store, drills=filters.drills))
    rows = []
    for location, blob in data.items():
        row = row_for(location, record_metadata(blob))
        if _kept(row, filters):
            if verify is not None:
                row["verified"] = verify(location, blob)
            rows.append(row)
    rows.sort(key=lambda r: (r["when"], r["record"]), reverse=True)
    return rows


def _kept(row: dict[str, Any], filters: Filters) -> bool:
    if filters.env and row["env"] != filters.env:
        return False
    if filters.since is not None:
        try:
            started = datetime.fromisoformat(str(row["when"]).replace("Z", "+00:00"))
        except ValueError:
            return False
        since = filters.since if filters.since.tzinfo else filters.since.replace(
            tzinfo=started.tzinfo)
        return started >= since
    return True


def history_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=COLUMNS)


def as_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "No archived runs match."
    return str(frame.to_string(index=False, max_colwidth=60))


def as_json(frame: pd.DataFrame) -> str:
    return json.dumps(json.loads(frame.to_json(orient="records")), indent=2, ensure_ascii=False)


def as_html(frame: pd.DataFrame, rendering: Callable[[str], str], title: str) -> str:
    """A self-contained page; each row's record links to its rendering."""
    shown = frame.fillna("").astype(str).map(html.escape)
    shown["record"] = [f'<a href="{html.escape(rendering(loc))}">'
                       f'{html.escape(loc.rsplit("/", 1)[-1])}</a>' for loc in frame["record"]]
    table = shown.to_html(index=False, escape=False, border=0, classes="history")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{table}</body></html>")


STYLE = ("body{font-family:system-ui,sans-serif;margin:2em}table.history{border-collapse:collapse}"
         "table.history td,table.history th{padding:4px 8px;border-bottom:1px solid #ddd;"
         "text-align:left;font-size:13px}")


def verify_cell(verify: Callable[[str, bytes], object]) -> Verifier:
    """A verifier that turns the outcome of ``verify`` into the row's word: ``yes``,
    ``NO: changed since archived``, ``no hash published``, or ``not checked (…)``."""

    def cell(location: str, data: bytes) -> str:
        try:
            verify(location, data)
        except RecordTampered:
            return "NO: changed since archived"
        except RecordHashMissing:
            return "no hash published"
        except RollbackError as exc:
            return f"not checked ({exc.what[:80]})"
        return "yes"

    return cell
