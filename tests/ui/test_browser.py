"""The walkthrough in a real JupyterLab, driven by Playwright in Debian's Chromium.

One lab (``rollback-runbook lab`` on a sandbox world) serves the session; the
tests click what an engineer clicks and check what the page shows, what the
sandbox did and what was saved and archived. Screenshots of the key steps go to
``test-artifacts/browser/``; with ``ROLLBACK_DOC_PICTURES=1`` the walkthrough's and the
rendered record's are retaken into ``docs/images/`` (the README's and docs/metrics.md's).
Stopping the lab with Ctrl+C must leave no process behind.
The same browser opens a record rendered by ``rollback-runbook render``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser_setup import REPO, Lab, ensure_chromium, lab_page

from rollback_helpers.cli import main as cli
from rollback_helpers.records import notebook_io
from rollback_helpers.records.render import render_html
from rollback_helpers.sandbox.core.world import World, digest_for
from rollback_helpers.ui.display import METADATA_KEY

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

ARTIFACTS = REPO / "test-artifacts" / "browser"
# The docs' pictures are retaken into docs/images/ only when asked (ROLLBACK_DOC_PICTURES=1), so
# a test run leaves the checkout as it found it; otherwise they go with the other screenshots.
PICTURES = REPO / "docs" / "images" if os.environ.get("ROLLBACK_DOC_PICTURES") == "1" else ARTIFACTS
README_PICTURE = PICTURES / "walkthrough.png"
METRICS_PICTURE = PICTURES / "metrics-record.png"
ACTIVE = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook tab in front
STEP = 60_000  # ms: generous per step; the whole walkthrough takes seconds


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A real lab on the default scenario; stopped with Ctrl+C, and nothing may outlive it."""
    ensure_chromium()
    server = Lab(tmp_path_factory.mktemp("lab"))
    yield server
    code, leftovers = server.stop()
    assert leftovers == set(), f"processes outlived `rollback-runbook lab`: {leftovers}"
    assert code == 0 and "Stopped." in server.output()


