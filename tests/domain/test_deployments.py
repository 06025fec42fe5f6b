"""Deployment records: lenient reading, strict values, lazy and drift-aware resolution."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rollback_helpers.domain.deployments import (
    FIELDS,
    BadRecord,
    ConflictingField,
    DeploymentRecord,
    parse_record_fields,
    record_from_issue,
    records_table,
)
from rollback_helpers.domain.rollback_target import RollbackTarget, resolve_rollback_target
from rollback_helpers.errors import (
    DriftDetected,
    ImageRefError,
    NoRollbackTarget,
    PreconditionFailed,
    RecordError,
)

REPO = "registry.fly.io/renewa-one"


def digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def image(name: str) -> str:
    return f"{REPO}@{digest(name)}"


@dataclass(frozen=True)
class FakeIssue:
    number: int
    body: str
    labels: tuple[str, ...] = ("deployment-record", "env:staging")
    title: str = "Deploy"
    state: str = "open"
    created_at: str = "2026-06-10T09:00:00Z"
    html_url: str = "https://github.com/renewa/renewa-one/issues/1"
    author: str = "deploy-bot"


@dataclass(frozen=True)
class FakePullRequest(FakeIssue):
    is_pull_request: bool = field(default=True)


REFERENCE = f"""Deployment record for staging

