"""What every runbook path starts with: parameters checked, config loaded, seams opened."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Any

from rollback_helpers.backends import Backends, open_backends
from rollback_helpers.clock import utc_iso
from rollback_helpers.config import EnvConfig, RunbookConfig, load_config
from rollback_helpers.display import Report
from rollback_helpers.errors import ConfirmationRequired

PROTECTED_ENVS = ("production",)


@dataclass
class RunContext:
    path: str
    cfg: RunbookConfig
    env: EnvConfig
    backends: Backends
    dry_run: bool
    reason: str
    incident: str
    operator: str
    archive_path: str
    started_at: str
    timeline: list[tuple[str, str]] = field(default_factory=list)

    def log(self, event: str) -> None:
        """One line of the incident timeline, stamped with the run's clock."""
        self.timeline.append((utc_iso(self.backends.clock.now()), event))

    @property
    def mode(self) -> str:
        return "DRY RUN (changes nothing)" if self.dry_run else "LIVE"

    def preflight_report(self, title: str) -> Report:
        token_source = "present (from the kernel's environment)" if self.backends.name == "real" \
            else "sandbox token"
        report = Report(title)
        for key, value in [("environment", self.env.name), ("app", self.env.app),
                           ("mode", self.mode), ("backend", self.backends.name),
                           ("GitHub repo", self.cfg.github_repo),
                           ("GitHub token", token_source if self.backends.github_token else "MISSING"),
                           ("operator", self.operator), ("incident", self.incident or "—"),
                           ("reason", self.reason or "—")]:
            report.fact(key, value)
        if self.backends.sandbox_dir:
            report.note(f"Sandbox world: {self.backends.sandbox_dir} — nothing real is touched.")
        return report


def open_run(path: str, *, env: str | None, dry_run: bool, backend: str, scenario: str = "default",
             sandbox_dir: str | None = None, confirm: str = "", operator: str = "",
             reason: str = "", incident: str = "", archive_path: str = "",
             config: dict[str, Any] | None = None) -> RunContext:
    """Validate the parameters (nothing is contacted before this passes) and open the seams."""
    cfg = load_config(config)
    env_cfg = cfg.env(env)
    if env_cfg.name in PROTECTED_ENVS and not dry_run and confirm != env_cfg.name:
        raise ConfirmationRequired(
            f"A live {path} run against {env_cfg.name} needs an explicit confirmation.",
            f"Re-run with confirm={env_cfg.name!r} (or dry_run=True to only see the plan).")
    backends = open_backends(backend, scenario=scenario, sandbox_dir=sandbox_dir, cfg=cfg)
    ctx = RunContext(path, cfg, env_cfg, backends, dry_run, reason, incident,
                     operator or os.environ.get("ROLLBACK_OPERATOR") or _login(),
                     archive_path, utc_iso(backends.clock.now()))
    ctx.log(f"{path} started on {env_cfg.name} ({ctx.mode}, backend {backends.name})")
    return ctx


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