@pytest.fixture(scope="session")
def page(lab: Lab, pw_driver: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with lab_page(pw_driver, tmp_path_factory.mktemp("chromium-profile"), step_ms=STEP) as page:
        yield page


@pytest.fixture(autouse=True)
def last_screen(page: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    """The page as each test left it (on a failure, the first thing to look at)."""
    yield
    screenshot(page, f"last-{request.node.name}")


# -- what an engineer does ---------------------------------------------------------------------
def open_notebook(page: Any, lab: Lab, name: str) -> None:
    """Open one notebook alone (``reset``: no tabs restored from an earlier page)."""
    page.goto(f"{lab.base_url}/lab/tree/{name}?reset&token={lab.token}")
    wait_for_kernel(page, name)


def wait_for_kernel(page: Any, name: str) -> None:
    """``name`` is in front and its kernel is connected and idle (a Run All before that would
    ask which kernel to start)."""
    status = page.locator("#jp-main-statusbar")
    expect(status).to_contain_text(name)
    expect(status).to_contain_text("Python 3 (ipykernel) | Idle")
    page.locator(f"{ACTIVE} .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()


def menu(page: Any, top: str, item: str) -> None:
    page.get_by_role("menuitem", name=top, exact=True).click()
    page.get_by_role("menuitem", name=item, exact=True).click()


def select_cell(page: Any, source: str) -> None:
    """Click a code cell's prompt (command mode), as before Run → Run Selected Cell…"""
    editor = page.locator(".jp-InputArea-editor", has_text=source)
    page.locator(f"{ACTIVE} .jp-CodeCell").filter(has=editor).first.locator(
        ".jp-InputPrompt").click()


def shows(page: Any, text: str) -> None:
    expect(page.locator(ACTIVE).get_by_text(text).first).to_be_visible()


def save(page: Any, saved: Path, must_contain: str) -> None:
    """Ctrl+S, then wait until the file on disk holds what the page shows."""
    page.keyboard.press("Control+s")
    # the tab stays marked dirty until the server has written the file
    expect(page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")).to_have_count(
        0, timeout=STEP)
    assert must_contain in saved.read_text(), f"{saved} was not saved"


def screenshot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# -- the tests -----------------------------------------------------------------------------------
def test_walkthrough_from_start_here_to_an_archived_rollback(
        lab: Lab, page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Triage → Path A → dry run → the button → rollback → verified, recorded, archived."""
    open_notebook(page, lab, "start_here.ipynb")
    menu(page, "Run", "Run All Cells")
    page.locator(".rb-q-database_intact button", has_text="Yes").click()
    for question in ("destructive_migration_or_corruption", "database_readonly",
                     "migration_state_problem"):
        page.locator(f".rb-q-{question} button", has_text="No").click()
    page.locator(".rb-env select").select_option("staging")
    shows(page, "Next: Path A — image rollback")
    page.locator("button.rb-open-path:not([disabled])").click()
    link = page.locator("a.rb-open-link")
    expect(link).to_have_text("Open path_a_image_rollback-staging.ipynb")
    screenshot(page, "1-start-here")

    link.click()  # JupyterLab opens it in a new tab
    wait_for_kernel(page, "path_a_image_rollback-staging.ipynb")
    menu(page, "Run", "Run All Cells")
    gate = page.locator(f"{ACTIVE} .rb-gate button:not(.rb-run-rest)")
    expect(gate).to_have_text("Roll back staging to sha256:" + digest_for("v41")[7:19])
    shows(page, "Awaiting approval")
    shows(page, "Dispatch: skipped: not approved")
    world = World.load(lab.sandbox)
    assert not [c for c in world.calls() if c["mutating"]], "a dry run changed the sandbox"
    gate.scroll_into_view_if_needed()
    screenshot(page, "2-plan-and-button")

    gate.click()
    shows(page, "Decision: roll back staging to registry.fly.io/renewa-one@" + digest_for("v41"))
    select_cell(page, "run.dispatch()")
    menu(page, "Run", "Run Selected Cell and All Below")
    # verify watches the metrics for 300 virtual seconds (a progress bar) before its verdict
    expect(page.locator(ACTIVE).get_by_text("Metrics verdict: recovered").first).to_be_visible(
        timeout=STEP)
    shows(page, "Updated deployment record #1010")
    shows(page, "Verification")
    shows(page, "machines on target")
    shows(page, "Summary: rolled back and verified")
    readme_picture(page)
    world = World.load(lab.sandbox)
    machines = world.state["fly"]["apps"]["renewa-one-staging"]["machines"]
    assert {m["image"] for m in machines} == {"v41"}
    bad = next(i for i in world.state["github"]["issues"] if i["number"] == 1010)
    assert "rolled-back" in bad["labels"]

    saved = lab.workspace / "path_a_image_rollback-staging.ipynb"
    save(page, saved, "Summary: rolled back and verified")
    select_cell(page, "run.finish()")
    page.keyboard.press("Shift+Enter")
    shows(page, "Finish: archived")
    screenshot(page, "4-archived")
    (archived,) = (lab.incidents / "drills").glob("*-staging-path-a.ipynb")
    record = nbformat.read(str(archived), as_version=4)
    block = record.metadata[METADATA_KEY]
    assert block["mode"] == "interactive" and block["outcome"] == "success"
    assert [(d["step"], d["who"]) for d in block["decisions"]] == [("plan", "drill-operator")]
    assert block["decisions"][0]["how"].startswith("button “Roll back staging")
    headless = headless_record(tmp_path, monkeypatch)
    assert notebook_io.record_structure(record) == notebook_io.record_structure(headless)


def readme_picture(page: Any) -> None:
    """The README's screenshot: the plan, the pressed button, the decision and the run after it."""
    screenshot(page, "3-rolled-back")
    page.keyboard.press("Control+b")  # hide the file browser: the notebook gets the width
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.evaluate("""() => {
        const heading = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) h2')]
            .find(h => h.textContent.startsWith('4. Plan'));
        heading.scrollIntoView({block: 'start'});
        heading.closest('.jp-WindowedPanel-outer')?.scrollBy(0, -12);
    }""")
    page.wait_for_timeout(500)  # the notebook renders the cells scrolled into view
    README_PICTURE.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(README_PICTURE))
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.keyboard.press("Control+b")


def headless_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The same scenario run headless by the CLI, for comparison."""
    monkeypatch.setenv("GITHUB_TOKEN", "")  # the drill exports its world's token: restore after
    incidents = tmp_path / "headless"
    code = cli.main(["drill", "path-a", "--env", "staging", "--speed", "0", "--quiet",
                     "--sandbox-dir", str(tmp_path / "world"), "--incidents-dir", str(incidents)])
    assert code == 0
    (record,) = incidents.glob("*.ipynb")
    return nbformat.read(str(record), as_version=4)


CHECKLIST_CELL = """from rollback_helpers.runbook import path_a
from rollback_helpers.ui.interactive import Checklist

run = path_a.start({"env": "staging", "interactive": True})
flip = Checklist.for_run(run.ctx, "Manual flip", ["Update DATABASE_URL in Infisical",
                                                  "Redeploy the app"], step="flip checklist")
flip.show()"""


def test_checklist_ticks_are_saved_in_the_notebook(lab: Lab, page: Any) -> None:
    """Ticking a checkbox writes who ticked what into the notebook, and Ctrl+S keeps it."""
    saved = lab.workspace / "checklist.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CHECKLIST_CELL)],
                                            metadata={"kernelspec": {"name": "python3",
                                                                     "display_name": "Python 3",
                                                                     "language": "python"}}),
                   str(saved))
    open_notebook(page, lab, saved.name)
    menu(page, "Run", "Run All Cells")
    page.locator(".rb-checklist input[type=checkbox]").first.check()
    shows(page, "ticked by drill-operator")
    screenshot(page, "5-checklist")
    save(page, saved, "ticked: Update DATABASE_URL in Infisical")
    decisions = notebook_io.decisions_in(nbformat.read(str(saved), as_version=4))
    assert [(d["what"], d["how"], d["step"]) for d in decisions] == [
        ("ticked: Update DATABASE_URL in Infisical", "checkbox", "flip checklist")]


# -- a rendered record (rollback-runbook render) -------------------------------------------
def failed_record() -> bytes:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("run.watch()  # CELL-CODE")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="watching run 7000011\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("## Watch the workflow run"), cell]
    nb.metadata[METADATA_KEY] = {
        "path": "path-a", "env": "staging", "exit_code": 5, "outcome": "workflow-failed",
        "dry_run": False, "mode": "headless", "failed_step": "Watch the workflow run",
        "parameters": {"env": "staging"}, "decisions": []}
    return nbformat.writes(nb).encode()


def test_a_rendered_record_opens_with_its_outcome_banner(page: Any, tmp_path: Path) -> None:
    """``rollback-runbook render``'s page, opened from a file: the banner says the outcome at
    the top, the code shows after the toggle, and nothing is fetched from the network."""
    rendering = tmp_path / "record.html"
    rendering.write_text(render_html(failed_record()))
    requested: list[str] = []
    def note(request: Any) -> None:
        requested.append(request.url)

    page.on("request", note)
    page.goto(rendering.as_uri())
    banner = page.locator("#rb-outcome")
    expect(banner).to_have_text("WORKFLOW-FAILED: path-a on staging (live, headless), exit code 5, "
                                "at step “Watch the workflow run”")
    box = banner.bounding_box()
    assert box is not None and box["y"] < 100  # the first thing on the page
    assert "rgb(252, 232, 230)" in banner.evaluate("e => getComputedStyle(e).backgroundColor")
    code = page.get_by_text("CELL-CODE")
    expect(code).to_be_hidden()
    expect(page.get_by_text("watching run 7000011")).to_be_visible()
    page.get_by_text("Show the cells' code").click()
    expect(code).to_be_visible()
    page.remove_listener("request", note)
    assert [url for url in requested if not url.startswith("file://")] == []
    screenshot(page, "rendered-record")


def test_a_rendered_record_shows_the_incident_chart(page: Any, tmp_path: Path) -> None:
    """A drill on partial recovery (one region keeps failing), rendered by ``render``: the chart
    is in the page as an image the browser decodes, beside the verdict. Its screenshot is
    ``docs/images/metrics-record.png`` (shown in docs/metrics.md) when the docs' pictures are
    retaken."""
    incidents = tmp_path / "incidents"
    code = cli.main(["drill", "path-a", "--env", "staging", "--scenario",
                     "metrics-partial-recovery", "--speed", "0", "--quiet",
                     "--sandbox-dir", str(tmp_path / "world"), "--incidents-dir", str(incidents)])
    assert code == 6  # health says 200, the metrics say not recovered
    (record,) = incidents.glob("*.ipynb")
    rendering = tmp_path / "record.html"
    rendering.write_text(render_html(record.read_bytes()))
    page.goto(rendering.as_uri())
    expect(page.get_by_text("Metrics verdict: not recovered").first).to_be_visible()
    chart = page.locator("img[src^='data:image/png']").first
    chart.scroll_into_view_if_needed()
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.complete && img.naturalWidth") > 400
    verdict = page.get_by_text("Metrics verdict: not recovered").first
    on_page = "e => e.getBoundingClientRect().top + window.scrollY"
    top = verdict.evaluate(on_page)
    bottom = chart.evaluate("e => e.getBoundingClientRect().bottom + window.scrollY")
    assert bottom > top
    page.screenshot(path=str(METRICS_PICTURE), full_page=True,
                    clip={"x": 0, "y": max(0.0, top - 10), "width": 1000,
                          "height": bottom - top + 20})
    screenshot(page, "rendered-record-with-chart")
