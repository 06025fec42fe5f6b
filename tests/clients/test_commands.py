"""The subprocess seam with real tiny commands, and the sandbox's record of processes to stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from rollback_helpers.clients.commands import (
    DEFAULT_PROGRAMS,
    CommandResult,
    PopenProcess,
    SubprocessRunner,
    describe,
    program_allowed,
)
from rollback_helpers.errors import (
    CommandRefused,
    CommandTimeout,
    ExternalServiceError,
    RollbackError,
)
from rollback_helpers.sandbox.core.processes import PID_DIR, forget_process, record_process
from rollback_helpers.sandbox.occupants import stop_recorded_processes
from rollback_helpers.secrets import MASK

PY = sys.executable
DEADLINE_S = 10.0  # generous upper bound for a real process to do something trivial


def python(code: str) -> list[str]:
    return [PY, "-c", code]


def running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def until(condition: Callable[[], bool], proc: PopenProcess) -> bool:
    """Wait for ``condition`` using the process's own read timeout as the tick, up to a deadline."""
    for _ in range(int(DEADLINE_S / 0.02)):
        if condition():
            return True
        proc.read_line(timeout=0.02)
    return condition()


@pytest.fixture
def runner() -> SubprocessRunner:
    """A runner that may start this Python (the tiny real commands below) besides flyctl."""
    return SubprocessRunner(allowed_programs=[PY])


@pytest.fixture
def started(runner: SubprocessRunner) -> Iterator[Callable[[str], PopenProcess]]:
    """Start ``python -c code`` in the background; every one started is stopped after the test."""
    procs: list[PopenProcess] = []

    def start(code: str) -> PopenProcess:
        proc = runner.start(python(code))
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop(timeout=1)


# -- SubprocessRunner.run -----------------------------------------------------------------------
def test_run_captures_stdout_stderr_and_returncode(runner: SubprocessRunner) -> None:
    """A command's stdout, stderr and exit code come back in a CommandResult."""
    result = runner.run(python("import sys; print('out'); print('err', file=sys.stderr); "
                               "sys.exit(3)"), timeout=DEADLINE_S)
    assert result == CommandResult((PY, "-c", result.argv[2]), 3, "out\n", "err\n")
    assert not result.ok
    assert runner.run(python("pass"), timeout=DEADLINE_S).ok


def test_run_passes_arguments_literally_without_a_shell(runner: SubprocessRunner,
                                                        tmp_path: Path) -> None:
    """Shell syntax in an argument (';', '$(…)', '*', '>') reaches the program untouched."""
    marker = tmp_path / "injected"
    tricky = [f"a; touch {marker}", "$(whoami)", "*", f"> {marker}", "it's \"quoted\""]
    result = runner.run([*python("import sys; print('\\n'.join(sys.argv[1:]))"), *tricky],
                        timeout=DEADLINE_S)
    assert result.stdout.splitlines() == tricky
    assert not marker.exists()


def test_run_merges_env_over_the_base_environment() -> None:
    """The child sees the runner's base environment plus the per-call env, and nothing else."""
    runner = SubprocessRunner(base_env={"RB_BASE": "base", "RB_BOTH": "base"},
                              allowed_programs=[PY])
    result = runner.run(python("import os; print(sorted((k, v) for k, v in os.environ.items() "
                               "if k.startswith('RB_')))"),
                        timeout=DEADLINE_S, env={"RB_BOTH": "call", "RB_CALL": "call"})
    assert result.stdout.strip() == str([("RB_BASE", "base"), ("RB_BOTH", "call"),
                                         ("RB_CALL", "call")])


def test_run_gives_the_child_an_empty_stdin(runner: SubprocessRunner) -> None:
    """A command that reads stdin sees end-of-file at once instead of waiting for input."""
    result = runner.run(python("import sys; print(repr(sys.stdin.read()))"), timeout=DEADLINE_S)
    assert result.stdout.strip() == "''"


