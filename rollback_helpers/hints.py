"""An error's next step as data, rendered for the interface the operator is using.

The same advice reads differently in each place a run can be driven from:

    run          the command line against the real world: ``--target-digest sha256:…``, ``--live``
    drill        the command line on the sandbox: the same flags; a drill acts unless ``--dry-run``
    notebook     a headless notebook (plain papermill): ``target_digest="sha256:…"``, ``dry_run=False``
    walkthrough  JupyterLab: the parameters cell, a button, the exact step's cell

A raise site writes its next step with :func:`hint` from plain text and the parts
below (an :class:`Option` to set, a :class:`Rerun`, another :class:`RunPath` to run);
:class:`~rollback_helpers.errors.RollbackError` renders it for the interface the
run announced with :func:`use_interface` (a run's context does, as it opens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Interface = Literal["run", "drill", "notebook", "walkthrough"]
INTERFACES: tuple[Interface, ...] = get_args(Interface)
COMMAND_LINE: tuple[Interface, ...] = ("run", "drill")
NOTEBOOKS = {"path-a": "path_a_image_rollback", "path-b": "path_b_database_breakglass",
             "verify-flip": "path_b_verify_flip"}
_state: dict[str, Interface] = {"interface": "notebook"}


def use_interface(interface: Interface) -> None:
    """Every next step from now on is rendered for ``interface`` (one run a process)."""
    _state["interface"] = interface


def current_interface() -> Interface:
    return _state["interface"]


def interface_of(*, interactive: bool, run_id: str, backend: str) -> Interface:
    """Which interface drives a run, from its parameters: JupyterLab's walkthrough is
    interactive; the command line passes its run id; plain papermill passes neither."""
    if interactive:
        return "walkthrough"
    if run_id:
        return "drill" if backend == "sandbox" else "run"
    return "notebook"


def flag(name: str) -> str:
    """A parameter's command-line flag: ``target_digest`` → ``--target-digest``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Option:
    """Run again with this option set: ``value`` is literal (``True``) or a placeholder."""

    name: str
    value: str | bool = True

    def render(self, interface: Interface) -> str:
        if interface in COMMAND_LINE:
            return self._flag(interface)
        setting = f"{self.name}={self.python()}"
        if interface == "walkthrough":
            if self.name == "dry_run":
                return "the step's button (it asks before it changes anything)"
            return f"`{setting}` set in the parameters cell at the top, then Run → Run All Cells"
        return f"`{setting}` (papermill: -p {self.name} {self.value})"

    def _flag(self, interface: Interface) -> str:
        if self.name == "dry_run":
            if self.value is True:
                return "`--dry-run`"
            return "`--live`" if interface == "run" else "no `--dry-run`"
        if self.value is True:
            return f"`{flag(self.name)}`"
        if self.value is False:
            return f"no `{flag(self.name)}`"
        value = f'"{self.value}"' if set(self.value) & set(" <>|&;'$") else self.value
        return f"`{flag(self.name)} {value}`"  # a placeholder quoted: a shell reads <> itself

    def python(self) -> str:
        return repr(self.value) if isinstance(self.value, bool) else f'"{self.value}"'



@dataclass(frozen=True)
class Rerun:
    """Run again: the whole run (it resumes where it stopped), or ``step``'s cell on."""

    step: str = ""

    def render(self, interface: Interface) -> str:
        if interface in COMMAND_LINE:
            return "re-run the same command (a live run resumes where it stopped)"
        if interface == "walkthrough":
            where = f"the cell of step {self.step!r}" if self.step else "the cell that failed"
            return f"run {where} again (Run → Run Selected Cell and All Below)"
        return "run the notebook again with the same parameters"


@dataclass(frozen=True)
class RunPath:
    """Run another of the runbook's paths next (``verify-flip`` after the human flip)."""

    path: str
    env: str = ""

    def render(self, interface: Interface) -> str:
        notebook = NOTEBOOKS.get(self.path, self.path)
        if interface in COMMAND_LINE:
            env = f" --env {self.env}" if self.env else ""
            return f"`rollback-runbook {interface} {self.path}{env}`"
        if interface == "walkthrough":
            return f"open {notebook}.ipynb and run it (Run → Run All Cells)"
        env = f" -p env {self.env}" if self.env else ""
        return f"the {notebook} notebook (papermill {notebook}.ipynb out.ipynb{env})"


def given_as(name: str, value: str | bool, interface: Interface | None = None) -> str:
    """How a decision was given, for its record: ``flag --live``, ``parameter dry_run=False``."""
    chosen = interface or current_interface()
    option = Option(name, value)
    if chosen in COMMAND_LINE:
        text = option.render(chosen).replace("`", "")
        return f"without the flag {text[3:]}" if text.startswith("no ") else f"flag {text}"
    return f"parameter {name}={option.python()}"


Part = str | Option | Rerun | RunPath


@dataclass(frozen=True)
class Hint:
    """A next step: text and parts, rendered whole for one interface."""

    parts: tuple[Part, ...]

    def render(self, interface: Interface | None = None) -> str:
        chosen = interface or current_interface()
        text = "".join(p if isinstance(p, str) else p.render(chosen) for p in self.parts)
        return text[:1].upper() + text[1:]


def hint(*parts: Part) -> Hint:
    """``hint("Re-run with ", Option("backup_id", "<id>"), ".")``."""
    return Hint(tuple(parts))