- env: staging
- app: renewa-one-staging
- image: {image("v42")}
- previous_image: {image("v41")}
- git_sha: 3e1d0c7
- cluster_id: gjpkdon1pn60yln4
- backup_id: backup_1760445047_1a4a7fa7ec8accc4
- workflow_run: https://github.com/renewa/renewa-one/actions/runs/123456789
- deployed_by: some-user
- deployed_at: 2026-06-10T09:14:03Z
"""
REFERENCE_FIELDS = {
    "env": "staging", "app": "renewa-one-staging", "image": image("v42"),
    "previous_image": image("v41"), "git_sha": "3e1d0c7", "cluster_id": "gjpkdon1pn60yln4",
    "backup_id": "backup_1760445047_1a4a7fa7ec8accc4",
    "workflow_run": "https://github.com/renewa/renewa-one/actions/runs/123456789",
    "deployed_by": "some-user", "deployed_at": "2026-06-10T09:14:03Z",
}


def parse(body: str, number: int = 7,
          labels: tuple[str, ...] = ("deployment-record", "env:staging")
          ) -> DeploymentRecord | BadRecord:
    return record_from_issue(FakeIssue(number, body, labels), env="staging")


def bad_reason(body: str) -> str:
    result = parse(body)
    assert isinstance(result, BadRecord), result
    return result.reason


# ---------------------------------------------------------------- body forms


def test_reference_body_parses_into_every_field() -> None:
    """The reference format written by the pipeline yields every documented field."""
    assert parse_record_fields(REFERENCE) == REFERENCE_FIELDS


@pytest.mark.parametrize("line", [
    f"- image: {image('v42')}",
    f"image: {image('v42')}",
    f"* image: {image('v42')}",
    f"**Image:** {image('v42')}",
    f"- **Image**: {image('v42')}",
    f"Image = {image('v42')}",
    f"| image | {image('v42')} |",
    f"| **Image** | `{image('v42')}` |",
    f"- image: `{image('v42')}`",
    f'image: "{image("v42")}"',
    f"image: '{image('v42')}'",
    f"- Image: **{image('v42')}**",
    f"  image:    {image('v42')}   ",
])
def test_each_key_style_yields_the_same_image(line: str) -> None:
    """Bullets, bold keys, `=`, table rows and wrapped values all read as the same field."""
    assert parse_record_fields(f"Some prose.\n{line}\nMore prose.") == {"image": image("v42")}


def test_keys_are_snake_cased_from_spaces_dashes_and_camel_case() -> None:
    """`Previous Image`, `git-sha` and `deployedBy` become previous_image, git_sha, deployed_by."""
    body = f"Previous Image: {image('v41')}\ngit-sha: abc1234\ndeployedBy: me\nEnvironment: staging"
    assert parse_record_fields(body) == {"previous_image": image("v41"), "git_sha": "abc1234",
                                         "deployed_by": "me", "env": "staging"}


def test_markdown_table_with_header_and_separator_rows() -> None:
    """A full Markdown table yields its rows and ignores its header and separator."""
    body = ("| Field | Value |\n|---|---|\n"
            + "".join(f"| {k} | `{v}` |\n" for k, v in REFERENCE_FIELDS.items()))
    assert parse_record_fields(body) == REFERENCE_FIELDS


def test_fenced_yaml_block() -> None:
    """A fenced yaml block holding the keys is read like bullets."""
    body = "Deploy notes\n\n```yaml\n" + "".join(
        f'{k}: "{v}"\n' for k, v in REFERENCE_FIELDS.items()) + "```\nThanks!"
    assert parse_record_fields(body) == REFERENCE_FIELDS


def test_fenced_json_block() -> None:
    """A fenced json block holding the keys is read as JSON."""
    body = "Record:\n```json\n" + json.dumps(REFERENCE_FIELDS, indent=2) + "\n```\n"
    assert parse_record_fields(body) == REFERENCE_FIELDS


def test_fenced_json_block_with_nested_object_and_camel_case_keys() -> None:
    """JSON nesting is flattened and camelCase keys are snake_cased."""
    body = "```json\n" + json.dumps({"deploy": {"image": image("v2"), "previousImage": image("v1"),
                                                 "gitSha": "abc"}}) + "\n```"
    assert parse_record_fields(body) == {"image": image("v2"), "previous_image": image("v1"),
                                         "git_sha": "abc"}


def test_invalid_json_block_falls_back_to_line_reading() -> None:
    """A json block that does not parse (trailing comma) is still read line by line."""
    body = f'```json\n{{\n  "image": "{image("v2")}",\n  "env": "staging",\n}}\n```'
    assert parse_record_fields(body) == {"image": image("v2"), "env": "staging"}


def test_crlf_line_endings() -> None:
    """CRLF bodies (edited in a browser on Windows) parse exactly like LF bodies."""
    assert parse_record_fields(REFERENCE.replace("\n", "\r\n")) == REFERENCE_FIELDS


def test_prose_and_unknown_keys_are_ignored() -> None:
    """Prose, headings and unknown `Note: …` lines add nothing and do not conflict."""
    body = ("# Deploy\nNote: slow\nNote: very slow\nThe image: was fine at 10:00\n"
            + REFERENCE + "\nCheers, the team.")
    assert parse_record_fields(body) == REFERENCE_FIELDS


def test_same_value_twice_is_not_a_conflict() -> None:
    """A key repeated with the same value (bullets plus a yaml block) reads fine."""
    body = REFERENCE + "\n```yaml\nimage: " + image("v42") + "\n```"
    assert parse_record_fields(body)["image"] == image("v42")


def test_key_given_twice_with_different_values_is_a_conflict() -> None:
    """Two different values for one key raise ConflictingField naming the key."""
    with pytest.raises(ConflictingField, match="image"):
        parse_record_fields(f"- image: {image('a')}\n- image: {image('b')}")


def test_conflict_becomes_a_bad_record_naming_the_field() -> None:
    """A record with two different images is a BadRecord whose reason names the field."""
    assert "image field is given twice" in bad_reason(REFERENCE + f"\nimage: {image('x')}\n")


def test_empty_value_counts_as_absent() -> None:
    """`backup_id:` with nothing after it is no backup, and the record is still valid."""
    result = parse(f"- image: {image('v1')}\n- backup_id:\n")
    assert isinstance(result, DeploymentRecord) and result.backup_id == ""


# ---------------------------------------------------------------- issue -> record


def test_reference_issue_becomes_a_full_record() -> None:
    """Every field of the reference body lands in the DeploymentRecord."""
    record = parse(REFERENCE, number=42)
    assert isinstance(record, DeploymentRecord)
    assert (record.number, record.env, record.app) == (42, "staging", "renewa-one-staging")
    assert str(record.image) == image("v42") and str(record.previous_image) == image("v41")
    assert record.backup_id == "backup_1760445047_1a4a7fa7ec8accc4"
    assert record.cluster_id == "gjpkdon1pn60yln4" and not record.rolled_back


def test_record_without_backup_or_cluster_is_valid() -> None:
    """A non-mutating deploy's record (no backup, no cluster) is valid, with empty fields."""
    record = parse(f"- image: {image('v1')}\n")
    assert isinstance(record, DeploymentRecord)
    assert (record.backup_id, record.cluster_id, record.previous_image) == ("", "", None)


