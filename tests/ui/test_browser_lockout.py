"""A walkthrough that cannot lock its operator out, in a real JupyterLab driven in Chromium.

Its own ``rollback-runbook lab`` (this module stops it, mid-run, in its last test): Run All
Cells after the approval, a restarted kernel, and a stopped lab each leave no lease held
and a record comment that says what became of its run; the gate's "Run the rest of the
notebook" button runs the cells below, with no menu to find.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_setup import Lab, ensure_chromium, lab_page
from test_browser import ACTIVE, ARTIFACTS, STEP, menu, shows, wait_for_kernel

from rollback_helpers.records import notebook_io
from rollback_helpers.run.run_comment import RunComment, parse_comment
from rollback_helpers.sandbox.core.world import World

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

GATE = f"{ACTIVE} .rb-gate button:not(.rb-run-rest)"
REST = f"{ACTIVE} .rb-gate button.rb-run-rest"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    ensure_chromium()
    server = Lab(tmp_path_factory.mktemp("lockout-lab"))
    yield server
    server.stop()  # the last test stops it itself; this is for a failure before that


@pytest.fixture(scope="module")
def page(lab: Lab, pw_driver: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with lab_page(pw_driver, tmp_path_factory.mktemp("chromium-lockout"), step_ms=STEP) as page:
        yield page


@pytest.fixture(autouse=True)
def last_screen(page: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    page.screenshot(path=str(ARTIFACTS / f"last-{request.node.name}.png"))


# -- what the engineer does, and what the sandbox says --------------------------------------------
def open_path_a(page: Any, lab: Lab, env: str) -> None:
    """Path A's notebook for ``env``, as start_here writes it (the environment filled in)."""
    name = f"path_a_image_rollback-{env}.ipynb"
    nb = notebook_io.read_notebook(lab.workspace / "path_a_image_rollback.ipynb")
    notebook_io.write_notebook(notebook_io.parameterized(nb, {"env": env}, comment="start_here"),
                               lab.workspace / name)
    page.goto(f"{lab.base_url}/lab/tree/{name}?reset&token={lab.token}")
    wait_for_kernel(page, name)


# the last cell (Finish) queued or run anew (a restarted kernel counts from 1 again), then run
LAST_PROMPT = """([active, before, queued]) => {
    const prompts = document.querySelectorAll(active + ' .jp-CodeCell .jp-InputPrompt');
    const last = prompts[prompts.length - 1], text = last ? last.textContent : '';
    const done = /\\[\\d+\\]/.test(text);
    return queued ? text.includes('*') || (done && text !== before) : done;
}"""


def last_prompt(page: Any) -> str:
    return str(page.locator(f"{ACTIVE} .jp-CodeCell .jp-InputPrompt").last.text_content())


def run_all(page: Any) -> None:
    """Run → Run All Cells, and wait until the last cell (Finish) has run."""
    before = last_prompt(page)
    menu(page, "Run", "Run All Cells")
    page.wait_for_function(LAST_PROMPT, arg=[ACTIVE, before, True], timeout=STEP)
    page.wait_for_function(LAST_PROMPT, arg=[ACTIVE, before, False], timeout=STEP)


def approve(page: Any, env: str) -> None:
    gate = page.locator(GATE)
    expect(gate).to_be_enabled()
    gate.click()
    shows(page, f"Decision: roll back {env} to registry.fly.io/renewa-one@")


def run_the_rest(page: Any) -> None:
    """The gate's second button: the cells below run, and the last one (Finish) with them."""
    before = last_prompt(page)
    page.locator(REST).click()
    page.wait_for_function(LAST_PROMPT, arg=[ACTIVE, before, True], timeout=STEP)
    page.wait_for_function(LAST_PROMPT, arg=[ACTIVE, before, False], timeout=STEP)


def lock(lab: Lab, env: str) -> str | None:
    refs = World.load(lab.sandbox).state["github"].get("git", {}).get("refs", {})
    found = refs.get(f"refs/rollback-locks/{env}")
    return str(found) if found else None


