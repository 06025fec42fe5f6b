"""A run's parameters: one validated object per path, what the notebooks' ``parameters`` cells hold.

``RunParameters`` is a union discriminated on ``path``: Path A, Path B and
verify-flip each have their own model, and a mapping is validated once against
the model of the path it names. The same models check the parameters whoever
sets them: the command line (its flags map onto these names), plain papermill
(``-p dry_run False``) or JupyterLab. Every switch takes a real boolean only, so
``-p dry_run 0``, ``"false"`` or ``notabool`` is a bad input (exit 2) and never a
live run nor a silent dry run; every number is finite and in range; a name the
path does not take (Path B's ``target_digest``, a typo) is refused. Nothing is
contacted before this passes.

Free text (``reason``, ``incident``, ``operator``, ``confirm``, ``new_cluster_name``,
``override_unhealthy_target``)
goes to the archive and to GitHub, so each such field passes through
:func:`~rollback_helpers.errors.guard_free_text` here, which refuses a credential
(exit 2, naming the field, never the value).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from rollback_helpers.domain.images import parse_digest, parse_image_ref
from rollback_helpers.domain.validation import (
    ACCEPTED_NAME,
    ACCEPTED_SWITCH,
    MAX_TEXT,
    FreeText,
    PositiveInt,
    PositiveSeconds,
    SafeName,
    Switch,
    Text,
    bad_input,
)
from rollback_helpers.errors import ConfigError, guard_free_text
from rollback_helpers.hints import Option, hint, interface_of, use_interface

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
FREE_TEXT = ("reason", "incident", "operator", "confirm", "new_cluster_name", "scenario",
             "backup_id", "source_cluster", "new_cluster", "old_cluster", "target_digest",
             "break_lock", "run_id", "path_a_tried", "override_unhealthy_target")
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
    **dict.fromkeys(("reason", "incident", "operator", "confirm", "break_lock"),
                    f"text of at most {MAX_TEXT} characters"),
    **dict.fromkeys(("backup_id", "source_cluster", "new_cluster_name", "new_cluster",
                     "old_cluster"), ACCEPTED_NAME + "; leave it out for the default"),
}
PLAIN = (str, int, float, bool, list, dict, type(None))  # what papermill can inject


class CommonParameters(BaseModel):
    """What every path takes: where it runs, who runs it and why, how it is recorded."""

    # Built on first validation: a run builds its own path's model only (docs/benchmarks.md).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    env: Text | None = None
    interactive: Switch = False
    backend: Literal["sandbox", "real"] = "sandbox"
    scenario: Text = ""  # "": the path's default scenario (domain.paths)
    sandbox_dir: Text | None = None
    reason: FreeText = ""
    incident: FreeText = ""
    operator: FreeText = ""
    archive_path: Text = ""
    config: dict[str, Any] | None = None
    run_id: Text = ""  # the command line's run id (its lock and record comment); "" in JupyterLab

    @field_validator(*FREE_TEXT, check_fields=False)
    @classmethod
    def _free_text(cls, value: str | None, info: Any) -> str | None:
        return guard_free_text(info.field_name, value) if value else value

    def config_overrides(self) -> dict[str, Any] | None:
        """The configuration layer the parameters give (``config``, and a path's own keys)."""
        return self.config


class ChangingParameters(CommonParameters):
    """A path that changes things: a dry run unless told otherwise, and the lock's takeover."""

    dry_run: Switch = True
    confirm: FreeText = ""  # a live run against a protected environment names it here
    break_lock: FreeText = ""  # why an expired lease is taken over (recorded)


class ReadingParameters(CommonParameters):
    """A path that only reads: nothing to dry-run, confirm or lock (and these are refused)."""

    dry_run: ClassVar[bool] = True
    confirm: ClassVar[str] = ""
    break_lock: ClassVar[str] = ""


class PathAParameters(ChangingParameters):
    path: Literal["path-a"] = "path-a"
    target_digest: Text | None = None  # "sha256:<64 hex>" or "<repo>@sha256:<64 hex>"
    allow_unrecorded_target: Switch = False
    watch_in_flight: Switch = False  # watch a promote run already in flight instead of stopping
    override_unhealthy_target: Text = ""  # why to roll back to a target the metrics call unhealthy

    @field_validator("target_digest")
    @classmethod
    def _pinned(cls, value: str | None) -> str | None:
        """Bad input fails before anything is contacted (an ImageRefError, exit 2). Empty is
        missing, never "resolve it": leave it out (None) for the default."""
        if value is None:
            return None
        if not value:
            raise ValueError("is empty: leave it out to resolve the target from the records")
        if value.startswith("sha256:"):
            return parse_digest(value, what="target_digest")
        parse_image_ref(value, what="target_digest")
        return value


class PathBParameters(ChangingParameters):
    path: Literal["path-b"] = "path-b"
    backup_id: SafeName | None = None  # in flyctl's argv: never a flag, a space or a ';'
    source_cluster: SafeName | None = None
    record_number: PositiveInt | None = None
    new_cluster_name: SafeName | None = None
    ready_timeout: PositiveSeconds | None = None
    path_a_tried: Text = ""  # why Path A (an image rollback) is not enough: the runbook's first rule
    pitr_time: Text | None = None  # restore to a moment: "default" (just before the bad deploy)
    #                                or RFC3339 with an offset; None restores the backup

    @field_validator("pitr_time")
    @classmethod
    def _moment(cls, value: str | None) -> str | None:
        if value is None or value == "default" or RFC3339.match(value):
            return value
        raise ConfigError(f"pitr_time {value!r} is not a moment flyctl accepts.",
                          "Give an RFC3339 time with an explicit offset, e.g. "
                          "2026-06-09T07:29:59Z, or --pitr-time alone for just before the bad "
                          "deploy.")

    @model_validator(mode="after")
    def _path_a_first(self) -> PathBParameters:
        """A headless live run on the real world says why Path A is not enough (exit 2)."""
        if self.pitr_time is not None and self.backup_id:
            raise ConfigError("backup_id and pitr_time are both given: a restore takes one.",
                              hint("Leave out ", Option("backup_id", "<id>"), " to restore to the "
                                   "point in time, or ", Option("pitr_time", "<time>"),
                                   " to restore the backup."))
        if self.backend == "real" and not self.dry_run and not self.interactive \
                and not self.path_a_tried:
            raise ConfigError(
                "A live Path B run needs to say why Path A (re-promoting the previous image) is "
                "not enough. Always try Path A first.",
                hint("Re-run with ", Option("path_a_tried", "<why>"), ", e.g. \"the migration "
                     "dropped a table: an image cannot bring it back\"."))
        return self

    def config_overrides(self) -> dict[str, Any] | None:
        overrides = dict(self.config or {})
        if self.ready_timeout is not None:
            overrides["ready_timeout"] = self.ready_timeout
        return overrides


class VerifyFlipParameters(ReadingParameters):
    path: Literal["verify-flip"] = "verify-flip"
    new_cluster: SafeName | None = None
    old_cluster: SafeName | None = None


AnyParameters = PathAParameters | PathBParameters | VerifyFlipParameters
MODELS: tuple[type[AnyParameters], ...] = (PathAParameters, PathBParameters, VerifyFlipParameters)
RunParameters = Annotated[AnyParameters, Field(discriminator="path")]
P = TypeVar("P", bound=CommonParameters)


@cache
def _union() -> TypeAdapter[AnyParameters]:
    """The discriminated union, for a ``path`` no model has: it names the paths there are."""
    return TypeAdapter(RunParameters)


def check_parameters(path: str, given: Mapping[str, Any], *,
                     name: Callable[[str], str] | None = None,
                     source: str = "the notebook parameters") -> AnyParameters:
    """``given`` validated as ``path``'s parameters, or a ConfigError (exit 2) naming each bad one."""
    named = name or _parameter
    if given.get("path", path) != path:
        raise ConfigError(f"Bad input in {source}: {named('path')} = {given['path']!r}, but this is "
                          f"the {path} notebook.", f"Leave {named('path')} out (it is {path!r}).")
    _refuse_unknown(path, given, named, source, listed=name is None)
    try:
        model = _model(path)
        if model is None:
            return _union().validate_python({**given, "path": path})
        return model.model_validate({**given, "path": path})
    except ValidationError as exc:
        def inner(key: str) -> str:  # pydantic puts the path's tag before the parameter's name
            return named(key.removeprefix(f"{path}."))

        raise bad_input(exc, source=source, name=inner, accepted=ACCEPTED,
                        next_step="Fix the parameter named (nothing was contacted or changed).") \
            from None


def _refuse_unknown(path: str, given: Mapping[str, Any], named: Callable[[str], str],
                    source: str, *, listed: bool) -> None:
    """A name the path does not take is refused, saying which path takes it, if one does."""
    takes = _fields(path)
    if not takes:
        return  # an unknown path: the union names it
    unknown = [key for key in given if key not in takes and key != "path"]
    if not unknown:
        return
    problems = []
    for key in unknown:
        owners = [m.model_fields["path"].default for m in MODELS if key in m.model_fields]
        takes_it = f" ({' and '.join(owners)} {'takes' if len(owners) == 1 else 'take'} it)"
        problems.append(f"{named(key)} is not one {path} takes" + (takes_it if owners else ""))
    listing = f" {path} takes: {', '.join(sorted(takes))}." if listed else ""
    raise ConfigError(f"Bad input in {source}: " + "; ".join(problems) + ".",
                      "Leave it out (nothing was contacted or changed)." + listing)


def checked(model: type[P], given: Mapping[str, Any]) -> P:
    """``given`` validated as ``model``'s path's parameters (the path's ``start`` calls this).
    From here on, next steps are rendered for the interface the parameters say drives the run."""
    use_interface(interface_of(interactive=given.get("interactive") is True,
                               run_id=str(given.get("run_id") or ""),
                               backend=str(given.get("backend") or "sandbox")))
    params = check_parameters(model.model_fields["path"].default, given)
    if not isinstance(params, model):  # pragma: no cover - the tag selects the model
        raise TypeError(f"{type(params).__name__} is not {model.__name__}")
    return params


def parameters_of(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a notebook was given, from its namespace: ``parameters_of(globals())``.

    Every plain value (what papermill can inject: no module, function or object) except
    private names and what IPython puts there itself, so a parameter papermill injected that the
    notebook does not take reaches the model and is refused by name."""
    shell = namespace.get("get_ipython")
    hidden = set(getattr(shell(), "user_ns_hidden", ())) if callable(shell) else set()
    return {key: value for key, value in namespace.items()
            if not key.startswith("_") and key not in hidden | {"In", "Out"}
            and isinstance(value, PLAIN)}


def _model(path: str) -> type[AnyParameters] | None:
    return next((m for m in MODELS if m.model_fields["path"].default == path), None)


def _fields(path: str) -> set[str]:
    model = _model(path)
    return set(model.model_fields) - {"path"} if model else set()


def _parameter(key: str) -> str:
    return f"parameter {key!r}"


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


def require_reason(params: AnyParameters) -> None:
    """A live run on the real world says why (the record comment and the runbook's verification
    ask "what was rolled back and why"); a dry run, or a drill on the sandbox, may omit it."""
    if params.backend == "real" and not params.reason.strip():
        raise ConfigError(
            f"A live {params.path} run on {params.env or 'an environment'} needs a reason: it goes "
            "into the deployment-record comment and the archived record.",
            hint("Re-run with ", Option("reason", "<what is rolled back and why>"),
                 ". Nothing was contacted or changed."))