def test_rolled_back_label_is_read_case_insensitively() -> None:
    """The rolled-back label marks the record, whatever its case."""
    record = parse(REFERENCE, labels=("deployment-record", "Rolled-Back"))
    assert isinstance(record, DeploymentRecord) and record.rolled_back


def test_missing_image_is_a_bad_record() -> None:
    """A body without an image field is a BadRecord saying so."""
    assert "No image field" in bad_reason("- env: staging\n- git_sha: abc\n")


def test_empty_and_none_bodies_are_bad_records() -> None:
    """An issue with an empty body is reported, not crashed on."""
    assert "No image field" in bad_reason("")
    result = record_from_issue(FakeIssue(1, None), env="staging")  # type: ignore[arg-type]
    assert isinstance(result, BadRecord)


@pytest.mark.parametrize(("value", "expected"), [
    (f"{REPO}:v42", "not pinned"),
    (f"{REPO}:{digest('a')}", "joins the digest with ':'"),
    (f"{REPO}@{digest('a')[:19]}", "characters after 'sha256:'"),
    (f"{REPO}@{digest('a').upper().replace('SHA256', 'sha256')}", "upper-case hex"),
    (f"{REPO}@{digest('a')},{REPO}@{digest('b')}", "more than one digest"),
    (f"{REPO}@{digest('a')} {REPO}@{digest('b')}", "whitespace"),
    (f"{REPO}@{digest('a')[:30]} {digest('a')[30:]}", "whitespace"),
])
def test_malformed_image_is_a_bad_record_with_the_reason(value: str, expected: str) -> None:
    """Every kind of unpinned or damaged image value is reported, naming the image field."""
    reason = bad_reason(f"- image: {value}\n")
    assert expected in reason and "image field" in reason


def test_two_images_in_a_json_list_is_a_bad_record() -> None:
    """A JSON list of images in one field is two digests, reported rather than picked from."""
    body = "```json\n" + json.dumps({"image": [image("a"), image("b")]}) + "\n```"
    assert "more than one digest" in bad_reason(body)


def test_malformed_previous_image_is_a_bad_record() -> None:
    """A present but unpinned previous_image makes the record bad, naming previous_image."""
    reason = bad_reason(f"- image: {image('v2')}\n- previous_image: {REPO}:v1\n")
    assert "previous_image field" in reason and "not pinned" in reason


def test_env_mismatch_is_a_bad_record() -> None:
    """A body saying env production, listed for staging, is bad and names both envs."""
    reason = bad_reason(REFERENCE.replace("env: staging", "env: production"))
    assert "'production'" in reason and "'staging'" in reason


@pytest.mark.parametrize("value", ["1760445047", "backup_abc_123", "backup_1760445047_XYZ",
                                   "snapshot_1_ab"])
def test_malformed_backup_id_is_a_bad_record(value: str) -> None:
    """A backup_id not like backup_<digits>_<hex> is reported, naming backup_id."""
    assert "backup_id" in bad_reason(f"- image: {image('v1')}\n- backup_id: {value}\n")


@pytest.mark.parametrize("value", ["GJPKDON1PN60YLN4", "short", "gjpk-don1-pn60", "a" * 33])
def test_malformed_cluster_id_is_a_bad_record(value: str) -> None:
    """A cluster_id that is not 8-32 lowercase alphanumerics is reported, naming cluster_id."""
    assert "cluster_id" in bad_reason(f"- image: {image('v1')}\n- cluster_id: {value}\n")


def test_pull_request_is_not_a_record() -> None:
    """A pull request handed in by mistake becomes a BadRecord, not a deployment."""
    result = record_from_issue(FakePullRequest(9, REFERENCE), env="staging")
    assert isinstance(result, BadRecord) and "pull request" in result.reason


# ---------------------------------------------------------------- resolution helpers


def rec(number: int, name: str, *, rolled_back: bool = False, env: str = "staging",
        backup: str = "") -> DeploymentRecord:
    from rollback_helpers.domain.images import parse_image_ref
    return DeploymentRecord(
        number=number, env=env, app="renewa-one-staging", image=parse_image_ref(image(name)),
        previous_image=None, git_sha="abc1234", cluster_id="", backup_id=backup,
        workflow_run="", deployed_by="deploy-bot", deployed_at="", created_at=f"t{number}",
        url=f"https://example/issues/{number}", rolled_back=rolled_back)


def bad(number: int, reason: str = "No image field") -> BadRecord:
    return BadRecord(number, reason, f"t{number}", f"https://example/issues/{number}")


