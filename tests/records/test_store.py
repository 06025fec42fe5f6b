"""The records store: write-once in a local folder, in S3 (a real endpoint on loopback) and in a
GitHub repository (the sandbox); a location that cannot be written is a bad input, up front."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.errors import ConfigError, RecordMissing, RecordStoreError
from rollback_helpers.records.archive import incidents_location
from rollback_helpers.records.store import (
    GitHubStore,
    RecordStore,
    StoredRecord,
    open_store,
    parse_github_location,
    split_location,
)
from rollback_helpers.run.backends import github_factory
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.testing import SandboxBackends, StoreNonconformance, exercise_write_once


def same_bytes(data: bytes) -> Callable[[str], bytes]:
    return lambda _location: data


class Overwriting(RecordStore):
    """A store that breaks the rule: it overwrites a taken name."""

    def __init__(self, location: str = "memory://x") -> None:
        self.location = location
        self.files: dict[str, bytes] = {}

    def check_writable(self) -> None:
        pass

    def _create(self, name: str, data: bytes) -> bool:
        self.files[name] = data
        return True

    def list_records(self) -> list[StoredRecord]:
        return [StoredRecord(n, self.location_of(n)) for n in sorted(self.files)]

    def read(self, name: str) -> bytes:
        if name not in self.files:
            raise RecordMissing(f"No record at {self.location_of(name)}.", "")
        return self.files[name]

    def child(self, folder: str) -> RecordStore:
        return Overwriting(self.location_of(folder))


def test_the_conformance_check_fails_a_store_that_overwrites() -> None:
    """The public check itself: a store that overwrites a taken name does not pass."""
    with pytest.raises(StoreNonconformance, match="a taken name became 'a.ipynb'"):
        exercise_write_once(Overwriting())


# -- local ---------------------------------------------------------------------------------------
def test_a_local_folder_is_write_once(tmp_path: Path) -> None:
    """A local folder (the default kind) is created on demand and never overwritten."""
    exercise_write_once(open_store(str(tmp_path / "incidents")))


def test_a_local_folder_renders_a_record_once_however_often_its_name_is_taken(
        tmp_path: Path) -> None:
    """Repeated drills share a name stamp: the folder's listing skips the taken names, so
    the record is rendered for the free one only, not once per name tried."""
    store = open_store(str(tmp_path / "incidents"))
    store.check_writable()
    for _ in range(5):
        store.put_new("run.ipynb", same_bytes(b"{}"))
    rendered: list[str] = []

    def render(location: str) -> bytes:
        rendered.append(location)
        return location.encode()

    stored, data = store.put_new("run.ipynb", render)
    assert stored.name == "run-6.ipynb" and rendered == [stored.location]
    assert data == stored.location.encode()


def test_a_name_taken_after_the_listing_still_moves_the_record_on(tmp_path: Path) -> None:
    """The listing only saves work: a name another operator took since is refused by the
    write itself, and the record goes to the next one."""
    store = open_store(str(tmp_path / "incidents"))
    store.check_writable()
    folder = tmp_path / "incidents"

    def render(location: str) -> bytes:
        if not (folder / "run.ipynb").exists():
            (folder / "run.ipynb").write_bytes(b"theirs")  # another writer, after the listing
        return location.encode()

    stored, _ = store.put_new("run.ipynb", render)
    assert stored.name == "run-2.ipynb"
    assert (folder / "run.ipynb").read_bytes() == b"theirs"


@pytest.mark.parametrize(("location", "said"), [
    ("s3:/bucket/x", "looks like a URL but is not one"),
    ("foo://bucket/x", "unknown scheme foo://"),
    ("gs://bucket/x", "needs gcsfs, which is not installed"),
    ("github://only-an-owner", "not a GitHub records location"),
])
def test_a_location_that_cannot_be_written_is_a_config_error(location: str, said: str,
                                                            tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """An unknown scheme, a missing handler or a malformed URL is exit 2 — and nothing local."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=said) as raised:
        open_store(location, github=lambda repo: pytest.fail("GitHub is not reached")
                   ).check_writable()
    assert raised.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []  # no folder named "s3:" (or anything else)


