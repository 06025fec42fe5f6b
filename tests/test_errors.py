"""The error tree: the module docstring and the classes agree, exit codes included."""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass

import pytest

from rollback_helpers import errors
from rollback_helpers.errors import EXIT_CODES, RollbackError, error_class_named

OUTCOMES = {
    0: "success", 1: "failed", 2: "bad-input", 3: "precondition-failed", 4: "service-error",
    5: "workflow-failed", 6: "verification-failed", 7: "restore-failed",
    8: "record-tampered", 9: "record-missing", 10: "record-hash-missing", 11: "not-approved",
    12: "rejected",
    130: "interrupted", 137: "interrupted", 143: "interrupted",
}
INTERRUPTED = {130, 137, 143}  # one outcome, whichever way the run was stopped


@dataclass(frozen=True)
class Documented:
    name: str
    parent: str | None
    exit_code: int


def documented_tree() -> dict[str, Documented]:
    """Parse the box-drawing tree in the errors module docstring."""
    assert errors.__doc__ is not None
    line = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z][A-Za-z]+)\b(?P<rest>.*)$")
    tree: dict[str, Documented] = {}
    stack: list[tuple[int, str, int]] = []  # (depth, name, exit code)
    for raw in errors.__doc__.splitlines():
        text = raw.strip("\n")
        if not text.startswith("    ") or not text.strip():
            continue
        match = line.match(text[4:])
        if not match:
            continue
        depth = len(match["indent"]) // 4
        code = re.search(r"exit (\d+)", match["rest"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1] if stack else None
        exit_code = int(code[1]) if code else (parent[2] if parent else -1)
        tree[match["name"]] = Documented(match["name"], parent[1] if parent else None, exit_code)
        stack.append((depth, match["name"], exit_code))
    return tree


TREE = documented_tree()


def all_error_classes() -> list[type[RollbackError]]:
    return [obj for obj in vars(errors).values()
            if isinstance(obj, type) and issubclass(obj, RollbackError)]


def test_the_docstring_tree_parses_into_the_documented_shape() -> None:
    """The parser reads the tree: root, branches and leaves with their exit codes."""
    assert TREE["RollbackError"] == Documented("RollbackError", None, 1)
    assert TREE["BadInput"] == Documented("BadInput", "RollbackError", 2)
    assert TREE["GitHubRateLimited"] == Documented("GitHubRateLimited", "GitHubError", 4)
    assert TREE["ConnectivityError"] == Documented("ConnectivityError", "RestoreFailed", 7)
    assert TREE["CommandTimeout"] == Documented("CommandTimeout", "ExternalServiceError", 4)


def test_every_class_is_in_the_documented_tree_and_vice_versa() -> None:
    """The docstring names exactly the error classes the module defines."""
    assert {cls.__name__ for cls in all_error_classes()} == set(TREE)


@pytest.mark.parametrize("name", sorted(TREE))
def test_class_sits_where_the_tree_puts_it(name: str) -> None:
    """Each class's direct base is its parent in the documented tree."""
    cls = getattr(errors, name)
    expected = TREE[name].parent
    assert cls.__bases__ == ((getattr(errors, expected),) if expected else (Exception,))


@pytest.mark.parametrize("name", sorted(TREE))
def test_exit_code_and_outcome_are_as_documented(name: str) -> None:
    """Each class has its branch's documented exit code and that code's outcome."""
    cls = getattr(errors, name)
    assert cls.exit_code == TREE[name].exit_code
    assert cls.outcome == OUTCOMES[cls.exit_code]


def test_each_exit_code_has_one_outcome() -> None:
    """Outcomes tell branches apart: no two exit codes share an outcome, except that every
    interruption (SIGINT 130, a dead kernel 137, SIGTERM 143) is ``interrupted``."""
    by_code = {cls.exit_code: set() for cls in all_error_classes()}
    for cls in all_error_classes():
        by_code[cls.exit_code].add(cls.outcome)
    assert all(len(outcomes) == 1 for outcomes in by_code.values())
    others = {code: o for code, o in by_code.items() if code not in INTERRUPTED}
    assert len({next(iter(o)) for o in others.values()}) == len(others)
    assert {next(iter(by_code[code])) for code in INTERRUPTED} == {"interrupted"}


def test_exit_codes_cover_every_code_a_class_uses() -> None:
    """EXIT_CODES explains every exit code an error can produce, plus 0 for success."""
    used = {cls.exit_code for cls in all_error_classes()}
    assert used <= set(EXIT_CODES)
    assert set(EXIT_CODES) == used | {0}
    assert all(text.strip() for text in EXIT_CODES.values())


@pytest.mark.parametrize("name", sorted(TREE))
def test_error_class_named_finds_every_class(name: str) -> None:
    """A name papermill reports as ``ename`` maps back to our class."""
    assert error_class_named(name) is getattr(errors, name)


@pytest.mark.parametrize("name", ["ValueError", "KeyboardInterrupt", "Exception", "",
                                  "rollbackerror", "CalledProcessError", "ConfigErr"])
def test_error_class_named_ignores_foreign_names(name: str) -> None:
    """Names that are not ours (or not exactly ours) give None."""
    assert error_class_named(name) is None


def test_error_message_joins_what_and_next_step() -> None:
    """str(error) is what failed, then 'Next:' and the step; without a step, just what failed."""
    error = errors.NoRollbackTarget("No older record for staging.", "Deploy a fixed image.")
    assert str(error) == "No older record for staging.\nNext: Deploy a fixed image."
    assert (error.what, error.next_step) == ("No older record for staging.",
                                             "Deploy a fixed image.")
    assert str(errors.DriftDetected("Fly runs another image.")) == "Fly runs another image."


def test_command_failed_keeps_returncode_and_stderr_tail() -> None:
    """CommandFailed carries the exit code and the stderr tail for the operator."""
    error = errors.CommandFailed("`flyctl deploy` failed", "Read the log.", returncode=1,
                                 stderr_tail="Error: no machines")
    assert (error.returncode, error.stderr_tail) == (1, "Error: no machines")
    assert error.exit_code == 4


@pytest.mark.parametrize("name", sorted(TREE))
def test_every_error_survives_pickling_with_its_message_and_parts(name: str) -> None:
    """An error crossing a process boundary keeps its class, message, parts and exit code."""
    cls = getattr(errors, name)
    error = cls("Cluster c-1 is not ready.", "Wait, then re-run.")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and copy.exit_code == cls.exit_code
    assert str(copy) == str(error) == "Cluster c-1 is not ready.\nNext: Wait, then re-run."
    assert (copy.what, copy.next_step) == ("Cluster c-1 is not ready.", "Wait, then re-run.")


def test_command_failed_survives_pickling_with_returncode_and_stderr_tail() -> None:
    """CommandFailed's extra parts come back too, still redacted."""
    error = errors.CommandFailed("`flyctl mpg status` failed", "Read the log.", returncode=3,
                                 stderr_tail="postgres://app:hunter2@db/app refused")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.returncode, copy.stderr_tail, str(copy)) == (3, error.stderr_tail, str(error))
    assert "hunter2" not in copy.stderr_tail


def test_one_outcome_table_covers_every_exit_code() -> None:
    """``OUTCOMES`` names the outcome of every documented exit code, success included, and a
    failure the runbook does not classify (exit 1, as an unknown error archives) is ``failed``."""
    assert set(errors.OUTCOMES) == set(EXIT_CODES)
    assert errors.OUTCOMES[0] == "success"
    assert errors.outcome_of(1) == RollbackError.outcome == "failed"
    assert errors.outcome_of(99) == "failed"
    assert errors.outcome_of(5) == "workflow-failed"
