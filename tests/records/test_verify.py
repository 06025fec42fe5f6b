"""verify-record's comparison: the record's bytes against the SHA-256 in its run's record comment
(comments in the contract's format, posted on the sandbox's GitHub)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.errors import RecordHashMissing, RecordTampered
from rollback_helpers.records.archive import sha256_hex
from rollback_helpers.records.verify import CachedComments, record_ids, verify_bytes
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.testing import SandboxBackends
from rollback_helpers.ui.display import METADATA_KEY

LOCATION = "s3://records/incidents/20261127T101500Z-staging-path-a.ipynb"
ISSUE = 1010  # the default scenario's staging v42 record


def record_bytes(**block: Any) -> bytes:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Path A")]
    nb.metadata[METADATA_KEY] = {"path": "path-a", "env": "staging", "archive": LOCATION,
                                 "exit_code": 0, **block}
    return (nbformat.writes(nb) + "\n").encode()


def comment_body(run_id: str, sha: str, archive: str = LOCATION) -> str:
    return (f"<!-- rollback-runbook run={run_id} path=path-a env=staging -->\n"
            f"### Rollback run `{run_id}`: Path A — image rollback on staging\n\n"
            f"- **state:** succeeded\n- **archive:** `{archive}`\n- **sha256:** `{sha}`\n")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return create_world("default", tmp_path / "world")


@pytest.fixture
def github(world: World) -> GitHubClient:
    return SandboxBackends.wire(world).github()


def test_a_record_matching_its_published_hash_verifies(github: GitHubClient) -> None:
    """The hash in the run's comment (found by the run id in the record) equals the bytes'."""
    data = record_bytes(run_id="r1", record_issue=ISSUE)
    github.comments.add_comment(ISSUE, comment_body("r0", "0" * 64))  # another run's: not ours
    github.comments.add_comment(ISSUE, comment_body("r1", sha256_hex(data)))
    verified = verify_bytes(LOCATION, data, CachedComments.of(github))
    assert (verified.issue, verified.run_id, verified.sha256) == (ISSUE, "r1", sha256_hex(data))
    assert f"issues/{ISSUE}#issuecomment-" in verified.comment_url


def test_one_changed_byte_is_tampering_named_with_the_record_and_issue(
        github: GitHubClient) -> None:
    """Change a single byte and the comparison fails with exit 8, naming both hashes."""
    data = record_bytes(run_id="r1", record_issue=ISSUE)
    github.comments.add_comment(ISSUE, comment_body("r1", sha256_hex(data)))
    changed = data.replace(b'"exit_code": 0', b'"exit_code": 1')
    assert len(changed) == len(data) and sum(a != b for a, b in zip(data, changed, strict=True)) == 1
    with pytest.raises(RecordTampered) as raised:
        verify_bytes(LOCATION, changed, CachedComments.of(github))
    assert raised.value.exit_code == 8
    assert LOCATION in raised.value.what and f"#{ISSUE}" in raised.value.what
    assert sha256_hex(data) in raised.value.what and sha256_hex(changed) in raised.value.what


def test_no_published_hash_is_its_own_failure(github: GitHubClient) -> None:
    """A comment without a sha256 bullet, or none at all: exit 10, naming record and issue."""
    data = record_bytes(run_id="r1", record_issue=ISSUE)
    github.comments.add_comment(ISSUE, comment_body("r1", "x").replace("- **sha256:** `x`\n", ""))
    with pytest.raises(RecordHashMissing) as raised:
        verify_bytes(LOCATION, data, CachedComments.of(github))
    assert raised.value.exit_code == 10
    assert LOCATION in raised.value.what and f"#{ISSUE}" in raised.value.what


def test_a_record_that_names_no_issue_cannot_be_verified(github: GitHubClient) -> None:
    """A dry run's record has no record comment: exit 10, saying why."""
    with pytest.raises(RecordHashMissing, match="names no deployment-record issue"):
        verify_bytes(LOCATION, record_bytes(run_id="r1"), CachedComments.of(github))


def test_without_a_run_id_the_comment_naming_the_location_is_used(github: GitHubClient) -> None:
    """An older record without a run id: the comment whose archive bullet names it."""
    data = record_bytes(record_issue=ISSUE)
    github.comments.add_comment(ISSUE, comment_body("rX", "1" * 64, archive="elsewhere.ipynb"))
    github.comments.add_comment(ISSUE, comment_body("rY", sha256_hex(data)))
    assert verify_bytes(LOCATION, data, CachedComments.of(github)).run_id == ""
    assert record_ids(data) == (ISSUE, "")


def test_publishing_where_the_runs_comment_is_gone_says_so_and_writes_nothing(
        github: GitHubClient, world: World) -> None:
    """No record comment of the run on its issue: the final edit reports "no comment" and
    publish-record refuses (exit 10) naming the issue, rather than reading a line back."""
    from rollback_helpers.run.publish import publish_record

    data = record_bytes(run_id="r9", record_issue=ISSUE, exit_code=0, outcome="success")
    before = list(World.load(world.state_dir).state["github"]["comments"].get(str(ISSUE), []))
    with pytest.raises(RecordHashMissing,
                       match=f"No record comment of run r9 by runbook-operator found on #{ISSUE}"):
        publish_record(github, LOCATION, data)
    after = World.load(world.state_dir).state["github"]["comments"].get(str(ISSUE), [])
    assert after == before
