"""Every way a rollback can fail, in one tree.

Each error says what failed (the environment, issue number, cluster id or
command) and what the operator should do next: plain text, or a
:class:`~rollback_helpers.hints.Hint` rendered for the interface in use (flags on
the command line, parameters in a notebook, the cell or button in JupyterLab). Messages pass through
:func:`rollback_helpers.secrets.redact`, so a password that slipped into one
never reaches a notebook, a log or a terminal.

    RollbackError                      exit 1 (unexpected)
    ├── BadInput                       exit 2: the operator's input is wrong
    │   ├── ConfigError                    unknown environment, bad config key, parameter or flag
    │   ├── (guard_free_text)              a credential typed into operator text
    │   ├── ImageRefError                  not a pinned repo@sha256:<64 hex>
    │   └── ConfirmationRequired           production needs an explicit confirm
    ├── PreconditionFailed             exit 3: the world is not as the runbook assumes
    │   ├── DriftDetected                  Fly runs something the records do not say
    │   ├── NoRollbackTarget               no older, healthy record to go back to
    │   ├── UnhealthyTarget                the target's own 5xx ratio was too high while it ran
    │   ├── RecordError                    a record needed is missing or malformed
    │   ├── BackupError                    backup missing, incomplete, or not recorded
    │   ├── ClusterMismatch                cluster map disagrees with what is attached
    │   └── LockHeld                       another live run holds the environment's lock
    ├── RecordTampered                 exit 8: a record's bytes differ from its published SHA-256
    ├── RecordMissing                  exit 9: no archived record at that location
    ├── RecordHashMissing              exit 10: no SHA-256 published for the record on its issue
    ├── ExternalServiceError           exit 4: GitHub or flyctl did not do what was asked
    │   ├── GitHubError
    │   │   ├── GitHubAuthError            token missing, expired or lacking scope
    │   │   ├── GitHubNotFound             repo, workflow or issue does not exist
    │   │   ├── GitHubRateLimited          rate limit outlasted our retries
    │   │   └── GitHubUnavailable          5xx / connection errors outlasted retries
    │   ├── RecordStoreError               the records store refused or lost a record
    │   ├── CommandRefused                 a destructive command: a human step
    │   ├── CommandFailed                  a command exited non-zero
    │   └── CommandTimeout                 a command outlived its deadline
    ├── WorkflowFailed                 exit 5: the promote workflow did not succeed
    ├── VerificationFailed             exit 6: rolled back, but not verified
    ├── RestoreFailed                  exit 7: the new cluster is not usable
    │   ├── RestoreTimeout                 not ready within the timeout
    │   └── ConnectivityError              tunnel or login to the new cluster failed
    ├── NotApproved                    exit 11: too few people approved: nothing changed
    │   ├── ApprovalTimeout                still waiting for approval when the wait ended
    │   └── ApprovalRejected               exit 12: an approver rejected the plan or deployment
    └── Interrupted                    exit 130: stopped by Ctrl-C (SIGINT) mid-run
        ├── Terminated                     exit 143: stopped by SIGTERM
        └── KernelDied                     exit 137: the notebook's kernel died mid-run
            └── ProcessKilled                  the runbook's own process was killed (SIGKILL…)
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from rollback_helpers.hints import Hint
from rollback_helpers.secrets import find_credentials, redact

# What the archive and the record say happened, by exit code: one outcome a code, except that
# every way of being stopped (SIGINT, SIGTERM, a dead kernel) is ``interrupted``. The one table:
# the archive, the record comment and the error classes read it, never their own spelling.
OutcomeName = Literal["success", "failed", "bad-input", "precondition-failed", "service-error",
                      "workflow-failed", "verification-failed", "restore-failed", "record-tampered",
                      "record-missing", "record-hash-missing", "not-approved", "rejected",
                      "interrupted"]
OUTCOMES: dict[int, OutcomeName] = {
    0: "success", 1: "failed", 2: "bad-input", 3: "precondition-failed", 4: "service-error",
    5: "workflow-failed", 6: "verification-failed", 7: "restore-failed", 8: "record-tampered",
    9: "record-missing", 10: "record-hash-missing", 11: "not-approved", 12: "rejected",
    130: "interrupted", 137: "interrupted", 143: "interrupted",
}


def outcome_of(exit_code: int) -> OutcomeName:
    """The outcome of an exit code; a code the runbook does not give is an unclassified failure."""
    return OUTCOMES.get(exit_code, OUTCOMES[1])


class RollbackError(Exception):
    """Base of every error the runbook raises on purpose.

    A branch of the tree names its exit code in its class statement
    (``class WorkflowFailed(RollbackError, exit_code=5)``); its ``outcome`` is that
    code's in :data:`OUTCOMES`. Subclasses without one keep their parent's.
    """

    exit_code: ClassVar[int] = 1
    outcome: ClassVar[OutcomeName] = OUTCOMES[1]

    def __init_subclass__(cls, *, exit_code: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code, cls.outcome = exit_code, OUTCOMES[exit_code]

    def __init__(self, what: str, next_step: str | Hint = "") -> None:
        # the next step as data (a Hint) is rendered for the interface the run is driven from
        self.hint = next_step if isinstance(next_step, Hint) else None
        self.what = redact(what)
        self.next_step = redact(next_step.render() if isinstance(next_step, Hint) else next_step)
        message = self.what if not self.next_step else f"{self.what}\nNext: {self.next_step}"
        super().__init__(message)


class BadInput(RollbackError, exit_code=2):
    pass


class ConfigError(BadInput):
    pass


def guard_free_text(field: str, value: str) -> str:
    """``value`` unchanged, or :class:`~rollback_helpers.errors.BadInput` if it holds a credential.

    For what an operator types (reason, incident, operator and other free text),
    which goes into the run's GitHub comment, the deployment record, logs and the
    archived notebook. A credential there is **refused**, not masked: once typed
    it is in the shell history, the notebook's parameters or a clipboard, so it
    must be rotated anyway, and the operator only learns that from a refusal; a
    masked ``****`` would also leave a reason nobody can read. The refusal names
    the field and the kind of credential found, never the value, and comes
    before anything is contacted (exit code 2).
    """
    kinds = find_credentials(value)
    if not kinds:
        return value
    raise BadInput(
        f"The {field} field holds what looks like a credential ({'; '.join(kinds)}). "
        f"The runbook refuses it: {field} goes into the GitHub comment, the deployment record, "
        "the logs and the archived notebook.",
        f"Re-run with {field} describing the incident without the credential (a URL without "
        "its password, no token, no value after a name like password). Treat the credential "
        "as leaked: it is in your shell history or notebook parameters, so rotate it.")


class ImageRefError(BadInput):
    pass


class ConfirmationRequired(BadInput):
    pass


class PreconditionFailed(RollbackError, exit_code=3):
    pass


class DriftDetected(PreconditionFailed):
    pass


class NoRollbackTarget(PreconditionFailed):
    pass


class UnhealthyTarget(PreconditionFailed):
    """The metrics say the rollback target was itself unhealthy while it ran."""


class RecordError(PreconditionFailed):
    pass


class BackupError(PreconditionFailed):
    pass


class ClusterMismatch(PreconditionFailed):
    pass


class LockHeld(PreconditionFailed):
    """Another run holds (or held, and its lease expired) the environment's lock."""