def record_comments(lab: Lab, env: str) -> list[RunComment]:
    """Every Path A record comment for ``env`` in the sandbox's GitHub, oldest first."""
    found = []
    for thread in World.load(lab.sandbox).state["github"]["comments"].values():
        for comment in thread:
            record = parse_comment(comment["body"])
            if record is not None and record.env == env:
                found.append(record)
    return found


def machines_run(lab: Lab, app: str) -> set[str]:
    machines = World.load(lab.sandbox).state["fly"]["apps"][app]["machines"]
    return {m["image"] for m in machines}


# -- the tests -------------------------------------------------------------------------------------
def test_run_all_twice_after_the_approval_then_approve_again_finishes_the_rollback(
        lab: Lab, page: Any) -> None:
    """The issue's reproduction: the operator's own kernel never locks them out."""
    open_path_a(page, lab, "staging")
    run_all(page)
    approve(page, "staging")
    assert lock(lab, "staging") is not None
    (first,) = record_comments(lab, "staging")
    assert first.state == "started"

    run_all(page)  # the notebook's own first instruction, again
    shows(page, "The walkthrough's previous run")
    assert lock(lab, "staging") is None  # the run before is over: its lease is released
    (first,) = record_comments(lab, "staging")
    assert first.state == "interrupted" and "Run All Cells" in first.next_step
    run_all(page)
    shows(page, "Dispatch: skipped: not approved")
    assert lock(lab, "staging") is None

    approve(page, "staging")  # not "locked by another rollback"
    expect(page.locator(REST)).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "lockout-approved-again.png"))
    run_the_rest(page)
    shows(page, "Summary: rolled back and verified")
    assert machines_run(lab, "renewa-one-staging") == {"v41"}
    assert lock(lab, "staging") is None
    first, last = record_comments(lab, "staging")
    assert last.state == "succeeded" and last.resumes == first.run_id
    assert first.next_step == f"carried on by run {last.run_id}"
    assert len(World.load(lab.sandbox).state["github"]["runs"]) == 1  # one promote, not two


def test_a_restarted_kernel_finishes_the_run_it_started(lab: Lab, page: Any) -> None:
    """Kernel → Restart: the old kernel's lease goes with it, and the new kernel's run carries
    that run on to the end."""
    open_path_a(page, lab, "development")
    run_all(page)
    approve(page, "development")
    assert lock(lab, "development") is not None
    page.get_by_role("menuitem", name="Kernel", exact=True).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel…$")).click()
    page.locator(".jp-Dialog button.jp-mod-accept").click()  # "Restart"
    wait_for_kernel(page, "path_a_image_rollback-development.ipynb")
    assert lock(lab, "development") is None
    (first,) = record_comments(lab, "development")
    assert first.state == "interrupted" and "kernel was shut down" in first.last_step
    run_all(page)
    approve(page, "development")
    run_the_rest(page)
    shows(page, "Summary: rolled back and verified")
    assert machines_run(lab, "renewa-one-development") == {"v41"}
    first, last = record_comments(lab, "development")
    assert last.state == "succeeded" and last.resumes == first.run_id
    assert lock(lab, "development") is None


def test_stopping_the_lab_mid_run_leaves_no_lease_held(lab: Lab, page: Any) -> None:
    """Approved (the lease taken, the record comment posted) and running: the dispatch cell
    waits for production's second person. Ctrl+C on the lab: the kernel's end releases the
    lease and marks the comment interrupted, with how to carry on."""
    open_path_a(page, lab, "production")
    run_all(page)
    page.locator(f"{ACTIVE} .rb-gate input").fill("production")
    approve(page, "production")
    page.locator(REST).click()
    shows(page, "Waiting for approval by")  # mid-run: a cell is executing, the lease held
    assert lock(lab, "production") is not None
    page.screenshot(path=str(ARTIFACTS / "lockout-mid-run.png"))
    code, leftovers = lab.stop()
    assert code == 0 and leftovers == set()
    assert lock(lab, "production") is None
    (record,) = record_comments(lab, "production")
    assert record.state == "interrupted" and "kernel was shut down" in record.last_step
    assert "press the plan's button" in record.next_step
