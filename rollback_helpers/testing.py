"""Test doubles that ship with the package.

:class:`ScriptedRunner` is a :class:`~rollback_helpers.clients.commands.CommandRunner`
that answers from a script instead of starting processes, in the spirit of
invoke's ``MockContext``: map an argv tuple (or a predicate over the argv) to a
prepared :class:`~rollback_helpers.clients.commands.CommandResult`; every call is
recorded; a command it was not given raises :class:`UnexpectedCommand` (an
``AssertionError``), so a test fails loudly instead of silently running
something nobody planned::

    runner = ScriptedRunner({
        ("flyctl", "status", "-a", "app", "--json"): ok(stdout=STATUS_JSON),
    })
    fly = Fly(runner)
    fly.status("app")
    assert runner.argvs() == [("flyctl", "status", "-a", "app", "--json")]

A list of results is answered in order (polling: initializing, then ready) and
is exhausted after its last entry. A result may also be an exception to raise
(``CommandTimeout``) or a callable ``argv -> CommandResult``. Long-running
commands (``mpg proxy``) are scripted with :meth:`ScriptedRunner.add_process`.

:func:`exercise_write_once` is the records store conformance check: what every
:class:`~rollback_helpers.records.store.RecordStore` must do (create, never
overwrite, suffix a taken name, list, read, a ``drills`` child, a missing record
named). A team adding a store runs it against an empty location of theirs::

    exercise_write_once(open_store("s3://my-bucket/incidents-test"))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from rollback_helpers.clients.commands import CommandResult
from rollback_helpers.errors import RecordMissing
from rollback_helpers.records.store import RecordStore

Argv = tuple[str, ...]
Matcher = Argv | Callable[[Argv], bool]
Answer = CommandResult | BaseException | Callable[[Argv], CommandResult]


class UnexpectedCommand(AssertionError):
    """The code under test ran a command the script did not provide for."""


def ok(stdout: str = "", stderr: str = "") -> CommandResult:
    """A successful result (the argv is filled in when it is answered)."""
    return CommandResult((), 0, stdout, stderr)


def fail(stderr: str, returncode: int = 1, stdout: str = "") -> CommandResult:
    """A failed result, as flyctl prints it: ``Error: …`` on stderr, exit 1."""
    return CommandResult((), returncode, stdout, stderr)


@dataclass(frozen=True)
class Call:
    """One recorded call: ``kind`` is ``run`` or ``start``."""

    kind: str
    argv: Argv
    timeout: float | None
    env: Mapping[str, str] | None


@dataclass
class ScriptedProcess:
    """A scripted background process: prints ``lines``, then runs on or exits.

    ``returncode`` None means it keeps running after its lines until stopped;
    an int means it exits with that code once its lines have been read.
    """

    lines: list[str] = field(default_factory=list)
    returncode: int | None = None
    stderr: str = ""
    stop_code: int = 0
    argv: Argv = ()
    stopped: bool = False

    def read_line(self, timeout: float) -> str | None:
        if self.lines and not self.stopped:
            return self.lines.pop(0)
        return None

    def poll(self) -> int | None:
        if self.stopped:
            return self.stop_code
        return self.returncode if not self.lines else None

    def stderr_text(self) -> str:
        return self.stderr

    def stop(self, timeout: float = 5.0) -> int:
        if not self.stopped and self.returncode is None:
            self.stopped = True
            return self.stop_code
        self.stopped = True
        return self.returncode if self.returncode is not None else self.stop_code


@dataclass
class _Entry:
    matcher: Matcher
    answers: list[Answer]
    repeat: bool  # a single answer is given every time; a list is consumed in order
    used: int = 0


class ScriptedRunner:
    """A CommandRunner that answers from a script and refuses anything else."""

    def __init__(self, script: Mapping[Argv, Answer | Sequence[Answer]] | None = None) -> None:
        self._entries: list[_Entry] = []
        self._processes: list[tuple[Matcher, ScriptedProcess]] = []
        self.calls: list[Call] = []
        for argv, answer in (script or {}).items():
            self.add(argv, answer)

    # -- scripting -------------------------------------------------------------------
    def add(self, matcher: Sequence[str] | Callable[[Argv], bool],
            answer: Answer | Sequence[Answer]) -> ScriptedRunner:
        """Answer commands matching ``matcher`` (an exact argv, or a predicate)."""
        key: Matcher = matcher if callable(matcher) else tuple(matcher)
        if isinstance(answer, (CommandResult, BaseException)) or callable(answer):
            self._entries.append(_Entry(key, [answer], repeat=True))
        else:
            self._entries.append(_Entry(key, list(answer), repeat=False))
        return self

    def add_process(self, matcher: Sequence[str] | Callable[[Argv], bool],
                    process: ScriptedProcess) -> ScriptedProcess:
        """Answer ``start`` of commands matching ``matcher`` with ``process`` (once)."""
        key: Matcher = matcher if callable(matcher) else tuple(matcher)
        self._processes.append((key, process))
        return process

    # -- the CommandRunner protocol ------------------------------------------------------
    def run(self, argv: Sequence[str], *, timeout: float,
            env: Mapping[str, str] | None = None) -> CommandResult:
        key = tuple(argv)
        self.calls.append(Call("run", key, timeout, env))
        for entry in self._entries:
            if _matches(entry.matcher, key) and (entry.repeat or entry.used < len(entry.answers)):
                answer = entry.answers[0 if entry.repeat else entry.used]
                entry.used += 1
                return _answer(answer, key)
        raise UnexpectedCommand(f"ScriptedRunner was not given {key!r}.\n"
                                f"Scripted: {self._describe()}")

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
              ) -> ScriptedProcess:
        key = tuple(argv)
        self.calls.append(Call("start", key, None, env))
        for i, (matcher, process) in enumerate(self._processes):
            if _matches(matcher, key):
                del self._processes[i]
                process.argv = key
                return process
        raise UnexpectedCommand(f"ScriptedRunner was not given a process for {key!r}.\n"
                                f"Scripted: {self._describe()}")

    # -- inspection ------------------------------------------------------------------------
    def argvs(self) -> list[Argv]:
        """The argv of every call, in order (including refused-by-script ones)."""
        return [call.argv for call in self.calls]

    def unused(self) -> list[Matcher]:
        """Scripted commands never run (lists count as unused until fully consumed)."""
        left = [e.matcher for e in self._entries
                if e.used == 0 or (not e.repeat and e.used < len(e.answers))]
        return left + [matcher for matcher, _ in self._processes]

    def _describe(self) -> str:
        shown = [repr(m) if not callable(m) else getattr(m, "__name__", "<predicate>")
                 for m in [e.matcher for e in self._entries] + [m for m, _ in self._processes]]
        return ", ".join(shown) or "(nothing)"


def _matches(matcher: Matcher, argv: Argv) -> bool:
    return matcher(argv) if callable(matcher) else matcher == argv


def _answer(answer: Answer, argv: Argv) -> CommandResult:
    if isinstance(answer, BaseException):
        raise answer
    if isinstance(answer, CommandResult):
        return replace(answer, argv=argv)
    return answer(argv)


class StoreNonconformance(AssertionError):
    """A records store did not do what :func:`exercise_write_once` asks of every store."""


def _expect(held: bool, what: str, store: RecordStore) -> None:
    if not held:
        raise StoreNonconformance(f"{type(store).__name__} at {store.location}: {what}")


def exercise_write_once(store: RecordStore) -> None:
    """Check that ``store`` (empty, writable) behaves as every records store must: it is
    writable, a record is created with the location it will be read back from, a taken name
    gets ``-2`` and the first record is never overwritten, records list in name order
    without a child's, a ``drills`` child holds its own, and a missing record is a
    :class:`~rollback_helpers.errors.RecordMissing`. Raises :class:`StoreNonconformance`
    naming the first thing that does not hold; it writes ``a.ipynb``, ``a-2.ipynb`` and
    ``drills/d.ipynb``."""
    store.check_writable()
    first, data = store.put_new("a.ipynb", lambda location: f"at {location}".encode())
    _expect((first.name, data) == ("a.ipynb", f"at {store.location}/a.ipynb".encode()),
            f"the first record is {first.name!r} holding {data!r}", store)
    second, _ = store.put_new("a.ipynb", lambda _location: b"second")
    _expect(second.name == "a-2.ipynb" and second.location == f"{store.location}/a-2.ipynb",
            f"a taken name became {second.name!r} at {second.location!r}, not a-2.ipynb", store)
    _expect(store.read("a.ipynb") == data, "the first record was overwritten", store)
    _expect(store.read("a-2.ipynb") == b"second", "a-2.ipynb does not read back", store)
    store.child("drills").put_new("d.ipynb", lambda _location: b"drill")
    listed = [r.name for r in store.list_records()]
    _expect(listed == ["a-2.ipynb", "a.ipynb"], f"it lists {listed}", store)
    drills = [r.name for r in store.child("drills").list_records()]
    _expect(drills == ["d.ipynb"], f"its drills child lists {drills}", store)
    try:
        store.read("nothing.ipynb")
    except RecordMissing as exc:
        _expect("No record at" in exc.what, f"a missing record says {exc.what!r}", store)
    else:
        raise StoreNonconformance(f"{type(store).__name__} at {store.location}: reading a "
                                  "missing record raised nothing")