class RecordTampered(RollbackError, exit_code=8):
    """``verify-record``: the record is not the one whose SHA-256 was published."""


class RecordMissing(RollbackError, exit_code=9):
    pass


class RecordHashMissing(RollbackError, exit_code=10):
    pass


class ExternalServiceError(RollbackError, exit_code=4):
    pass


class GitHubError(ExternalServiceError):
    pass


class GitHubAuthError(GitHubError):
    pass


class GitHubNotFound(GitHubError):
    pass


class GitHubRateLimited(GitHubError):
    pass


class GitHubUnavailable(GitHubError):
    pass


class RecordStoreError(ExternalServiceError):
    pass


class CommandRefused(ExternalServiceError):
    pass


class CommandFailed(ExternalServiceError):
    def __init__(self, what: str, next_step: str | Hint = "", *, returncode: int | None = None,
                 stderr_tail: str = "") -> None:
        self.returncode = returncode
        self.stderr_tail = redact(stderr_tail)
        super().__init__(what, next_step)


class CommandTimeout(ExternalServiceError):
    pass


class WorkflowFailed(RollbackError, exit_code=5):
    pass


class VerificationFailed(RollbackError, exit_code=6):
    pass


class RestoreFailed(RollbackError, exit_code=7):
    pass


class RestoreTimeout(RestoreFailed):
    pass


class ConnectivityError(RestoreFailed):
    pass


class NotApproved(RollbackError, exit_code=11):
    """A live run that needs more people's approval did not get it: nothing was changed."""


class ApprovalTimeout(NotApproved):
    pass


class ApprovalRejected(NotApproved, exit_code=12):
    pass


class Interrupted(RollbackError, exit_code=130):
    """The run was stopped before it ended: the archive says ``interrupted`` and the last step."""


class Terminated(Interrupted, exit_code=143):
    pass


class KernelDied(Interrupted, exit_code=137):
    pass


class ProcessKilled(KernelDied):
    """The command line itself was killed outright; a later run archived its notebook."""


def _all_subclasses(cls: type[RollbackError]) -> list[type[RollbackError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


def error_class_named(name: str) -> type[RollbackError] | None:
    """The error class with this name (as papermill reports ``ename``), if it is ours."""
    for cls in _all_subclasses(RollbackError):
        if cls.__name__ == name:
            return cls
    return None


EXIT_CODES: dict[int, str] = {
    0: "success (or a dry run that resolved a plan)",
    1: "unexpected error (a bug, or a failure the runbook does not classify)",
    2: "bad input: environment, digest, parameters or confirmation",
    3: "precondition failed: drift, no rollback target, bad or missing record, backup or cluster "
       "map, or another run holds the environment's lock",
    4: "GitHub or flyctl failed: auth, not found, rate limit, outage, refused or failed command",
    5: "the promote-image workflow run did not succeed",
    6: "rolled back but verification failed: machines not on the target or health not 200",
    7: "restore failed: the new cluster did not become ready or could not be reached",
    8: "verify-record: the record's bytes differ from the SHA-256 published on its issue",
    9: "verify-record: no record at that location",
    10: "verify-record: no SHA-256 published for the record on its issue",
    11: "waiting for approval: not enough people approved the plan in time; nothing was changed",
    12: "rejected: an approver rejected the plan (or the workflow's deployment); nothing was changed",
    130: "interrupted (Ctrl-C / SIGINT): archived as interrupted; re-run the same command to resume",
    137: "interrupted: the notebook's kernel died, or the run's own process was killed (SIGKILL, "
         "out of memory, the machine died: the next run archives it); re-run the same command "
         "to resume",
    143: "terminated (SIGTERM): archived as interrupted; re-run the same command to resume",
}
