"""Notifications: real webhooks on loopback; never in the run's way, never a secret in them."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import httpx
import nbformat
import pytest
from webhook_receiver import receiver

from rollback_helpers.run.notify import (
    Notice,
    RunEnd,
    announce_end,
    destinations,
    end_event,
    notifier_from_env,
    post_url,
)
from rollback_helpers.secrets import Secret, redact
from rollback_helpers.ui.display import METADATA_KEY

NOTICE = Notice("start", "staging", "path-a", "alice", "rolling back to v41", run_id="abc123",
                record="https://github.com/o/r/issues/7#issuecomment-1", archive="incidents/x.ipynb")


def test_destinations_come_from_the_shared_and_the_per_environment_variable() -> None:
    """ROLLBACK_NOTIFY goes everywhere, ROLLBACK_NOTIFY_<ENV> to its environment only."""
    environ = {"ROLLBACK_NOTIFY": "json://a.example/x, jsons://b.example/y",
               "ROLLBACK_NOTIFY_PRODUCTION": "https://hooks.slack.com/services/T/B/Z\nhttps://x.webhook.office.com/w",
               "ROLLBACK_NOTIFY_STAGING": "json://c.example/z"}
    prod = destinations("production", environ)
    assert [d.kind for d in prod] == ["json webhook", "json webhook", "slack", "teams"]
    assert [d.name for d in destinations("staging", environ)] == [
        "#1 (json webhook)", "#2 (json webhook)", "#3 (json webhook)"]
    assert destinations("development", {}) == []
    assert str(prod[2].url) == "****" and "hooks.slack.com/services/T/B/Z" not in repr(prod)


def test_json_schemes_map_to_http_and_https() -> None:
    assert post_url("json://127.0.0.1:8080/h?x=1") == "http://127.0.0.1:8080/h?x=1"
    assert post_url("jsons://hooks.example/h") == "https://hooks.example/h"
    assert post_url("https://hooks.slack.com/services/a") == "https://hooks.slack.com/services/a"


def test_a_generic_json_webhook_receives_every_field() -> None:
    """env, path, operator, outcome, record link and archive location reach the receiver."""
    with receiver("ok") as rec:
        notifier = notifier_from_env("staging", {"ROLLBACK_NOTIFY": rec.url()}, timeout=5)
        sent = notifier.notify(NOTICE)
    assert sent.ok, sent.line()
    body = rec.bodies[0]
    assert {k: body[k] for k in ("event", "env", "path", "operator", "outcome", "record",
                                 "archive")} == {
        "event": "start", "env": "staging", "path": "path-a", "operator": "alice",
        "outcome": "rolling back to v41", "record": NOTICE.record, "archive": "incidents/x.ipynb"}
    assert "path-a on staging: start" in body["text"]
    assert sent.line() == "notification 'start': #1 (json webhook): delivered (HTTP 200)"


def test_a_failing_receiver_is_a_line_not_an_error() -> None:
    with receiver("fail") as rec:
        sent = notifier_from_env("staging", {"ROLLBACK_NOTIFY": rec.url()}).notify(NOTICE)
    assert not sent.ok and "refused (HTTP 500)" in sent.line()
    assert rec.port and rec.url() not in sent.line()


def test_an_unreachable_receiver_names_no_url() -> None:
    with receiver("ok") as rec:
        url = rec.url()
    sent = notifier_from_env("staging", {"ROLLBACK_NOTIFY": url}, timeout=2).notify(NOTICE)
    assert not sent.ok and "failed: ConnectError" in sent.line()
    assert "127.0.0.1" not in sent.line() and "s3cr3t" not in json.dumps(sent.as_dict())


def test_a_slow_receiver_delays_the_run_by_the_bound_only() -> None:
    """A receiver that never answers costs the deadline, and the others are still delivered."""
    with receiver("slow") as slow, receiver("ok") as fast:
        notifier = notifier_from_env("staging", {"ROLLBACK_NOTIFY": f"{slow.url()} {fast.url()}"},
                                     timeout=0.5)
        began = time.monotonic()
        sent = notifier.notify(NOTICE)
        took = time.monotonic() - began
    assert took < 3.0, took
    lines = [d.line() for d in sent.deliveries]
    assert lines[1] == "#2 (json webhook): delivered (HTTP 200)"
    assert not sent.deliveries[0].ok and ("0.5s" in lines[0])
    assert fast.events() == ["start"] and slow.events() == ["start"]


def test_secrets_in_free_text_are_masked_before_sending() -> None:
    token = "ghp_" + "A1b2C3d4" * 5
    password = "pw-" + "x9" * 10
    Secret(password)
    notice = Notice("failure", "staging", "path-b", "bob", f"failed with {token}",
                    detail=f"postgresql://app-user:{password}@db/fly", run_id="r1")
    with receiver("ok") as rec:
        notifier_from_env("staging", {"ROLLBACK_NOTIFY": rec.url()}).notify(notice)
    raw = json.dumps(rec.bodies)
    assert token not in raw and password not in raw and "****" in raw


def test_the_run_end_is_announced_and_kept_in_the_archive(tmp_path: Path) -> None:
    """The command line sends the last event and writes the deliveries into the metadata block."""
    archive = tmp_path / "run.ipynb"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "r"}, metadata={
        METADATA_KEY: {"record_comment": {"issue": 7, "url": "https://github.com/o/r/issues/7#c"}}})]
    nb.cells.append(cell)
    nbformat.write(nb, str(archive))
    end = RunEnd("path-a", "staging", "r1", "alice", 5, "workflow-failed", archive,
                 error="WorkflowFailed: run ended failure\nNext: open the run's logs", drill=True)
    with receiver("ok") as rec:
        assert announce_end(end, {"ROLLBACK_NOTIFY": rec.url(), "ROLLBACK_NOTIFY_STAGING": rec.url()}) is None
        sent = announce_end(end, {"ROLLBACK_NOTIFY_DRILLS": rec.url()})
    assert sent is not None and sent.ok
    body = rec.bodies[0]
    assert (body["event"], body["record"], body["mode"]) == (
        "failure", "https://github.com/o/r/issues/7#c", "drill")
    assert body["outcome"] == "exit 5: WorkflowFailed: run ended failure"
    assert body["detail"] == "open the run's logs" and "[DRILL]" in body["text"]
    kept = nbformat.read(str(archive), as_version=4).metadata[METADATA_KEY]["notifications"]
    assert kept == [sent.as_dict()] and rec.url() not in json.dumps(kept)


@pytest.mark.parametrize(("code", "error", "detail"), [
    (0, "", "metrics: recovered (before 0.20% 5xx, p95 120 ms · after 0.20% 5xx, p95 120 ms)"),
    (6, "VerificationFailed: the incident did not end\nNext: look at the logs",
     "metrics: not recovered (before 0.20% 5xx, p95 120 ms · after 10.13% 5xx, p95 120 ms); "
     "next: look at the logs")])
def test_the_run_end_carries_the_metrics_verdict_and_its_numbers(
        tmp_path: Path, code: int, error: str, detail: str) -> None:
    """The verdict verify wrote into its output's metadata goes into the last notification."""
    archive = tmp_path / "run.ipynb"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("run.verify()")
    summary = detail.removeprefix("metrics: ").partition("; next")[0]
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "r"}, metadata={
        METADATA_KEY: {"metrics": {"outcome": summary.partition(" (")[0], "summary": summary}}})]
    nb.cells.append(cell)
    nbformat.write(nb, str(archive))
    end = RunEnd("path-a", "staging", "r1", "alice", code, "success" if not code else
                 "verification-failed", archive, error=error)
    with receiver("ok") as rec:
        announce_end(end, {"ROLLBACK_NOTIFY_STAGING": rec.url()})
    assert rec.bodies[0]["detail"] == detail
    assert f"detail: {detail}" in rec.bodies[0]["text"]


