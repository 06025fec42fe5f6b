"""A run's parameters, as one validated model: what the notebooks' ``parameters`` cells hold.

The same model checks them whoever sets them: the command line (its flags map
onto these names), plain papermill (``-p dry_run False``) or JupyterLab. Every
switch takes a real boolean only, so ``-p dry_run 0``, ``"false"`` or
``notabool`` is a bad input (exit 2) and never a live run nor a silent dry run;
every number is finite and in range; unknown names are refused. Nothing is
contacted before this passes.

Free text (``reason``, ``incident``, ``operator``, ``confirm``, ``new_cluster_name``)
goes to the archive and to GitHub, so each such field passes through
:func:`~rollback_helpers.errors.guard_free_text` here, which refuses a credential
(exit 2, naming the field, never the value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from rollback_helpers.domain.validation import (
    ACCEPTED_SWITCH,
    PositiveInt,
    PositiveSeconds,
    Switch,
    Text,
    bad_input,
)
from rollback_helpers.errors import guard_free_text

FREE_TEXT = ("reason", "incident", "operator", "confirm", "new_cluster_name", "scenario",
             "backup_id", "source_cluster", "new_cluster", "old_cluster", "target_digest",
             "break_lock", "run_id")
ACCEPTED = {
    "env": "an environment name, e.g. staging",
    "backend": "sandbox or real",
    "ready_timeout": "a finite number of seconds > 0",
    "record_number": "a deployment-record issue number > 0",
    "dry_run": ACCEPTED_SWITCH,
    "interactive": ACCEPTED_SWITCH,
    "allow_unrecorded_target": ACCEPTED_SWITCH,
    "watch_in_flight": ACCEPTED_SWITCH,
    "config": "a dict of configuration keys (docs/configuration.md)",
}


class RunParameters(BaseModel):
    """Every parameter any runbook notebook takes; each path passes the ones it has."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: Literal["path-a", "path-b", "verify-flip"] = "path-a"
    env: Text | None = None
    dry_run: Switch = True
    interactive: Switch = False
    backend: Literal["sandbox", "real"] = "sandbox"
    scenario: Text = "default"
    sandbox_dir: Text | None = None
    confirm: Text = ""
    reason: Text = ""
    incident: Text = ""
    operator: Text = ""
    archive_path: Text = ""
    config: dict[str, Any] | None = None
    target_digest: Text | None = None
    allow_unrecorded_target: Switch = False
    backup_id: Text | None = None
    source_cluster: Text | None = None
    new_cluster_name: Text | None = None
    record_number: PositiveInt | None = None
    ready_timeout: PositiveSeconds | None = None
    new_cluster: Text | None = None
    old_cluster: Text | None = None
    run_id: Text = ""  # the command line's run id (its lock and record comment); "" in JupyterLab
    break_lock: Text = ""  # why an expired lease is taken over (recorded)
    watch_in_flight: Switch = False  # watch a promote run already in flight instead of stopping

    @field_validator(*FREE_TEXT)
    @classmethod
    def _free_text(cls, value: str | None, info: Any) -> str | None:
        return guard_free_text(info.field_name, value) if value else value


def check_parameters(path: str, given: Mapping[str, Any], *,
                     name: Callable[[str], str] | None = None,
                     source: str = "the notebook parameters") -> RunParameters:
    """``given`` validated (only the names a notebook or flag set), or a ConfigError (exit 2)."""
    try:
        return RunParameters.model_validate({"path": path, **given})
    except ValidationError as exc:
        raise bad_input(exc, source=source, name=name or _parameter, accepted=ACCEPTED,
                        next_step="Fix the parameter named (nothing was contacted or changed).") \
            from None


class TriageAnswers(BaseModel):
    """start_here's answers: True, False, or None for "not answered yet"."""

    model_config = ConfigDict(extra="forbid", strict=True)

    database_intact: Switch | None = None
    destructive_migration_or_corruption: Switch | None = None
    database_readonly: Switch | None = None
    migration_state_problem: Switch | None = None


def check_answers(given: Mapping[str, Any]) -> None:
    """Raise a ConfigError (exit 2) naming each answer that is not True, False or None."""
    try:
        TriageAnswers.model_validate(dict(given))
    except ValidationError as exc:
        raise bad_input(exc, source="the notebook parameters", name=_parameter,
                        accepted=dict.fromkeys(given, ACCEPTED_SWITCH + " or None"),
                        next_step="Answer with True or False (or None: not answered yet).") \
            from None


def _parameter(key: str) -> str:
    return f"parameter {key!r}"