def history(*versions: str) -> list[DeploymentRecord]:
    """Records for these versions, newest last in the arguments, returned newest first."""
    return [rec(100 + i, v) for i, v in enumerate(versions)][::-1]


def resolve(records: Iterable[DeploymentRecord | BadRecord], running: str, *,
            target_digest: str | None = None, allow_unrecorded_target: bool = False,
            repository: str | None = None) -> RollbackTarget:
    return resolve_rollback_target(records, env="staging", running_digest=digest(running),
                                   target_digest=target_digest, repository=repository,
                                   allow_unrecorded_target=allow_unrecorded_target)


# ---------------------------------------------------------------- resolution


def test_target_is_the_record_before_the_running_one() -> None:
    """With v42 running and recorded, the target is v41's record."""
    result = resolve(history("v39", "v40", "v41", "v42"), "v42")
    assert result.bad_record is not None and result.bad_record.number == 103
    assert result.target is not None and result.target.number == 102
    assert str(result.image) == image("v41") and not result.explicit
    assert [r.number for r in result.examined] == [103, 102] and result.skipped == ()


def test_running_digest_may_be_a_full_image_reference() -> None:
    """`repo@sha256:…` as running_digest is reduced to its digest."""
    result = resolve_rollback_target(history("v1", "v2"), env="staging",
                                     running_digest=image("v2"))
    assert result.running_digest == digest("v2") and str(result.image) == image("v1")


def test_rolled_back_records_are_skipped_and_reported() -> None:
    """A record labelled rolled-back is never the bad record nor the target, and is listed."""
    records = [rec(104, "v42", rolled_back=True), rec(103, "v41"), rec(102, "v40")]
    result = resolve(records, "v41")
    assert result.bad_record is not None and result.bad_record.number == 103
    assert str(result.image) == image("v40")
    assert (104, "labelled rolled-back") in result.skipped


def test_second_rollback_does_not_ping_pong() -> None:
    """After v42 was rolled back to v41, a second rollback goes to v40, not back to v42."""
    first = resolve(history("v40", "v41", "v42"), "v42")
    assert str(first.image) == image("v41")
    after = [rec(102, "v42", rolled_back=True), rec(101, "v41"), rec(100, "v40")]
    assert str(resolve(after, "v41").image) == image("v40")


def test_second_rollback_with_a_new_record_for_the_rollback_deploy() -> None:
    """If the pipeline recorded the rollback deploy itself, older copies of v41 are skipped too."""
    records = [rec(104, "v41"), rec(103, "v42", rolled_back=True), rec(102, "v41"),
               rec(101, "v40")]
    result = resolve(records, "v41")
    assert result.bad_record is not None and result.bad_record.number == 104
    assert result.target is not None and result.target.number == 101
    assert (102, "same image as running") in result.skipped


def test_a_bad_record_before_the_target_stops_resolution_never_guessed() -> None:
    """A malformed record newer than the target stops with RecordError naming it: never step over it."""
    records: list[DeploymentRecord | BadRecord] = [
        rec(105, "v42"), bad(104, "The image field 'x:v41' is not pinned"), rec(103, "v40")]
    with pytest.raises(RecordError, match=r"#104 for staging is malformed: .*not pinned"):
        resolve(records, "v42")


def test_a_malformed_newest_record_stops_resolution() -> None:
    """A malformed newest issue may be the bad deploy itself, so resolution stops there."""
    with pytest.raises(RecordError, match="#106"):
        resolve([bad(106), rec(105, "v42"), rec(104, "v41")], "v42")


def test_bad_records_older_than_the_target_are_never_read() -> None:
    """Records older than the target do not matter: a bad one there does not stop the rollback."""
    result = resolve([rec(105, "v42"), rec(104, "v41"), bad(103)], "v42")
    assert str(result.image) == image("v41")


def test_an_explicit_target_steps_over_bad_records_and_reports_them() -> None:
    """With target_digest named, the target is the one named, not the one the records give,
    and bad records on the way are listed with their reason, not fatal."""
    good: list[DeploymentRecord | BadRecord] = [rec(105, "v42"), rec(103, "v41"), rec(102, "v40")]
    automatic = resolve_rollback_target(good, env="staging", running_digest=digest("v42"))
    assert str(automatic.image) == image("v41") and not automatic.explicit
    records = [*good[:1], bad(104, "The image field 'x:v41' is not pinned"), *good[1:]]
    result = resolve_rollback_target(records, env="staging", running_digest=digest("v42"),
                                     target_digest=digest("v40"))
    assert str(result.image) == image("v40") and result.explicit
    assert (104, "bad record: The image field 'x:v41' is not pinned") in result.skipped