def test_no_destination_sends_nothing_and_writes_nothing(tmp_path: Path) -> None:
    end = RunEnd("path-a", "staging", "r1", "alice", 0, "success", tmp_path / "none.ipynb")
    assert announce_end(end, {}) is None


def test_end_events() -> None:
    assert end_event("path-a", 0, "success") == "success"
    assert end_event("path-b", 0, "success") == "flip pending"
    assert end_event("path-a", 130, "interrupted") == "interrupted"
    assert end_event("path-b", 137, "interrupted") == "interrupted"
    assert end_event("path-a", 6, "verification-failed") == "failure"


def test_slack_gets_only_text(tmp_path: Path) -> None:
    """Slack's and Teams' incoming webhooks take ``{"text": …}`` (the URL is registered as secret)."""
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    notifier = notifier_from_env(
        "production", {"ROLLBACK_NOTIFY": "https://hooks.slack.com/services/T0/B0/XYZ"}, http=http)
    assert notifier.notify(NOTICE).ok
    assert list(json.loads(seen[0])) == ["text"]
    assert redact("https://hooks.slack.com/services/T0/B0/XYZ") == "****"


def test_path_b_hands_over_its_result_from_the_checklist_output() -> None:
    """The checklist's output metadata holds the new cluster, the lost writes and the next
    step; the command line prints them and the flip-pending notification carries them."""
    from rollback_helpers.run.notify import handover_in
    from rollback_helpers.ui.display import METADATA_KEY

    handover = {"new cluster": "r9d4g7k2s5m8c1xt", "lost writes": "writes after … (4m 10s)",
                "next": "the checklist"}
    cells = [{"cell_type": "markdown", "source": "x"},
             {"cell_type": "code", "outputs": [{"metadata": {}}]},
             {"cell_type": "code", "outputs": [{"metadata": {METADATA_KEY: {"handover": handover}}}]}]
    assert handover_in(cells) == ["new cluster: r9d4g7k2s5m8c1xt",
                                  "lost writes: writes after … (4m 10s)", "next: the checklist"]
    assert handover_in(cells[:2]) == []


