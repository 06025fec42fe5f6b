"""Telling the team as a live run goes: start, waiting for approval, success, failure,
interruption and "flip pending", to the chat or incident channels set per environment.

Where to: the URLs are secrets, so they come from the environment only, never a
parameter, the config file, an archive or a log:

- ``ROLLBACK_NOTIFY``: destinations for every environment;
- ``ROLLBACK_NOTIFY_<ENV>`` (``ROLLBACK_NOTIFY_PRODUCTION``): destinations for one;
- ``ROLLBACK_NOTIFY_DRILLS``: the only destinations a drill (the sandbox) tells, so a
  game day never pages the real incident channel.

Several URLs are separated by whitespace or commas. ``json://host/path`` and
``jsons://host/path`` are generic JSON webhooks (HTTP and HTTPS, as apprise
spells them); a plain ``https://`` URL is a generic JSON webhook too, except
Slack's and Microsoft Teams' incoming webhooks, which get ``{"text": …}``.

Never in the way: every destination is sent to at once on its own thread, over an
injected ``httpx.Client``; the run waits at most ``timeout`` seconds for all of
them together, and a failed, refused or slow delivery only becomes a line in the
result (shown in the notebook and kept in the archive). A destination is named
by its number and kind, never by its URL, and every message passes through
:func:`~rollback_helpers.secrets.redact`, then :func:`unpinged`: ``&``, ``<`` and
``>`` escaped as Slack requires (so ``<!channel>``, ``<@U123>``, ``<!subteam^S1>``
and Teams' ``<at>`` show as typed) and a bare ``@here``, ``@channel``,
``@everyone`` or ``@name`` broken by a zero-width space, so nothing an operator
typed pages anyone.

Why not apprise: it sends through ``requests``, around the httpx seam the rest
of the runbook (and its tests) use; its log lines and exceptions carry the URL,
which here is the secret; and it has no single deadline across destinations.
The generic JSON webhook, Slack and Teams each need one POST, written here.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from rollback_helpers.records.notebook_io import read_notebook, write_notebook
from rollback_helpers.run.backends import http_client
from rollback_helpers.secrets import Secret, redact
from rollback_helpers.ui.display import METADATA_KEY

NOTIFY_VAR = "ROLLBACK_NOTIFY"
DRILL_NOTIFY_VAR = "ROLLBACK_NOTIFY_DRILLS"
DEFAULT_TIMEOUT = 5.0
_SPLIT = re.compile(r"[\s,]+")
_TEXT_ONLY_HOSTS = ("hooks.slack.com", ".webhook.office.com", ".logic.azure.com")


@dataclass(frozen=True)
class Destination:
    """One webhook: its URL kept as a :class:`Secret`, shown only as ``#n (kind)``."""

    number: int
    url: Secret
    kind: str  # "json webhook", "slack", "teams"

    @property
    def name(self) -> str:
        return f"#{self.number} ({self.kind})"


@dataclass(frozen=True)
class Notice:
    """What one notification says: every field is masked before it is sent."""

    event: str
    env: str
    path: str
    operator: str
    outcome: str
    run_id: str = ""
    record: str = ""      # the record issue or record comment's web address
    archive: str = ""     # where the executed notebook is (or will be) archived
    detail: str = ""      # one line more: who must approve, the error, the next step
    at: str = ""
    mode: str = "live"    # "drill" on the sandbox

    def text(self) -> str:
        drill = " [DRILL]" if self.mode == "drill" else ""
        lines = [f"[rollback-runbook]{drill} {self.path} on {self.env}: {self.event} — "
                 f"{self.outcome}",
                 f"run {self.run_id or '—'} by {self.operator or '—'}"]
        lines += [f"{label}: {value}" for label, value in
                  (("detail", self.detail), ("record", self.record), ("archive", self.archive))
                  if value]
        return unpinged(redact("\n".join(lines)))

    def payload(self) -> dict[str, str]:
        masked = {k: unpinged(redact(str(v))) for k, v in asdict(self).items()}
        return {**masked, "text": self.text(), "source": "rollback-runbook"}


# What an operator typed (a reason, a name, an error quoting them) must not page anybody. Slack
# reads <!channel>, <!here>, <!everyone>, <@U…>, <#C…>, <!subteam^S…> as mentions and asks that
# &, < and > be escaped in text (so they show as typed); Teams mentions are <at>…</at>; Discord,
# Mattermost and Slack with link_names take a bare @everyone, @here, @channel, @all or @name.
# A zero-width space after the @ keeps the words as written without the mention.
_CHAT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_BARE_MENTION = re.compile(r"@(?=(?:here|channel|everyone|all)\b)|(?<![\w.+-])@(?=\w)", re.I)