def test_drift_stops_and_shows_both_digests() -> None:
    """When Fly runs something other than the newest record, DriftDetected names both."""
    with pytest.raises(DriftDetected) as caught:
        resolve(history("v40", "v41", "v42"), "hotfix")
    message = str(caught.value)
    assert "#102" in message and digest("v42") in message and digest("hotfix") in message
    assert "staging" in message and "target_digest=" in caught.value.next_step
    assert "outside the pipeline" in caught.value.next_step


def test_no_records_at_all() -> None:
    """An empty history raises NoRollbackTarget naming the env and the labels."""
    with pytest.raises(NoRollbackTarget,
                       match="no deployment records labelled deployment-record and env:staging "
                             "for env staging"):
        resolve([], "v1")


def test_no_records_names_the_configured_labels() -> None:
    """The "no records" message names the labels the configuration searched for."""
    with pytest.raises(NoRollbackTarget, match="labelled deploy and stage-env for env staging"):
        resolve_rollback_target([], env="staging", running_digest=digest("v1"),
                                record_labels=("deploy", "stage-env"))


def test_only_bad_records() -> None:
    """A history of only bad records stops at the newest, naming it."""
    with pytest.raises(RecordError, match="#2 for staging is malformed"):
        resolve([bad(2), bad(1)], "v1")


def test_no_older_different_record() -> None:
    """With only the running image recorded, NoRollbackTarget names env, record and next step."""
    with pytest.raises(NoRollbackTarget) as caught:
        resolve([rec(3, "v1"), rec(2, "v1", rolled_back=True)], "v1")
    assert "staging" in caught.value.what and "#3" in caught.value.what
    assert "target_digest=" in caught.value.next_step


def test_records_for_another_env_are_skipped() -> None:
    """A record whose env is not the one resolved is passed over, never chosen."""
    result = resolve([rec(3, "v2"), rec(2, "v1", env="production"), rec(1, "v0")], "v2")
    assert result.target is not None and result.target.number == 1
    assert (2, "a record for production, not staging") in result.skipped


# ---------------------------------------------------------------- laziness


def guarded(records: Sequence[DeploymentRecord | BadRecord], limit: int
            ) -> Iterator[DeploymentRecord | BadRecord]:
    for i, record in enumerate(records):
        if i >= limit:
            raise AssertionError(f"read record {i + 1}, more than the {limit} needed")
        yield record


def test_resolution_reads_only_the_newest_records_of_a_long_history() -> None:
    """In a 10,000-record history, resolution reads the two newest records and stops."""
    records = history(*(f"v{i}" for i in range(10_000)))
    result = resolve(guarded(records, limit=2), "v9999")
    assert str(result.image) == image("v9998") and len(result.examined) == 2


def test_resolution_past_skipped_records_reads_only_what_it_needs() -> None:
    """Skipped records are read, but nothing after the target is."""
    records: list[DeploymentRecord | BadRecord] = [
        rec(9, "v3", rolled_back=True), rec(8, "v2"), rec(7, "v2"), rec(6, "v1"),
        *history(*(f"old{i}" for i in range(1000)))]
    result = resolve(guarded(records, limit=4), "v2")
    assert str(result.image) == image("v1") and len(result.examined) == 4


def test_explicit_known_target_stops_at_its_record() -> None:
    """An explicit target known to a recent record reads no further than that record."""
    records = history(*(f"v{i}" for i in range(10_000)))
    result = resolve(guarded(records, limit=3), "v9999", target_digest=digest("v9997"))
    assert result.target is not None and result.target.number == 100 + 9997


# ---------------------------------------------------------------- explicit target


def test_explicit_bare_digest_takes_the_repository_of_its_record() -> None:
    """target_digest=sha256:… resolves to the recorded image, marked explicit."""
    result = resolve(history("v40", "v41", "v42"), "v42", target_digest=digest("v40"))
    assert result.explicit and str(result.image) == image("v40")
    assert result.target is not None and result.target.number == 100
    assert result.bad_record is not None and result.bad_record.number == 102


