"""One next step, three renderings: flags, parameters, the walkthrough's cell or button."""

from __future__ import annotations

import pytest

from rollback_helpers.errors import BackupError
from rollback_helpers.hints import (
    INTERFACES,
    Option,
    Rerun,
    RunPath,
    current_interface,
    given_as,
    hint,
    interface_of,
    use_interface,
)

NEXT = hint("List the backups, then re-run with ", Option("backup_id", "<id>"), ".")


@pytest.mark.parametrize(("interface", "expected"), [
    ("run", 'List the backups, then re-run with `--backup-id "<id>"`.'),
    ("drill", 'List the backups, then re-run with `--backup-id "<id>"`.'),
    ("notebook", 'List the backups, then re-run with `backup_id="<id>"` (papermill: -p backup_id <id>).'),
    ("walkthrough", 'List the backups, then re-run with `backup_id="<id>"` set in the parameters '
                    "cell at the top, then Run → Run All Cells."),
])
def test_an_option_is_a_flag_on_the_command_line_and_a_parameter_in_a_notebook(
        interface: str, expected: str) -> None:
    assert NEXT.render(interface) == expected  # type: ignore[arg-type]


def test_dry_run_reads_as_each_interface_acts() -> None:
    live = Option("dry_run", False)
    assert [live.render(i) for i in INTERFACES] == [
        "`--live`", "no `--dry-run`", "`dry_run=False` (papermill: -p dry_run False)",
        "the step's button (it asks before it changes anything)"]
    assert given_as("dry_run", False, "run") == "flag --live"
    assert given_as("dry_run", False, "drill") == "without the flag --dry-run"
    assert given_as("confirm", "production", "notebook") == 'parameter confirm="production"'


def test_a_rerun_and_another_path_name_the_command_or_the_cell() -> None:
    step = Rerun("verify the new cluster")
    assert "same command" in step.render("drill")
    assert "cell of step 'verify the new cluster'" in step.render("walkthrough")
    flip = RunPath("verify-flip", "staging")
    assert flip.render("run") == "`rollback-runbook run verify-flip --env staging`"
    assert "path_b_verify_flip.ipynb" in flip.render("walkthrough")
    assert "rollback-runbook" not in flip.render("notebook")


@pytest.mark.parametrize(("interactive", "run_id", "backend", "interface"), [
    (True, "", "sandbox", "walkthrough"), (True, "abc", "real", "walkthrough"),
    (False, "abc", "sandbox", "drill"), (False, "abc", "real", "run"),
    (False, "", "real", "notebook"),
])
def test_the_parameters_say_which_interface_drives_a_run(
        interactive: bool, run_id: str, backend: str, interface: str) -> None:
    assert interface_of(interactive=interactive, run_id=run_id, backend=backend) == interface


def test_an_error_renders_its_hint_for_the_interface_announced_and_keeps_the_data() -> None:
    assert current_interface() == "notebook"
    use_interface("run")
    error = BackupError("Backup b1 is not listed.", NEXT)
    assert str(error).endswith('Next: List the backups, then re-run with `--backup-id "<id>"`.')
    assert error.hint == NEXT and "backup_id=" in error.hint.render("notebook")
    assert BackupError("plain", "Plain text.").hint is None
