"""Installed like a tool: the wheel, in a fresh virtual environment, drills from any directory.

The wheel is built from a copy of the source (build isolation, the machine's
configured index) and installed with ``--no-deps`` into a new venv; the
dependencies come from this test run's environment through a ``.pth`` line, so
the test costs a build, not a download. The project itself is only the wheel's
copy: this checkout is nowhere on the new venv's path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "incidents", "*.egg-info",
                              "__pycache__", ".*_cache", ".hypothesis", "test-artifacts")

pytestmark = pytest.mark.e2e


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel installed (dependencies shared, not downloaded)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=SKIP, symlinks=True)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(base / "dist"),
         str(source)], cwd=base)
    (wheel,) = (base / "dist").glob("rollback_runbook-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  cwd=base).stdout.strip()
    Path(purelib, "zz-shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=base)
    run([str(python), "-m", "pip", "check"], cwd=base)  # every dependency is there
    return env_dir


def clean_env(env_dir: Path) -> dict[str, str]:
    path = f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    drop = ("PYTHONPATH", "GITHUB_TOKEN", "GH_TOKEN", "ROLLBACK_RUNBOOK_CONFIG", "VIRTUAL_ENV")
    return {**{k: v for k, v in os.environ.items() if k not in drop and not
               k.startswith("ROLLBACK_")}, "PATH": path}


def test_the_wheel_ships_the_notebooks_and_not_this_checkout(installed: Path, tmp_path: Path) -> None:
    """The installed package is the wheel's copy, with its notebooks, which `lab` copies."""
    probe = ("import json, rollback_helpers as r; from rollback_helpers.run.archive import "
             "notebooks_dir; print(json.dumps([r.__file__, sorted(p.name for p in "
             "notebooks_dir().glob('*.ipynb'))]))")
    where, notebooks = json.loads(run([str(installed / "bin" / "python"), "-c", probe],
                                      cwd=tmp_path, env=clean_env(installed)).stdout)
    assert where.startswith(str(installed)) and not where.startswith(str(ROOT))
    assert notebooks == ["path_a_image_rollback.ipynb", "path_b_database_breakglass.ipynb",
                         "path_b_verify_flip.ipynb", "start_here.ipynb"]
    lab = ("from pathlib import Path; from rollback_helpers.cli.lab import copy_notebooks; "
           "print(len(copy_notebooks(Path('workspace'), backend='sandbox')))")
    copies = run([str(installed / "bin" / "python"), "-c", lab], cwd=tmp_path,
                 env=clean_env(installed)).stdout
    assert copies.strip() == "4" and len(list((tmp_path / "workspace").glob("*.ipynb"))) == 4


def test_a_dry_run_drill_from_any_directory(installed: Path, tmp_path: Path) -> None:
    """`rollback-runbook drill path-a --env staging --dry-run` works from a temporary directory
    and archives under ./incidents there."""
    work = tmp_path / "somewhere"
    work.mkdir()
    done = run([str(installed / "bin" / "rollback-runbook"), "drill", "path-a", "--env",
                "staging", "--dry-run", "--speed", "0", "--quiet"], cwd=work,
               env=clean_env(installed))
    assert "Done: path-a on staging" in done.stdout
    (archived,) = (work / "incidents" / "drills").glob("*-staging-path-a-dry-run.ipynb")
    outcome = json.loads(archived.read_text())["metadata"]["rollback_runbook"]
    assert outcome["exit_code"] == 0 and outcome["outcome"] == "success"


def test_reference_commands_work_from_any_directory(installed: Path, tmp_path: Path) -> None:
    """`scenarios` and `exit-codes` need no checkout either."""
    env = clean_env(installed)
    cli = str(installed / "bin" / "rollback-runbook")
    assert "b-default" in run([cli, "scenarios"], cwd=tmp_path, env=env).stdout
    assert "precondition failed" in run([cli, "exit-codes"], cwd=tmp_path, env=env).stdout


def test_init_and_check_from_any_directory(installed: Path, tmp_path: Path) -> None:
    """`init` writes ./runbook.toml where it is run; `check` preflights the default sandbox."""
    env = clean_env(installed)
    cli = str(installed / "bin" / "rollback-runbook")
    team = tmp_path / "team"
    team.mkdir()
    run([cli, "init", "--repo", "acme/shop", "--app", "staging=shop-staging"], cwd=team, env=env)
    assert 'github_repo = "acme/shop"' in (team / "runbook.toml").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run([cli, "check"], cwd=elsewhere, env=env)
    assert "checks passed" in done.stdout
    assert list(elsewhere.iterdir()) == []  # a preflight leaves nothing behind
