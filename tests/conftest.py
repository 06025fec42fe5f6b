"""Shared fixtures. Each section serves the tests named in its heading."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings

from rollback_helpers.sandbox.postgres import backups as pg_backups
from rollback_helpers.sandbox.postgres import servers as pg

# Wall-clock deadlines make property tests flaky on a loaded 2-core CI machine; the
# properties, not their speed, are what these tests pin.
settings.register_profile("runbook", deadline=None)
settings.load_profile("runbook")


# -- every test: a state folder of its own (rollback_helpers/records/state_dir.py) -----------
@pytest.fixture(autouse=True)
def private_state_dir(tmp_path_factory: pytest.TempPathFactory,
                      monkeypatch: pytest.MonkeyPatch) -> Path:
    """Killed runs' working copies land in this test's own state folder (its processes inherit
    it), never in the user's: a test's orphan is recovered by that test only."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("ROLLBACK_STATE_DIR", str(folder))
    return folder


# -- sandbox PostgreSQL (test_sandbox_postgres.py, test_tcp_proxy.py) -------------------------
def _pg_state_dir() -> Path:
    # Traversable by the `postgres` OS user (the server's user when we are root), unlike
    # pytest's 0700 tmp_path, so clusters live under it rather than in a /tmp fallback.
    path = Path(tempfile.mkdtemp(prefix="rbpg-test-"))
    path.chmod(0o711)
    return path


@pytest.fixture
def pg_state_dir() -> Iterator[Path]:
    """A fresh sandbox state dir; every server started under it is stopped and deleted after."""
    path = _pg_state_dir()
    try:
        yield path
    finally:
        pg.purge(path)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_passwords() -> dict[str, str]:
    return {"app-user": secrets.token_urlsafe(18), "migration-user": secrets.token_urlsafe(18)}


@pytest.fixture(scope="session")
def shared_cluster(pg_passwords: dict[str, str]) -> Iterator[pg.ServerInfo]:
    """One running cluster for tests that only read from it or tunnel to it."""
    path = _pg_state_dir()
    try:
        yield pg_backups.create_cluster(path, "sharedpgcluster1", passwords=pg_passwords)
    finally:
        pg.purge(path)
        shutil.rmtree(path, ignore_errors=True)


Login = Callable[..., psycopg.Connection[tuple[object, ...]]]


@pytest.fixture
def pg_login() -> Iterator[Login]:
    """``pg_login(port, user, password, dbname="fly-db")``: a TCP login, closed after the test."""
    opened: list[psycopg.Connection[tuple[object, ...]]] = []

    def login(port: int, user: str, password: str, dbname: str = "fly-db"
              ) -> psycopg.Connection[tuple[object, ...]]:
        conn = psycopg.connect(host="127.0.0.1", port=port, user=user, password=password,
                               dbname=dbname, connect_timeout=10, autocommit=True)
        opened.append(conn)
        return conn

    yield login
    for conn in opened:
        conn.close()


# -- an in-process stand-in for JupyterLab (test_interactive.py) ------------------------------
from typing import Any  # noqa: E402  (this section was appended)


