"""What a scenario file may say, as one pydantic model (``docs/scenarios.md`` describes each key).

A scenario is validated once, when it is loaded: a wrong type, a number out of
range or an unknown key is a :class:`~rollback_helpers.errors.ConfigError` (exit 2)
naming the file and the dotted key, before any world is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rollback_helpers.clock import parse_iso
from rollback_helpers.domain.validation import Seconds, Switch, Text, bad_input

Count = Annotated[int, Field(ge=0, strict=True)]
Names = Annotated[list[Text], Field(strict=True)]
ClusterId = Annotated[Text, Field(pattern=r"^[a-z0-9]{16}$")]
RequestNumbers = Annotated[list[Annotated[int, Field(gt=0, strict=True)]], Field(strict=True)]
ACCEPTED = {
    "start": "an RFC 3339 UTC time, e.g. 2026-06-10T09:00:00Z",
    "cluster_id": "16 lower-case letters and digits",
    "restored_cluster_id": "16 lower-case letters and digits",
    "*": "the keys documented in docs/scenarios.md",
}


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GitHubSpec(_Table):
    repo: Annotated[Text, Field(pattern=r"^[^/\s]+/[^/\s]+$")] = "renewa/renewa-one"
    files: dict[str, Text] = {}
    permissions: dict[Literal["admin", "maintain", "push", "triage", "pull"], Switch] = {}
    token_scopes: Names = []


class InFlightSpec(_Table):
    env: Text = "staging"
    image: Text | None = None
    actor: Text = "dana"
    started: Seconds = 30


class WorkflowSpec(_Table):
    file: Text = "promote-image.yml"
    id: Annotated[int, Field(gt=0)] = 48151623
    queue_time: Seconds = 5
    duration: Seconds = 90
    conclusion: Text = "success"
    dispatch: Literal["details", "legacy"] = "details"
    state: Text = "active"
    in_flight: InFlightSpec | None = None


class FaultSpec(_Table):
    token: Literal["valid", "expired"] = "valid"
    rate_limit_on: RequestNumbers = []
    secondary_limit_on: RequestNumbers = []
    server_error_on: RequestNumbers = []
    dispatch_after_accept: Literal["", "drop", "timeout", "502"] = ""
    comment_after_accept: Literal["", "drop", "timeout", "502"] = ""
    transferred: Names = []
    transfer_after: Seconds = 60
    stale_lock: Text = ""


class LatencySpec(_Table):
    """Seconds per call of each seam, spent on the virtual clock (``sandbox/core/latency.py``)."""
    github: Seconds = 0
    flyctl: Seconds = 0
    health: Seconds = 0
    metrics: Seconds = 0


class FlySpec(_Table):
    org: Text = "renewa"
    restore_seconds: Seconds = 240
    restore_outcome: Literal["ready", "error"] = "ready"
    proxy_fault: Literal["bind"] | None = None
    ssh_latency: Seconds = 0
    logged_in: Switch = True
    email: Text = "oncall@renewa.example"


class ClusterSpec(_Table):
    name: Text | None = None
    status: Text = "ready"
    attached_apps: Names = []
    region: Text = "fra"
    plan: Text = "basic"
    direct_ip: Text = ""


class EnvironmentSpec(_Table):
    app: Text
    repository: Text = "registry.fly.io/renewa-one"
    deploys: Annotated[Names, Field(min_length=1)]  # the records and the running image come from them
    running: Text | None = None
    unhealthy: Names = []
    extra_images: Names = []
    machines: Annotated[int, Field(ge=1, le=64)] = 2
    machine_states: Names | None = None
    region: Text = "fra"
    secrets: dict[str, Text] = {}
    health_status: Annotated[int, Field(ge=100, le=599)] | None = None
    record_bodies: dict[str, Text] = {}
    extra_labels: dict[str, Names] = {}
    pull_requests_after: dict[str, Count] = {}
    backups: dict[str, Text] = {}
    cluster_id: ClusterId | None = None
    database: Switch = False
    database_on_demand: Switch = False  # metadata-only until a restore or a tunnel needs a server
    cluster_name: Text | None = None
    plan: Text = "basic"
    direct_ip: Text = ""
    older_backups: Count = 2
    backup_status: Text = "completed"
    destructive_migration: Switch = True
    cluster_version: Literal[1, 2] = 1  # 2: point-in-time restore, over a real WAL archive
    writes_after_backup: Count = 0  # meter readings written between the backup and the deploy
    rotate_migration_password: Switch = False
    restored: Switch = False
    restored_cluster_id: ClusterId | None = None
    restored_cluster_name: Text | None = None
    flip_secrets: Switch | Names = True
    flip_cluster_map: Switch = True


Role = Literal["admin", "maintain", "write", "triage", "read", "none"]


class GitHubEnvironmentSpec(_Table):
    reviewers: Names = []
    prevent_self_review: Switch = True


class ApproverSpec(_Table):
    login: Text
    action: Literal["approve", "reject", "approve-other-run", "approve-older-plan",
                    "approve-hidden", "approve-fenced", "approve-details", "approve-quoted",
                    "approve-conditional", "edited-into-approval"] = "approve"
    after: Seconds = 60
    comment: Text = "not now"


class ReviewSpec(_Table):
    login: Text
    state: Literal["approved", "rejected", "bypassed"] = "approved"
    after: Seconds = 60
    comment: Text = ""


class ForgerySpec(_Table):
    login: Text
    kind: Literal["succeeded", "dispatched", "flip-pending", "restored-source", "copied-marker"]
    env: Text = "staging"


class Scenario(_Table):
    description: Text = ""
    traffic: Literal["healthy", "target-already-bad", "flapping", "partial-recovery", "slow",
                     "no-traffic", "endpoint-down", "endpoint-slow"] = "healthy"
    start: Text = "2026-06-10T09:00:00Z"
    name: Text | None = None
    github: GitHubSpec = GitHubSpec()
    workflow: WorkflowSpec = WorkflowSpec()
    faults: FaultSpec = FaultSpec()
    fly: FlySpec = FlySpec()
    latency: LatencySpec = LatencySpec()
    cluster_map: dict[str, ClusterId] = {}
    clusters: dict[str, ClusterSpec] = {}
    environments: dict[str, EnvironmentSpec] = {}
    collaborators: dict[str, Role] = {}
    github_environments: dict[str, GitHubEnvironmentSpec] = {}
    approvers: list[ApproverSpec] = []
    reviews: list[ReviewSpec] = []
    forgeries: list[ForgerySpec] = []

    @field_validator("start")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        parse_iso(value)  # raises ValueError for anything else
        return value


def check_scenario(data: dict[str, Any], path: Path) -> None:
    """Raise a ConfigError naming ``path`` and each bad key, or return quietly."""
    try:
        Scenario.model_validate(data)
    except ValidationError as exc:
        raise bad_input(exc, source=f"the scenario file {path}", accepted=ACCEPTED,
                        next_step=f"Fix {path} (docs/scenarios.md lists every key).") from None