def test_timeout_raises_command_timeout_naming_the_command(runner: SubprocessRunner) -> None:
    """A command outliving its timeout raises CommandTimeout that names the command."""
    argv = python("import time; time.sleep(60)")
    with pytest.raises(CommandTimeout) as caught:
        runner.run(argv, timeout=0.3)
    assert describe(argv) in str(caught.value)
    assert "did not finish within" in str(caught.value)
    assert isinstance(caught.value.__cause__, subprocess.TimeoutExpired)
    assert caught.value.exit_code == 4


def test_timeout_message_states_the_timeout_given(runner: SubprocessRunner) -> None:
    """The timeout message says how long the command was given."""
    with pytest.raises(CommandTimeout, match=r"within 0\.25 ?s"):
        runner.run(python("import time; time.sleep(60)"), timeout=0.25)


@pytest.fixture
def no_flyctl(tmp_path: Path) -> SubprocessRunner:
    """A runner whose PATH holds no flyctl, so an allowed program is not installed."""
    return SubprocessRunner(base_env={"PATH": str(tmp_path)})


def test_missing_binary_is_a_clear_error(no_flyctl: SubprocessRunner) -> None:
    """A program that is not installed gives an error naming it and saying how to fix it."""
    with pytest.raises(ExternalServiceError) as caught:
        no_flyctl.run(["flyctl", "status"], timeout=DEADLINE_S)
    message = str(caught.value)
    assert "`flyctl` is not installed or not on PATH" in message
    assert "Next:" in message and isinstance(caught.value.__cause__, FileNotFoundError)


def test_missing_binary_is_not_reported_as_a_timeout(no_flyctl: SubprocessRunner) -> None:
    """A missing program is not a command that outlived its deadline."""
    with pytest.raises(RollbackError) as caught:
        no_flyctl.run(["fly", "version"], timeout=DEADLINE_S)
    assert not isinstance(caught.value, CommandTimeout | CommandRefused)


# -- the runner's allow-list of programs ----------------------------------------------------------
@pytest.mark.parametrize("argv", [["sh", "-c", "touch /tmp/x"], ["/bin/rm", "-rf", "/tmp/x"],
                                  ["psql", "postgres://u:allow-pw-1@h/db"], ["flyctl2", "status"],
                                  ["/usr/bin/python3", "-c", "pass"], [""], []])