class Frontend:
    """Runs a notebook's cells in one in-process IPython shell and keeps their outputs the way
    JupyterLab does: each cell's outputs replaced when it runs, display ids updated in place
    wherever they are shown (also from a widget's callback), widgets clickable by cell."""

    WIDGET = "application/vnd.jupyter.widget-view+json"

    def __init__(self, nb: Any) -> None:
        from IPython.core.displayhook import DisplayHook
        from IPython.core.displaypub import DisplayPublisher
        from IPython.core.interactiveshell import InteractiveShell

        frontend = self

        class Publisher(DisplayPublisher):
            def publish(self, data: Any, metadata: Any = None, source: Any = None, *,
                        transient: Any = None, update: bool = False, **kwargs: Any) -> None:
                frontend._display(data, metadata or {}, (transient or {}).get("display_id"),
                                  update)

        class Hook(DisplayHook):
            def write_output_prompt(self) -> None:
                pass

            def write_format_data(self, format_dict: Any, md_dict: Any = None) -> None:
                frontend._append("execute_result", format_dict, md_dict or {})

        self.nb = nb
        self.shell = InteractiveShell.instance()
        self.shell.display_pub = Publisher(shell=self.shell)
        self.shell.displayhook = self.shell.display_trap.hook = Hook(shell=self.shell)
        self.shell.showtraceback = lambda *args, **kwargs: None  # the error output says it
        self.cell: Any = None
        self.displays: dict[str, list[Any]] = {}

    def _append(self, kind: str, data: Any, metadata: Any) -> Any:
        import nbformat

        output = nbformat.v4.new_output(kind, data=data, metadata=metadata)
        if kind == "execute_result":
            output.execution_count = self.cell.execution_count
        self.cell.outputs.append(output)
        return output

    def _display(self, data: Any, metadata: Any, display_id: str | None, update: bool) -> None:
        if update:
            for output in self.displays.get(display_id or "", []):
                output.data, output.metadata = data, metadata
            return
        output = self._append("display_data", data, metadata)
        if display_id:
            self.displays.setdefault(display_id, []).append(output)

    def index(self, source: str) -> int:
        return next(i for i, c in enumerate(self.nb.cells)
                    if c.cell_type == "code" and source in c.source)

    def run(self, index: int) -> bool:
        """Run one cell; False if it raised (JupyterLab then stops a Run All)."""
        import contextlib
        import io

        import nbformat

        self.cell = cell = self.nb.cells[index]
        cell.outputs = []
        cell.execution_count = self.shell.execution_count
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            result = self.shell.run_cell(cell.source, store_history=True)
        if printed.getvalue():
            cell.outputs.insert(0, nbformat.v4.new_output("stream", name="stdout",
                                                          text=printed.getvalue()))
        error = result.error_in_exec or result.error_before_exec
        if error is not None:
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename=type(error).__name__, evalue=str(error), traceback=[]))
            return False
        return True

    def run_from(self, start: int = 0) -> None:
        for index in range(start, len(self.nb.cells)):
            if self.nb.cells[index].cell_type == "code" and not self.run(index):
                return

    def texts(self, index: int) -> str:
        return "\n".join(o.get("text") or o.get("data", {}).get("text/plain", "")
                         or f"{o.get('ename')}: {o.get('evalue')}"
                         for o in self.nb.cells[index].outputs)

    def widgets(self, index: int) -> list[Any]:
        from ipywidgets.widgets.widget import _instances

        found = []
        for output in self.nb.cells[index].outputs:
            model = output.get("data", {}).get(self.WIDGET)
            if model:
                found.append(_instances[model["model_id"]])
        return found

    def save(self, path: Path) -> Path:
        import nbformat

        nbformat.write(self.nb, str(path))
        return path


@pytest.fixture
def frontend() -> Iterator[Callable[[Any], Frontend]]:
    """``frontend(nb)``: a fresh in-process JupyterLab stand-in; the shell is cleared after."""
    from IPython.core.interactiveshell import InteractiveShell

    yield Frontend
    InteractiveShell.clear_instance()


# -- a real S3 endpoint on loopback (tests/records/test_store.py, tests/cli/) ----------------
@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's standalone S3 server on 127.0.0.1 (a free port): its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Credentials and the endpoint in the environment (as an operator sets them); the
    machine's own AWS config is out of reach. Returns the endpoint URL."""
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID0001",
                        "AWS_SECRET_ACCESS_KEY": "s3-secret-never-printed-0123456789",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": s3_server,
                        "AWS_EC2_METADATA_DISABLED": "true",
                        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")
                        }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


@pytest.fixture
def s3_bucket(s3_env: str) -> str:
    """A fresh, empty bucket on the loopback endpoint: its name."""
    import fsspec

    name = f"records-{secrets.token_hex(4)}"
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir(name)
    return name


# -- next steps' interface (test_hints.py, tests/runbook/test_hints_per_interface.py) ---------
@pytest.fixture(autouse=True)
def _notebook_interface() -> Iterator[None]:
    """Every test starts with next steps rendered for a headless notebook, whatever an earlier
    test's run announced (the interface is one a process)."""
    from rollback_helpers.hints import use_interface

    use_interface("notebook")
    yield
    use_interface("notebook")


# -- a walkthrough's runs in one kernel (tests/run/test_kernel_runs.py) ---------------------------
@pytest.fixture(autouse=True)
def _no_kernel_run() -> Iterator[None]:
    """Every test's process is a fresh kernel: an earlier test's walkthrough run (in another
    world) is not this one's run before."""
    from rollback_helpers.run import kernel_runs

    kernel_runs.forget()
    yield
    kernel_runs.forget()