def test_explicit_full_reference_is_accepted() -> None:
    """target_digest=repo@sha256:… is accepted and used as given."""
    result = resolve(history("v40", "v41"), "v41", target_digest=image("v40"))
    assert str(result.image) == image("v40")


def test_explicit_target_overrides_drift() -> None:
    """With drift, naming the target explicitly resolves instead of raising."""
    result = resolve(history("v40", "v41", "v42"), "hotfix", target_digest=digest("v41"))
    assert str(result.image) == image("v41") and result.bad_record is None


def test_explicit_unknown_target_is_refused() -> None:
    """A target no record knows raises RecordError telling how to confirm it."""
    with pytest.raises(RecordError) as caught:
        resolve(history("v40", "v41"), "v41", target_digest=digest("elsewhere"))
    assert digest("elsewhere") in caught.value.what
    assert "allow_unrecorded_target=True" in caught.value.next_step


def test_explicit_unknown_target_allowed_with_repository() -> None:
    """An unrecorded bare digest is accepted when allowed, with the given repository."""
    result = resolve(history("v40", "v41"), "v41", target_digest=digest("x"),
                     allow_unrecorded_target=True, repository=REPO)
    assert result.target is None and str(result.image) == image("x") and result.explicit


def test_explicit_unknown_full_reference_allowed_without_repository() -> None:
    """An unrecorded full reference needs no repository argument."""
    result = resolve([], "v41", target_digest=image("x"), allow_unrecorded_target=True)
    assert str(result.image) == image("x")


def test_explicit_unknown_bare_digest_without_repository_is_refused() -> None:
    """An unrecorded bare digest with no repository is refused rather than guessed."""
    with pytest.raises(ImageRefError, match="repository"):
        resolve([], "v41", target_digest=digest("x"), allow_unrecorded_target=True)


def test_explicit_target_same_as_running_is_refused() -> None:
    """Naming the running image as the target fails with 'already running'."""
    with pytest.raises(PreconditionFailed, match="already running"):
        resolve(history("v40", "v41"), "v41", target_digest=digest("v41"))


@pytest.mark.parametrize("value", [
    f"{REPO}:v40", f"{REPO}:{digest('v40')}", digest("v40")[:19], digest("v40").upper(),
    f"{digest('a')} ", f"{digest('a')}{digest('b')[6:]}",
])
def test_explicit_malformed_target_is_refused(value: str) -> None:
    """A malformed target_digest raises ImageRefError before any record is read."""
    with pytest.raises(ImageRefError):
        resolve(guarded([], limit=0), "v41", target_digest=value)


def test_empty_target_digest_means_not_given() -> None:
    """target_digest="" (an empty notebook parameter) resolves from the records."""
    assert str(resolve(history("v1", "v2"), "v2", target_digest="").image) == image("v1")


# ---------------------------------------------------------------- display


def test_records_table_rows() -> None:
    """One row per record with short digests and a status of valid, rolled-back or bad."""
    rows = records_table([rec(3, "v3", backup="backup_1_ab"), rec(2, "v2", rolled_back=True),
                          bad(1, "No image field")])
    assert [r["status"] for r in rows] == ["valid", "rolled-back", "bad: No image field"]
    assert rows[0]["image"] == digest("v3")[:19] and rows[0]["backup_id"] == "backup_1_ab"
    assert set(rows[2]) == {"number", "created", "image", "previous", "git_sha", "backup_id",
                            "status"}


# ---------------------------------------------------------------- properties

HEX = "0123456789abcdef"
hex64 = st.text(HEX, min_size=64, max_size=64)
name = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
field_values = {
    "env": st.just("staging"),
    "app": st.builds(lambda n: f"renewa-{n}", name),
    "image": st.builds(lambda h: f"{REPO}@sha256:{h}", hex64),
    "previous_image": st.builds(lambda n, h: f"registry.fly.io/{n}@sha256:{h}", name, hex64),
    "git_sha": st.text(HEX, min_size=7, max_size=40),
    "cluster_id": st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=32),
    "backup_id": st.builds(lambda d, h: f"backup_{d}_{h}", st.integers(0, 2**40),
                           st.text(HEX, min_size=1, max_size=16)),
    "workflow_run": st.builds(lambda n: f"https://github.com/o/r/actions/runs/{n}",
                              st.integers(1, 10**12)),
    "deployed_by": name,
    "deployed_at": st.just("2026-06-10T09:14:03Z"),
}