def test_programs_off_the_allow_list_are_refused_before_starting(
        argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything but flyctl/fly is refused with CommandRefused naming it; no process is started."""
    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "run", no_process)
    monkeypatch.setattr(subprocess, "Popen", no_process)
    runner = SubprocessRunner()
    for attempt in (lambda: runner.run(argv, timeout=DEADLINE_S), lambda: runner.start(argv)):
        with pytest.raises(CommandRefused) as caught:
            attempt()
        message = str(caught.value)
        assert f"`{(argv or [''])[0] or '(no program)'}` is not on the command runner's allow-list" \
            in message
        assert "flyctl, fly" in message and "allow-pw-1" not in message
        assert caught.value.exit_code == 4


@pytest.mark.parametrize("program, allowed, expected", [
    ("flyctl", (), True), ("fly", (), True), ("/usr/local/bin/flyctl", (), True),
    ("/home/me/.fly/bin/fly", (), True), ("flyctl.exe", (), False), ("./flyctl-evil", (), False),
    ("/opt/fly/bin/flyctl-0.4", ("/opt/fly/bin/flyctl-0.4",), True),
    ("/tmp/flyctl-0.4", ("/opt/fly/bin/flyctl-0.4",), False),
    ("/opt/fly/bin/../bin/flyctl-0.4", ("/opt/fly/bin/flyctl-0.4",), True),
    ("python3", ("python3",), True), ("/usr/bin/python3", ("python3",), True),
])
def test_programs_match_by_base_name_or_exact_path(program: str, allowed: tuple[str, ...],
                                                   expected: bool) -> None:
    """Bare names match wherever the program lives; a path entry must match exactly."""
    assert program_allowed(program, (*DEFAULT_PROGRAMS, *allowed)) is expected


def test_the_configured_flyctl_path_is_allowed(tmp_path: Path) -> None:
    """The flyctl path from the configuration runs even when its name is not flyctl."""
    program = tmp_path / "flyctl-0.4.87"
    program.write_text("#!/bin/sh\necho configured \"$@\"\n")
    program.chmod(0o755)
    with pytest.raises(CommandRefused):
        SubprocessRunner().run([str(program), "version"], timeout=DEADLINE_S)
    runner = SubprocessRunner(flyctl=str(program))
    assert runner.run([str(program), "version"], timeout=DEADLINE_S).stdout == "configured version\n"


def test_describe_masks_the_access_token_flag() -> None:
    """The value after -t/--access-token is masked, however short or unrecognisable it is."""
    assert describe(["flyctl", "-t", "abc", "status", "--access-token", "x y"]) == (
        f"flyctl -t {MASK} status --access-token {MASK}")


def test_non_executable_program_is_translated(runner: SubprocessRunner, tmp_path: Path) -> None:
    """A program without execute permission is a RollbackError, not a raw OSError."""
    program = tmp_path / "flyctl"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o644)
    with pytest.raises(RollbackError):
        runner.run([str(program)], timeout=DEADLINE_S)


def test_describe_quotes_like_a_shell_and_masks_secrets() -> None:
    """describe() shows the argv as a human would type it, with passwords masked."""
    argv = ["psql", "postgres://u:argv-pw-999@h/db", "-c", "select 1"]
    assert describe(argv) == f"psql postgres://u:{MASK}@h/db -c 'select 1'"


def test_stderr_tail_keeps_the_last_lines_redacted() -> None:
    """stderr_tail shows only the last lines, with passwords masked."""
    stderr = "\n".join(f"line {i}" for i in range(10)) + "\npostgres://u:tail-pw-1@h/db\n"
    result = CommandResult(("x",), 1, "", stderr)
    assert result.stderr_tail(2) == f"line 9\npostgres://u:{MASK}@h/db"


# -- PopenProcess -------------------------------------------------------------------------------
def test_background_process_reads_lines_and_stops(started: Callable[[str], PopenProcess]) -> None:
    """read_line gets each line; stop interrupts, returns the exit code and leaves no process."""
    proc = started("import time; print('ready', flush=True); print('listening', flush=True); "
                   "time.sleep(60)")
    assert proc.read_line(timeout=DEADLINE_S) == "ready"
    assert proc.read_line(timeout=DEADLINE_S) == "listening"
    assert proc.poll() is None
    assert proc.stop() == -signal.SIGINT
    assert proc.poll() == -signal.SIGINT
    assert not running(proc.pid)
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)


def test_stop_is_idempotent(started: Callable[[str], PopenProcess]) -> None:
    """Stopping twice returns the same exit code and raises nothing."""
    proc = started("import time; print('up', flush=True); time.sleep(60)")
    assert proc.read_line(timeout=DEADLINE_S) == "up"
    first = proc.stop()
    assert proc.stop() == first == -signal.SIGINT


def test_stop_kills_a_process_that_ignores_interrupts(
        started: Callable[[str], PopenProcess]) -> None:
    """A process deaf to SIGINT is killed once the stop timeout passes."""
    proc = started("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                   "print('deaf', flush=True); time.sleep(60)")
    assert proc.read_line(timeout=DEADLINE_S) == "deaf"
    assert proc.stop(timeout=0.2) == -signal.SIGKILL
    assert not running(proc.pid)


def test_stop_takes_the_process_group_down(started: Callable[[str], PopenProcess]) -> None:
    """Children the background process started are stopped with it."""
    proc = started("import subprocess, sys, time; "
                   "child = subprocess.Popen([sys.executable, '-c', "
                   "'import time; time.sleep(60)']); "
                   "print(child.pid, flush=True); time.sleep(60)")
    line = proc.read_line(timeout=DEADLINE_S)
    assert line is not None
    grandchild = int(line)
    assert running(grandchild)
    proc.stop()
    assert until(lambda: not running(grandchild), proc)


def test_read_line_gives_none_on_silence_and_at_exit(
        started: Callable[[str], PopenProcess]) -> None:
    """read_line returns None when nothing comes in time, and None once the output has ended."""
    silent = started("import time; time.sleep(60)")
    assert silent.read_line(timeout=0.05) is None

    brief = started("print('only line')")
    assert brief.read_line(timeout=DEADLINE_S) == "only line"
    assert brief.read_line(timeout=DEADLINE_S) is None
    assert until(lambda: brief.poll() is not None, brief)
    assert brief.poll() == 0 and brief.stop() == 0


def test_stderr_text_is_collected_and_redacted(started: Callable[[str], PopenProcess]) -> None:
    """What a background process writes to stderr is kept, passwords masked."""
    proc = started("import sys; print('proxy: postgres://u:bg-pw-246@h/db', file=sys.stderr)")
    assert until(lambda: "proxy:" in proc.stderr_text(), proc)
    assert proc.stderr_text() == f"proxy: postgres://u:{MASK}@h/db"


# -- sandbox/core/processes, sandbox/occupants ------------------------------------------------------
@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    yield child
    if child.poll() is None:
        child.kill()
        child.wait()


def test_recorded_process_is_stopped_and_forgotten(tmp_path: Path,
                                                   sleeper: subprocess.Popen[bytes]) -> None:
    """stop_recorded_processes kills a recorded sleeping child and removes its pid file."""
    record_process(tmp_path, "tunnel", sleeper.pid)
    pid_file = tmp_path / PID_DIR / "tunnel.pid"
    record = json.loads(pid_file.read_text())
    assert record["pid"] == sleeper.pid and record["opener"]["pid"] == os.getpid()
    assert record["started"] == psutil.Process(sleeper.pid).create_time()
    assert running(sleeper.pid)

    assert stop_recorded_processes(tmp_path) == ["tunnel"]
    assert not pid_file.exists()
    assert not running(sleeper.pid)
    with pytest.raises(ProcessLookupError):
        os.kill(sleeper.pid, 0)


def test_stopping_recorded_processes_is_idempotent(tmp_path: Path,
                                                   sleeper: subprocess.Popen[bytes]) -> None:
    """A second stop finds nothing to do and raises nothing; so does an empty state dir."""
    record_process(tmp_path, "tunnel", sleeper.pid)
    stop_recorded_processes(tmp_path)
    assert stop_recorded_processes(tmp_path) == []
    assert stop_recorded_processes(tmp_path / "never-created") == []


def test_already_dead_or_garbled_pid_files_are_cleared(tmp_path: Path) -> None:
    """Pid files of processes already gone, or not holding a number, are removed without error."""
    dead = subprocess.Popen([PY, "-c", "pass"])
    dead.wait()
    record_process(tmp_path, "dead", dead.pid)
    (tmp_path / PID_DIR / "garbled.pid").write_text("not-a-pid")
    assert sorted(stop_recorded_processes(tmp_path)) == ["dead", "garbled"]
    assert list((tmp_path / PID_DIR).iterdir()) == []


def test_a_recorded_pid_now_running_another_process_is_not_signalled(
        tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    """A record whose pid has since been given to another process (another start time) is
    dropped, and that process is left alone."""
    record_process(tmp_path, "tunnel", sleeper.pid)
    pid_file = tmp_path / PID_DIR / "tunnel.pid"
    record = json.loads(pid_file.read_text())
    pid_file.write_text(json.dumps({**record, "started": record["started"] - 3600}))
    assert stop_recorded_processes(tmp_path) == ["tunnel"]
    assert sleeper.poll() is None and not pid_file.exists()


def test_forgotten_process_is_not_stopped(tmp_path: Path,
                                          sleeper: subprocess.Popen[bytes]) -> None:
    """forget_process drops the record, so the process is left alone."""
    record_process(tmp_path, "tunnel", sleeper.pid)
    forget_process(tmp_path, "tunnel")
    assert stop_recorded_processes(tmp_path) == []
    assert sleeper.poll() is None
