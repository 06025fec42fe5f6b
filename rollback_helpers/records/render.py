"""A record as one self-contained HTML page (nbconvert), readable without Jupyter.

The page opens with what a reader wants first: an outcome banner, the run's
facts, its parameters and its decisions; the executed notebook follows, with the
cells' code hidden behind a "show code" toggle (pure CSS, no script). Nothing is
fetched from the network when it is opened, and every text passes through
:func:`~rollback_helpers.secrets.redact` before and after conversion.

A record is a file anyone with write access to the store could have edited, so the
page runs no script at all: nbconvert sanitises the cells' HTML (``sanitize_html``:
no ``<script>``, no ``on…`` handlers, no JavaScript outputs), and a
Content-Security-Policy as the head's first element forbids every script, frame and
fetch that might remain.
"""

from __future__ import annotations

import html
import re
from typing import Any

import nbformat

from rollback_helpers.secrets import redact
from rollback_helpers.ui.display import METADATA_KEY

REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", re.IGNORECASE)
REMOTE_LINK = re.compile(r"<link[^>]*\bhref=[\"']https?://[^>]*>", re.IGNORECASE)
BODY_OPEN = re.compile(r"<body[^>]*>")
HEAD_OPEN = re.compile(r"<head[^>]*>")
# The page needs no script: inline styles and embedded (data:) images and fonts only.
CSP = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
       "script-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
       "object-src 'none'; frame-src 'none'; form-action 'none'; base-uri 'none'\">")
STYLE = """
.rb-banner{padding:14px 18px;border-radius:6px;font:600 18px system-ui,sans-serif;margin:16px}
.rb-ok{background:#e6f4ea;color:#0d652d;border:1px solid #0d652d}
.rb-dry{background:#e8f0fe;color:#174ea6;border:1px solid #174ea6}
.rb-failed{background:#fce8e6;color:#a50e0e;border:1px solid #a50e0e}
.rb-summary{margin:0 16px 16px;font:14px system-ui,sans-serif}
.rb-summary table{border-collapse:collapse;margin:6px 0 12px}
.rb-summary td,.rb-summary th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}
.rb-toggle{margin:0 16px 12px;font:14px system-ui,sans-serif}
#rb-show-code:not(:checked) ~ main .jp-Cell-inputWrapper{display:none}
#rb-show-code:not(:checked) ~ main .jp-InputPrompt{display:none}
"""


def _redact_notebook(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        cell.source = redact(cell.source)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = redact(str(output["text"]))
            for mime, value in dict(output.get("data", {})).items():
                if isinstance(value, str) and not mime.startswith("image/"):
                    output["data"][mime] = redact(value)
            if "traceback" in output:
                output["traceback"] = [redact(line) for line in output["traceback"]]


def banner(block: dict[str, Any]) -> tuple[str, str]:
    """(css class, text) of the outcome banner."""
    what = f"{block.get('path', '?')} on {block.get('env', '?')}"
    mode = ("dry run" if block.get("dry_run", True) else "live") + ", " + str(
        block.get("mode", "headless"))
    code = block.get("exit_code")
    if code == 0:
        kind = "rb-dry" if block.get("dry_run", True) else "rb-ok"
        word = "DRY RUN — plan only" if block.get("dry_run", True) else "SUCCESS"
        return kind, f"{word}: {what} ({mode}), exit code 0"
    if code is None:
        return "rb-failed", f"NO OUTCOME RECORDED: {what} ({mode})"
    step = block.get("failed_step") or "?"
    return "rb-failed", (f"{str(block.get('outcome', 'failed')).upper()}: {what} ({mode}), "
                         f"exit code {code}, at step “{step}”")


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...] = ()) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table>{'<tr>' + header + '</tr>' if header else ''}{body}</table>"


def summary_html(block: dict[str, Any]) -> str:
    """Banner, facts, parameters and decisions: what comes before the notebook."""
    kind, text = banner(block)
    facts = [("record", block.get("archive", "")), ("started", block.get("started_at", "")),
             ("finished", block.get("finished_at", "")), ("seconds", block.get("seconds", "")),
             ("backend", block.get("backend", "")), ("run id", block.get("run_id", "")),
             ("record issue", block.get("record_issue") or "")]
    facts += [(k.replace("_", " "), v) for k, v in dict(block.get("facts") or {}).items()]
    if block.get("error"):
        facts.append(("error", block["error"]))
    params = sorted(dict(block.get("parameters") or {}).items())
    decisions = [(d.get("at", ""), d.get("who", ""), d.get("step", ""), d.get("what", ""),
                  d.get("how", "")) for d in block.get("decisions") or []]
    return (f'<div class="rb-banner {kind}" id="rb-outcome">{html.escape(text)}</div>'
            f'<div class="rb-summary"><h2>Run</h2>{_table([f for f in facts if f[1] != ""])}'
            f"<h2>Parameters</h2>{_table(params)}<h2>Decisions</h2>"
            + (_table(decisions, ("at", "who", "step", "what", "how")) if decisions
               else "<p>none recorded</p>") + "</div>"
            '<div class="rb-toggle"><label for="rb-show-code">Show the cells\' code</label></div>'
            '<input type="checkbox" id="rb-show-code" class="rb-toggle">')


def render_html(data: bytes, *, title: str = "") -> str:
    """The record's bytes as one self-contained HTML page."""
    from nbconvert import HTMLExporter

    nb = nbformat.reads(data.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    block = dict(nb.metadata.get(METADATA_KEY, {}))
    _redact_notebook(nb)
    nb.metadata.pop("widgets", None)
    exporter = HTMLExporter(template_name="lab", embed_images=True,  # type: ignore[no-untyped-call]
                            sanitize_html=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {
        "name": title or str(block.get("archive", "incident record"))}})
    body = REMOTE_LINK.sub("", REMOTE_SCRIPT.sub("", body))
    body = body.replace("</head>", f"<style>{STYLE}</style></head>", 1)
    head = HEAD_OPEN.search(body)
    if head is None:
        raise ValueError("nbconvert produced no <head>")
    body = body[:head.end()] + CSP + body[head.end():]  # before anything that could run
    opening = BODY_OPEN.search(body)
    if opening is None:
        raise ValueError("nbconvert produced no <body>")
    page = body[:opening.end()] + summary_html(block) + body[opening.end():]
    return redact(page)
