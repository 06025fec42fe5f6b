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

:func:`sandbox_backends` builds a sandbox world from a scenario and wires the two seams
to it, for a test that drives a client, a lock or a store against the sandbox the way a
drill does (the world is the real thing: its GitHub, its flyctl, its servers)::

    sandbox = sandbox_backends("default", tmp_path / "world")
    sandbox.github().comments.add_comment(1001, "note")   # a GitHubClient: the world's repo and token
    assert sandbox.world.calls()[-1]["call"] == "POST /repos/renewa/renewa-one/issues/1001/comments"
    sandbox.fly().status("renewa-one-staging")    # flyctl, answered by the world

:func:`seed_repository_files` fills the world's repository in one write (a large
``github://`` records store, say) instead of one contents-API request a file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from rollback_helpers.clients.commands import CommandResult, CommandRunner
from rollback_helpers.clients.fly import Fly
from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clock import Clock, VirtualClock
from rollback_helpers.secrets import Secret

if TYPE_CHECKING:
    from rollback_helpers.sandbox.core.world import World
from rollback_helpers.errors import RecordMissing
from rollback_helpers.records.store import RecordStore

Argv = tuple[str, ...]
Matcher = Argv | Callable[[Argv], bool]
Answer = CommandResult | BaseException | Callable[[Argv], CommandResult]
Handler = Callable[[httpx.Request], httpx.Response]


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

# -- a sandbox world, wired ---------------------------------------------------------------------
@dataclass
class SandboxBackends:
    """A sandbox world and the two seams wired to it: ``http`` routes ``api.github.com`` to
    the world's GitHub and ``<app>.fly.dev`` to its health endpoints; ``runner`` is its
    flyctl; ``clock`` is the clock clients sleep on (GitHub's side moves the world forward
    to it, so a wait lets scheduled events come due); ``token`` is the world's own."""

    world: World
    http: httpx.Client
    runner: CommandRunner
    clock: Clock
    token: Secret

    @classmethod
    def wire(cls, world: World, *, clock: Clock | None = None,
             wrap: Callable[[Handler], Handler] | None = None) -> SandboxBackends:
        """The seams of an existing ``world``. ``clock`` defaults to a virtual one at the
        world's time; ``wrap`` wraps the HTTP handler (to record requests, or to lose an
        answer after the world accepted the request)."""
        from rollback_helpers.sandbox.fly.flyctl import FlyctlSandbox
        from rollback_helpers.sandbox.http import sandbox_transport

        clock = clock if clock is not None else VirtualClock(world.now)
        handler: Handler = sandbox_transport(world, clock=clock).handle_request
        http = httpx.Client(transport=httpx.MockTransport(wrap(handler) if wrap else handler),
                            timeout=30.0)
        return cls(world, http, FlyctlSandbox(world), clock,
                   Secret(str(world.state["github"]["token"])))

    @property
    def repo(self) -> str:
        """The repository the world's GitHub holds (``owner/name``)."""
        return str(self.world.state["github"]["repo"])

    def github(self, repo: str | None = None, *, max_retries: int = 5,
               mutation_spacing: float = 0.0) -> GitHubClient:
        """A GitHub client of the world's repository (or ``repo``) with the world's token.
        Writes are not spaced out (``mutation_spacing`` 0) unless asked."""
        return GitHubClient(self.http, repo or self.repo, self.token, clock=self.clock,
                            max_retries=max_retries, mutation_spacing=mutation_spacing)

    def fly(self, app: str | None = None) -> Fly:
        """flyctl through the world's emulator; with ``app``, other apps' commands are refused."""
        return Fly(self.runner, app=app)

    def close(self) -> None:
        self.http.close()


def seed_repository_files(world: World, files: Mapping[str, bytes]) -> None:
    """Put ``files`` (path → bytes) into the world's GitHub repository as one write of its
    state, as if they had been committed long ago: a test that needs a thousand records in a
    ``github://`` store arranges them without a thousand contents-API requests (each of which
    rewrites the world's state). Nothing is logged as a call, because nobody made one."""
    from rollback_helpers.sandbox.github.records import store_file

    with world.transaction():
        for path, data in files.items():
            store_file(world.state["github"], path.strip("/"), data)


def sandbox_backends(scenario: str, directory: str | Path, *, speed: float = 0.0,
                     clock: Clock | None = None,
                     wrap: Callable[[Handler], Handler] | None = None) -> SandboxBackends:
    """Build a fresh world from ``scenario`` (a shipped name or a ``.toml`` path) in
    ``directory`` and wire the seams to it (see :meth:`SandboxBackends.wire`).

    A Path B scenario starts real PostgreSQL servers: stop and delete them when done with
    ``rollback_helpers.sandbox.discard(directory)``.
    """
    from rollback_helpers.sandbox.scenarios import create_world

    return SandboxBackends.wire(create_world(scenario, Path(directory), speed=speed),
                                clock=clock, wrap=wrap)