def unpinged(text: str) -> str:
    """``text`` as chats show it, without a mention that notifies anyone."""
    return _BARE_MENTION.sub("@\u200b", text.translate(_CHAT_ESCAPES))


@dataclass(frozen=True)
class Delivery:
    destination: str  # "#1 (json webhook)"
    ok: bool
    detail: str       # "delivered (HTTP 200)", "failed: HTTP 500", "timed out after 5s"

    def line(self) -> str:
        return f"{self.destination}: {self.detail}"


@dataclass(frozen=True)
class Sent:
    """The outcome of one notification: a line per destination."""

    event: str
    deliveries: tuple[Delivery, ...] = ()

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.deliveries)

    def line(self) -> str:
        if not self.deliveries:
            return f"notification {self.event!r}: no destination configured ({NOTIFY_VAR})"
        return f"notification {self.event!r}: " + "; ".join(d.line() for d in self.deliveries)

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "ok": self.ok,
                "deliveries": [asdict(d) for d in self.deliveries]}


def destinations(env: str, environ: Mapping[str, str], *, drill: bool = False
                 ) -> list[Destination]:
    """The destinations for ``env``: ``ROLLBACK_NOTIFY`` then ``ROLLBACK_NOTIFY_<ENV>``; for a
    drill, ``ROLLBACK_NOTIFY_DRILLS`` alone."""
    names = (DRILL_NOTIFY_VAR,) if drill else (
        NOTIFY_VAR, f"{NOTIFY_VAR}_{re.sub(r'[^A-Z0-9]', '_', env.upper())}")
    urls = [u for name in names for u in _SPLIT.split(environ.get(name, "")) if u]
    return [Destination(n, Secret(url), _kind(url)) for n, url in
            enumerate(dict.fromkeys(urls), start=1)]