@st.composite
def record_fields(draw: st.DrawFn) -> dict[str, str]:
    optional = draw(st.sets(st.sampled_from([f for f in FIELDS if f != "image"])))
    return {k: draw(field_values[k]) for k in FIELDS if k == "image" or k in optional}


def key_spelling(key: str, style: int) -> str:
    words = key.split("_")
    return [key, key.replace("_", " ").title(), key.upper().replace("_", "-"),
            words[0] + "".join(w.title() for w in words[1:])][style]


LINE_STYLES = [
    lambda k, v: f"- {k}: {v}", lambda k, v: f"{k}: `{v}`", lambda k, v: f"**{k}:** {v}",
    lambda k, v: f"- **{k}**: `{v}`", lambda k, v: f"{k} = {v}", lambda k, v: f"| {k} | {v} |",
    lambda k, v: f'{k}: "{v}"', lambda k, v: f"* {k}: '{v}'",
]

prose_line = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60)


@st.composite
def rendered(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    fields = draw(record_fields())
    block = draw(st.sampled_from(["lines", "yaml", "json"]))
    if block == "json":
        lines = ["```json", json.dumps(fields, indent=draw(st.sampled_from([None, 2]))), "```"]
    else:
        lines = [draw(st.sampled_from(LINE_STYLES))(key_spelling(k, draw(st.integers(0, 3))), v)
                 for k, v in fields.items()]
        lines = draw(st.permutations(lines))
        if block == "yaml":
            lines = ["```yaml", *lines, "```"]
    before, after = draw(st.lists(prose_line, max_size=4)), draw(st.lists(prose_line, max_size=4))
    for line in before + after:
        assume(not parse_record_fields(line) and "```" not in line and "~~~" not in line)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join([*before, *lines, *after]), fields


@settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])
@given(rendered())
def test_parser_round_trips_fields_in_any_supported_style(case: tuple[str, dict[str, str]]
                                                          ) -> None:
    """Fields rendered in any supported style, amid prose, read back exactly."""
    body, fields = case
    assert parse_record_fields(body) == fields
    record = record_from_issue(FakeIssue(1, body), env="staging")
    assert isinstance(record, DeploymentRecord), record
    assert str(record.image) == fields["image"]
    assert record.backup_id == fields.get("backup_id", "")


fragments = st.one_of(
    prose_line,
    st.sampled_from(["- image: ", "**Image:** ", "| image | ", "```json", "```yaml", "```",
                     "previous_image = ", "backup_id: ", "cluster_id: ", "env: ", "{", "}",
                     '"image": ', "sha256:", "@", "|", "\r", "\r\n", "`", "**"]),
    st.builds(lambda h: f"{REPO}@sha256:{h}", st.text(HEX + "ABC", max_size=70)),
)


@settings(max_examples=400)
@given(st.one_of(st.text(), st.lists(fragments, max_size=30).map("".join),
                 st.lists(fragments, max_size=30).map("\n".join)))
def test_junk_bodies_only_ever_give_the_documented_outcomes(body: str) -> None:
    """Arbitrary bodies yield a DeploymentRecord or a BadRecord, never an exception."""
    result = record_from_issue(FakeIssue(5, body), env="staging")
    assert isinstance(result, DeploymentRecord | BadRecord)
    if isinstance(result, BadRecord):
        assert result.reason and result.number == 5
    try:
        parse_record_fields(body)
    except ConflictingField as exc:
        assert exc.key in FIELDS


def test_a_recorded_digest_under_another_repository_is_refused() -> None:
    """``evil.io/x@<a recorded digest>`` is not the recorded image: the digest alone does not
    vouch for another registry's repository (exit 2, naming the app's)."""
    from rollback_helpers.errors import ImageRefError

    records = history("v40", "v41", "v42")
    with pytest.raises(ImageRefError, match="evil.io/x") as raised:
        resolve(records, "v42", target_digest=f"evil.io/x@{digest('v41')}")
    assert raised.value.exit_code == 2
    assert image("v41").split("@")[0] in str(raised.value)
    same = resolve(records, "v42", target_digest=image("v41"))  # the app's own repository
    assert str(same.image) == image("v41")
    with pytest.raises(ImageRefError, match="evil.io/x"):  # unrecorded: the app's repository
        resolve(records, "v42", target_digest=f"evil.io/x@{digest('v9')}",
                allow_unrecorded_target=True, repository=image("v41").split("@")[0])