def test_drills_go_under_the_configured_store_and_an_explicit_one_is_used_as_given() -> None:
    """drills/ under the configured store; --incidents-dir exactly as given."""
    assert incidents_location("s3://b/inc", drill=True) == "s3://b/inc/drills"
    assert incidents_location("s3://b/inc/", drill=False) == "s3://b/inc/"
    assert incidents_location("incidents", explicit="/tmp/x", drill=True) == "/tmp/x"


def test_a_record_location_splits_into_its_store_and_name() -> None:
    """A path or URL to a record reads back through the store that holds it."""
    store, name = split_location("s3://bucket/inc/drills/r.ipynb")
    assert (store.location, name) == ("s3://bucket/inc/drills", "r.ipynb")
    with pytest.raises(ConfigError, match="does not name a record"):
        split_location("s3://bucket/inc/")
    assert parse_github_location("github://acme/recs@records/inc/drills") == (
        "acme/recs", "records", "inc/drills")
    assert parse_github_location("github://acme/recs") == ("acme/recs", "", "")


# -- S3, on a real endpoint ------------------------------------------------------------------------
def test_an_s3_bucket_is_write_once(s3_bucket: str) -> None:
    """s3://bucket/prefix through s3fs against the loopback endpoint: the same guarantees
    (a taken name is refused by S3's own conditional write, not by a listing)."""
    exercise_write_once(open_store(f"s3://{s3_bucket}/incidents"))