# What an operator may type (a name, a reason, why Path A was not enough, an error quoting them)
TYPED = {
    "operator": "<!channel> alice @here",
    "outcome": "exit 5: <!here> <!everyone> <@U0123ABC> see <#C0456DEF|incidents> & <!subteam^S789>",
    "detail": "path_a_tried: @channel @everyone @Everyone hi@here <at>Bob</at> @alice, "
              "mail ops@example.com",
}
PAGES = re.compile(r"<[!@#]|<at>|@(here|channel|everyone|all)\b|(?<![\w.+-])@\w", re.I)


def as_shown(value: str) -> str:
    """What a chat shows for ``value``: its entities decoded, zero-width spaces invisible."""
    return html.unescape(value).replace("\u200b", "")


def test_mentions_in_typed_text_page_nobody_through_a_webhook() -> None:
    """Slack's <!channel>, <!here>, <!everyone>, <@U…>, <#C…>, <!subteam^S…>, Teams' <at>, and a
    bare @here, @channel, @everyone (Discord, Mattermost) or @name arrive escaped as Slack asks
    (&, <, >) and broken by a zero-width space: nothing that pages, every word still shown."""
    notice = Notice("failure", "staging", "path-b", TYPED["operator"], TYPED["outcome"],
                    detail=TYPED["detail"], run_id="r1")
    with receiver("ok") as rec:
        assert notifier_from_env("staging", {"ROLLBACK_NOTIFY": rec.url()}).notify(notice).ok
    body = rec.bodies[0]
    for field, typed in TYPED.items():
        assert PAGES.search(body[field]) is None, body[field]
        assert as_shown(body[field]) == typed
        assert as_shown(typed) in as_shown(body["text"])
    assert PAGES.search(body["text"]) is None, body["text"]
    assert "ops@example.com" in body["detail"]  # an address is not a mention: left whole


def test_slack_text_carries_no_mention_either() -> None:
    """Slack's incoming webhook gets only ``text``: escaped, every mention broken."""
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200)

    notice = Notice("start", "production", "path-a", TYPED["operator"], TYPED["outcome"],
                    detail=TYPED["detail"])
    http = httpx.Client(transport=httpx.MockTransport(handler))
    notifier_from_env("production", {"ROLLBACK_NOTIFY": "https://hooks.slack.com/services/T/B/Z"},
                      http=http).notify(notice)
    assert PAGES.search(seen[0]["text"]) is None, seen[0]["text"]
    assert all(as_shown(typed) in as_shown(seen[0]["text"]) for typed in TYPED.values())


def test_no_destination_makes_no_http_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Most runs notify no one: they make no client (its TLS context costs every run)."""
    import rollback_helpers.run.notify as notify

    def no_client(**_: object) -> httpx.Client:
        raise AssertionError("an HTTP client was made for no destination")

    monkeypatch.setattr(notify, "http_client", no_client)
    notifier = notifier_from_env("staging", {"ROLLBACK_NOTIFY_PRODUCTION": "https://x.invalid/h"})
    assert (notifier.http, notifier.targets) == (None, [])
    assert notifier.notify(NOTICE).line()  # says no one was told, without a client
