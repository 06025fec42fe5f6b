"""Every archived run in a records store, newest first, from the records' own metadata.

One row per record: when, env, path, operator, mode, outcome and exit code,
duration, what changed (from → to image, or the restored cluster), workflow run,
record issue, reason, and whether the record's SHA-256 verifies against its issue.

The table fits the terminal: the wide columns (change, reason, record, …) are cut with
``…`` until the line fits, the record keeping its file name. JSON has every value whole,
snake_case keys, and numbers as numbers (exit code, seconds, issue).
"""

from __future__ import annotations

import html
import json
import shutil
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from rollback_helpers.errors import RecordHashMissing, RecordTampered, RollbackError
from rollback_helpers.records.archive import DRILLS, record_metadata
from rollback_helpers.records.store import FsspecStore, RecordStore

COLUMNS = ["when", "env", "path", "operator", "mode", "outcome", "exit", "duration", "change",
           "reason", "workflow run", "issue", "verified", "record"]
# cut first when the table is wider than the terminal, in this order, down to MIN_WIDTH
SHRINKABLE = ("reason", "workflow run", "operator", "verified", "mode", "record", "change")
MIN_WIDTH = {"change": 41, "record": 38}  # from → to whole; an archive's file name whole
# left out, in this order, when even the cut columns do not fit (JSON keeps them all)
DROPPABLE = ("workflow run", "reason", "verified", "issue", "mode", "duration", "exit")
JSON_KEYS = {"exit": "exit_code", "workflow run": "workflow_run", "duration": "seconds"}
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
    kind = "read only" if block.get("path") == "verify-flip" else \
        "dry run" if block.get("dry_run", True) else "live"
    mode = f"{kind}, {block.get('mode', 'headless')}"
    change = ""
    if facts.get("from_image") or facts.get("to_image"):
        change = f"{_short(facts.get('from_image'))} → {_short(facts.get('to_image'))}"
    elif facts.get("new_cluster"):
        change = f"restored into {facts['new_cluster']}"
    operator = str(params.get("operator") or "") or str(block.get("operator") or "") or next(
        (str(d.get("who")) for d in block.get("decisions", []) if d.get("who")), "")
    return {"when": str(block.get("started_at", "")), "env": str(block.get("env", "")),
            "path": str(block.get("path", "")), "operator": operator, "mode": mode,
            "outcome": str(block.get("outcome", "")), "exit": block.get("exit_code"),
            "duration": block.get("seconds"), "change": change,
            "reason": str(params.get("reason") or ""),
            "workflow run": str(facts.get("workflow_run", "")),
            "issue": block.get("record_issue") or "", "verified": "not checked",
            "record": location}


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _short(image: Any) -> str:
    """``registry.fly.io/app@sha256:<64 hex>`` → ``sha256:<12 hex>``: both ends fit a column."""
    text = str(image or "?")
    digest = text.rpartition("@")[2]
    return digest[:19] if digest.startswith("sha256:") else text


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
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


def as_table(frame: pd.DataFrame, width: int = 0) -> str:
    """Aligned columns no wider than ``width`` (default: the terminal's), cut with ``…``."""
    if frame.empty:
        return "No archived runs match."
    width = width or shutil.get_terminal_size((160, 24)).columns
    shown, left_out = list(COLUMNS), list[str]()
    while True:
        last = len(left_out) == len(DROPPABLE)
        widths = _widths(frame, shown, width, least=8 if last else 0)
        if sum(widths.values()) + 2 * (len(shown) - 1) <= width or last:
            break
        left_out.append(DROPPABLE[len(left_out)])
        shown.remove(left_out[-1])
    lines = ["  ".join(_fit(c, c, widths[c]) for c in shown).rstrip()]
    lines += ["  ".join(_fit(c, _cell(c, row[c]), widths[c]) for c in shown).rstrip()
              for row in frame.to_dict(orient="records")]
    if left_out:
        lines += textwrap.wrap(f"(left out to fit {width} columns: {', '.join(left_out)}; "
                               "--format json has every value whole)", width)
    return "\n".join(lines)


def _widths(frame: pd.DataFrame, columns: list[str], width: int, *,
            least: int = 0) -> dict[str, int]:
    """Each column's natural width; the shrinkable ones cut, in order, until the line fits
    (down to their minimum, or to ``least`` once nothing is left to leave out)."""
    widths = {c: max(len(c), *(len(_cell(c, v)) for v in frame[c])) for c in columns}
    for column in (c for c in SHRINKABLE if c in columns):
        excess = sum(widths.values()) + 2 * (len(columns) - 1) - width
        if excess <= 0:
            break
        floor = least or max(MIN_WIDTH.get(column, 12), len(column))
        widths[column] = min(widths[column], max(floor, widths[column] - excess))
    return widths


def _cell(column: str, value: Any) -> str:
    if column == "duration":
        return _duration(value)
    if column == "when" and str(value).endswith("+00:00"):  # UTC, to the minute
        return f"{str(value)[:10]} {str(value)[11:16]}Z"
    if value is None or (isinstance(value, float) and value != value):  # NaN: pandas' missing
        return ""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _fit(column: str, text: str, width: int) -> str:
    if len(text) > width:  # a record keeps its file name's end; the rest their beginning
        text = "…" + text[-(width - 1):] if column == "record" else text[:width - 1] + "…"
    return f"{text:<{width}}"


def as_json(frame: pd.DataFrame) -> str:
    """Every row whole, snake_case keys, numbers as numbers (exit code, seconds, issue)."""
    rows = []
    for row in frame[COLUMNS].to_dict(orient="records"):
        item = {JSON_KEYS.get(k, k.replace(" ", "_")): _plain(v) for k, v in row.items()}
        if isinstance(item.get("issue"), str):
            item["issue"] = int(item["issue"]) if item["issue"].isdigit() else None
        rows.append(item)
    return json.dumps(rows, indent=2, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        if value != value:  # NaN: missing
            return None
        return int(value) if value.is_integer() else value
    return value.item() if hasattr(value, "item") else value


def as_html(frame: pd.DataFrame, rendering: Callable[[str], str], title: str) -> str:
    """A self-contained page; each row's record links to its rendering."""
    shown = frame.copy()
    shown["duration"] = [_duration(s) for s in frame["duration"]]
    shown = shown.fillna("").astype(str).map(html.escape)
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