def test_s3_without_a_bucket_or_credentials_is_refused_up_front(
        s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No bucket, or no credentials: ConfigError naming the location; no secret in the text."""
    with pytest.raises(ConfigError, match="s3://no-such-bucket-x/inc.*does not exist"):
        open_store("s3://no-such-bucket-x/inc").check_writable()
    secret = "s3-secret-never-printed-0123456789"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="no credentials in the environment") as raised:
        open_store(f"s3://{s3_bucket}/inc").check_writable()
    assert "AWS_ACCESS_KEY_ID" in raised.value.next_step and secret not in str(raised.value)
    from rollback_helpers.secrets import redact

    assert redact(f"signature computed with {secret}") == "signature computed with ****"


# -- GitHub, on the sandbox -------------------------------------------------------------------------
@pytest.fixture
def world(tmp_path: Path) -> World:
    return create_world("default", tmp_path / "world")


def sandbox_github(world: World) -> Callable[[str], GitHubClient]:
    return SandboxBackends.wire(world).github


def test_a_github_folder_is_write_once(world: World) -> None:
    """github://OWNER/REPO@BRANCH/FOLDER through the contents API: the same guarantees."""
    exercise_write_once(GitHubStore("github://renewa/renewa-one@main/incidents",
                                    sandbox_github(world)))
    files = world.state["github"]["files"]
    assert {"incidents/a.ipynb", "incidents/a-2.ipynb", "incidents/drills/d.ipynb"} <= set(files)


def test_a_large_github_record_reads_back_through_the_blobs_api(world: World) -> None:
    """Over GitHub's 1 MB inline limit the bytes still come back exactly."""
    store = GitHubStore("github://renewa/renewa-one/incidents", sandbox_github(world))
    big = b"{" + b"x" * (1024 * 1024 + 100) + b"}"
    store.put_new("big.ipynb", same_bytes(big))
    assert store.read("big.ipynb") == big


@pytest.mark.parametrize(("location", "fault", "said"), [
    ("github://renewa/renewa-one@records/incidents", None, "branch 'records' does not exist"),
    ("github://renewa/renewa-one/incidents", "contents_read_only", "cannot push"),
    ("github://someone/else/incidents", None, "404"),
])
def test_an_unwritable_github_location_is_refused_up_front(world: World, location: str,
                                                          fault: str | None, said: str) -> None:
    """A missing branch, a token without push, an unknown repository: exit 2, named."""
    if fault:
        world.state["github"].setdefault("faults", {})[fault] = True
    with pytest.raises(ConfigError, match=said) as raised:
        GitHubStore(location, sandbox_github(world)).check_writable()
    assert location in raised.value.what


def test_github_without_a_token_is_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GITHUB_TOKEN/GH_TOKEN: the GitHub store is a bad input that says how to set one."""
    from rollback_helpers.domain.config import RunbookConfig

    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    monkeypatch.setenv("PATH", "")  # nor `gh auth token`
    store = open_store("github://acme/records/inc", github=github_factory(RunbookConfig()))
    with pytest.raises(ConfigError, match="No GitHub token") as raised:
        store.check_writable()
    assert "GITHUB_TOKEN" in raised.value.next_step


def test_a_record_at_the_root_is_in_the_root_folder(tmp_path: Path) -> None:
    """"/r.ipynb" is in "/", "r.ipynb" in the working directory."""
    store, name = split_location("/r.ipynb")
    assert (store.location, name) == ("/", "r.ipynb")
    store, name = split_location("r.ipynb")
    assert (store.location, name) == (".", "r.ipynb")


def test_a_protected_branch_is_refused_up_front_by_its_rules(world: World) -> None:
    """check reads the branch's rules (GET /repos/{o}/{r}/rules/branches/{branch}): a ruleset that
    requires pull requests is exit 2 naming the rule, before any run."""
    world.state["github"]["branch_rules"] = {"main": [{"type": "pull_request"}]}
    store = GitHubStore("github://renewa/renewa-one@main/incidents", sandbox_github(world))
    with pytest.raises(ConfigError, match="pull_request") as raised:
        store.check_writable()
    assert "branch 'main'" in raised.value.what


def test_a_409_stops_the_write_at_once_naming_the_branch_rule(world: World) -> None:
    """A 409 (a rule violation) is not "name taken": one PUT, then an error naming the rule,
    never 999 names tried one after another."""
    world.state["github"]["branch_rules"] = {"main": [{"type": "pull_request"}]}
    store = GitHubStore("github://renewa/renewa-one@main/incidents", sandbox_github(world))
    before = len(world.calls())
    with pytest.raises(RecordStoreError, match="Repository rule violations found") as raised:
        store.put_new("run.ipynb", same_bytes(b"{}"))
    puts = [c for c in world.calls()[before:] if str(c.get("call", "")).startswith("PUT ")]
    assert len(puts) == 1, puts
    assert "rules" in raised.value.next_step


def test_a_github_store_lists_beyond_the_1000_entry_cap(world: World) -> None:
    """1,005 records in one folder: the contents API lists 1,000, the git trees API the rest."""
    files = world.state["github"].setdefault("files", {})
    for n in range(1005):
        files[f"incidents/r{n:04}.ipynb"] = "{}"
    store = GitHubStore("github://renewa/renewa-one/incidents", sandbox_github(world))
    records = store.list_records()
    assert len(records) == 1005 and records[-1].name == "r1004.ipynb"
    assert records[0].location == "github://renewa/renewa-one/incidents/r0000.ipynb"


def test_a_full_disk_leaves_no_file_under_the_records_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes go to a temporary name first: a write that fails (ENOSPC) leaves neither a
    truncated record that history would list nor the temporary file."""
    import errno
    import os

    store = open_store(str(tmp_path / "incidents"))

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RecordStoreError, match="No space left"):
        store.put_new("run.ipynb", same_bytes(b"{" + b"x" * 10_000 + b"}"))
    assert list((tmp_path / "incidents").iterdir()) == []
    assert store.list_records() == []


def test_an_incidents_folder_replaced_by_a_file_is_named_as_such(tmp_path: Path) -> None:
    """Not "already holds 1000 records": the folder is a file now, said at the first write."""
    store = open_store(str(tmp_path / "incidents"))
    store.check_writable()
    (tmp_path / "incidents").rmdir()
    (tmp_path / "incidents").write_text("not a folder")
    with pytest.raises(RecordStoreError, match="is a file, not a folder"):
        store.put_new("run.ipynb", same_bytes(b"{}"))