def _kind(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    if host.endswith(_TEXT_ONLY_HOSTS[1:]):
        return "teams"
    return "json webhook"


def post_url(url: str) -> str:
    """The HTTP(S) URL a destination is posted to (``json://`` → ``http://``, ``jsons://`` → ``https://``)."""
    parts = urlsplit(url)
    scheme = {"json": "http", "jsons": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
    return urlunsplit(parts._replace(scheme=scheme))


@dataclass
class Notifier:
    """Sends notices to the destinations, bounded by ``timeout`` seconds in all."""

    http: httpx.Client | None  # None: no destinations, so no client (and no TLS set-up) either
    targets: list[Destination]
    timeout: float = DEFAULT_TIMEOUT
    sent: list[Sent] = field(default_factory=list)

    def notify(self, notice: Notice) -> Sent:
        results: dict[int, Delivery] = {}
        threads = [threading.Thread(target=self._deliver, args=(d, notice, results), daemon=True,
                                    name=f"notify-{d.number}") for d in self.targets]
        deadline = time.monotonic() + self.timeout
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        deliveries = tuple(results.get(d.number) or Delivery(
            d.name, False, f"no answer within {self.timeout:g}s (not waited for)")
            for d in self.targets)
        outcome = Sent(notice.event, deliveries)
        self.sent.append(outcome)
        return outcome

    def _deliver(self, dest: Destination, notice: Notice, results: dict[int, Delivery]) -> None:
        body: dict[str, Any] = notice.payload() if dest.kind == "json webhook" \
            else {"text": notice.text()}
        if self.http is None:  # never with a destination (notifier_from_env)
            results[dest.number] = Delivery(dest.name, False, "failed: no HTTP client")
            return
        try:
            response = self.http.post(post_url(dest.url.reveal()), json=body,
                                      timeout=self.timeout)
        except httpx.TimeoutException:
            results[dest.number] = Delivery(dest.name, False, f"timed out after {self.timeout:g}s")
        except Exception as exc:  # its text may hold the URL: only its kind is shown
            results[dest.number] = Delivery(dest.name, False, f"failed: {type(exc).__name__}")
        else:
            ok = response.is_success
            results[dest.number] = Delivery(
                dest.name, ok, f"{'delivered' if ok else 'refused'} (HTTP {response.status_code})")


def notifier_from_env(env: str, environ: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT,
                      http: httpx.Client | None = None, drill: bool = False) -> Notifier:
    """A notifier for ``env`` (a drill's: the drills' channels only); a real-network client from
    :mod:`rollback_helpers.run.backends`, because webhooks are never the sandbox's hosts."""
    targets = destinations(env, environ, drill=drill)
    if not targets:  # most runs: no client to make (its TLS context is ~20 ms of CPU)
        return Notifier(http, [], timeout=timeout)
    client = http or http_client(timeout=timeout, follow_redirects=False)
    return Notifier(client, targets, timeout=timeout)


# -- the command line's side: the run's end, after papermill returns -------------------------
def end_event(path: str, exit_code: int, outcome: str) -> str:
    """The event a finished run sends: success (Path B: flip pending), failure or interrupted."""
    if outcome == "interrupted":
        return "interrupted"
    if exit_code == 0:
        return "flip pending" if path == "path-b" else "success"
    return "failure"


def record_url_in(cells: list[Any]) -> str:
    """The run's record comment address, as the kernel wrote it into the notebook's outputs."""
    found = ""
    for cell in cells:
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            block = output.get("metadata", {}).get(METADATA_KEY)
            if isinstance(block, dict) and isinstance(block.get("record_comment"), dict):
                found = str(block["record_comment"].get("url") or found)
    return found


def handover_in(cells: list[Any]) -> list[str]:
    """Path B's result as its checklist wrote it (new cluster, lost writes, next): lines."""
    found: dict[str, str] = {}
    for cell in cells:
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            block = output.get("metadata", {}).get(METADATA_KEY)
            if isinstance(block, dict) and isinstance(block.get("handover"), dict):
                found = {str(k): str(v) for k, v in block["handover"].items()}
    return [f"{key}: {value}" for key, value in found.items()]


def handover_of(notebook: Path) -> list[str]:
    """:func:`handover_in` of a notebook file (none if it cannot be read)."""
    try:
        return handover_in(read_notebook(notebook).cells)
    except (OSError, ValueError):
        return []


def metrics_in(cells: list[Any]) -> str:
    """The run's metrics verdict and its numbers, as verify wrote them into the outputs."""
    found = ""
    for cell in cells:
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            block = output.get("metadata", {}).get(METADATA_KEY)
            if isinstance(block, dict) and isinstance(block.get("metrics"), dict):
                found = str(block["metrics"].get("summary") or found)
    return found


@dataclass(frozen=True)
class RunEnd:
    """What the command line knows when the notebook has ended (the kernel may be dead)."""

    path: str
    env: str
    run_id: str
    operator: str
    exit_code: int
    outcome: str
    archive: Path         # the executed notebook, before it is stored: its deliveries go in it
    error: str = ""
    drill: bool = False
    location: str = ""    # where the record is stored (the store's name for it), if not archive


def announce_end(end: RunEnd, environ: Mapping[str, str], *,
                 timeout: float = DEFAULT_TIMEOUT, http: httpx.Client | None = None) -> Sent | None:
    """Send the run's last event and keep its deliveries in the archive's metadata block."""
    notifier = notifier_from_env(end.env, environ, timeout=timeout, http=http, drill=end.drill)
    if not notifier.targets:
        return None
    nb = read_notebook(end.archive) if end.archive.is_file() else None
    sent = tell_end(notifier, end, nb)
    if nb is not None:
        write_notebook(nb, end.archive)
    return sent


def tell_end(notifier: Notifier, end: RunEnd, nb: Any | None) -> Sent:
    """The run's last event, sent; its deliveries go into ``nb``'s metadata block (before the
    record is stored, so they are part of it). Headless runs and walkthroughs both end here."""
    event = end_event(end.path, end.exit_code, end.outcome)
    what = end.error.partition("\n")[0] if end.exit_code else end.outcome
    detail = end.error.partition("Next:")[2].strip()
    if event == "flip pending" and nb is not None:  # Path B's result: new cluster, lost writes, next
        detail = "; ".join(handover_in(nb.cells))
    metrics = metrics_in(nb.cells) if nb is not None else ""
    if metrics:  # the verdict and its numbers, before / during / after
        detail = f"metrics: {metrics}" + (f"; next: {detail}" if detail else "")
    sent = notifier.notify(Notice(
        event, end.env, end.path, end.operator, f"exit {end.exit_code}: {what}",
        run_id=end.run_id, record=record_url_in(nb.cells) if nb is not None else "",
        archive=end.location or str(end.archive), mode="drill" if end.drill else "live",
        detail=detail))
    if nb is not None:
        block = nb.metadata.setdefault(METADATA_KEY, {})
        block["notifications"] = [*block.get("notifications", []), sent.as_dict()]
    return sent
