"""A run's context: the preflight fails (❌) when GitHub cannot be read, a live run says why."""

from __future__ import annotations

import httpx
import pytest

from rollback_helpers.clock import VirtualClock
from rollback_helpers.domain.config import load_config
from rollback_helpers.domain.parameters import PathAParameters, PathBParameters, checked
from rollback_helpers.errors import ConfigError, GitHubAuthError, GitHubUnavailable
from rollback_helpers.run.backends import Backends, local_runner
from rollback_helpers.run.context import RunContext, require_reason
from rollback_helpers.secrets import Secret
from rollback_helpers.ui.interactive import RecordingScreen


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def context(token: Secret | None, **given: object) -> tuple[RunContext, VirtualClock,
                                                             RecordingScreen]:
    clock, screen = VirtualClock(1_780_000_000.0), RecordingScreen()
    params = checked(PathAParameters, {"env": "staging", "backend": "real", **given})
    cfg = load_config()
    backends = Backends("real", httpx.Client(transport=httpx.MockTransport(unreachable)),
                        local_runner(), clock, token)
    return RunContext(params, cfg, cfg.env("staging"), backends, "2026-06-10T09:30:00Z",
                      screen=screen), clock, screen


def test_github_unreachable_is_a_failed_preflight_after_bounded_and_shown_retries() -> None:
    ctx, clock, screen = context(Secret("ghp_" + "q" * 36))
    began = clock.now()
    with pytest.raises(GitHubUnavailable) as failed:
        ctx.preflight_report("Preflight: Path A")
    waited = clock.now() - began
    assert 0 < waited <= 31
    assert f"over {waited:.0f} s (at most 31 s of retries" in failed.value.what
    (shown,) = screen.outputs
    assert shown.obj.status == "failed" and "not readable" in shown.text


def test_no_token_is_a_failed_preflight_naming_where_one_comes_from() -> None:
    ctx, _, screen = context(None)
    with pytest.raises(GitHubAuthError, match="No GitHub token found"):
        ctx.preflight_report("Preflight: Path A")
    assert screen.outputs[0].obj.status == "failed"


@pytest.mark.parametrize("model", [PathAParameters, PathBParameters])
def test_a_live_real_run_needs_a_reason(model: type[PathAParameters | PathBParameters]) -> None:
    why = {"path_a_tried": "the migration dropped a table"} if model is PathBParameters else {}
    live = checked(model, {"env": "staging", "backend": "real", "dry_run": False,
                           "run_id": "abc123", **why})
    with pytest.raises(ConfigError, match="needs a reason") as refused:
        require_reason(live)
    assert '`--reason "<what is rolled back and why>"`' in refused.value.next_step
    require_reason(checked(model, {"env": "staging", "backend": "real", "dry_run": False,
                                   "reason": "v42 crashes on start", **why}))
    require_reason(checked(model, {"env": "staging", "backend": "sandbox", "dry_run": False}))


def test_the_walkthrough_is_told_the_reason_field_in_its_parameters_cell() -> None:
    with pytest.raises(ConfigError) as refused:
        require_reason(checked(PathAParameters, {"env": "staging", "backend": "real",
                                                 "interactive": True}))
    assert 'reason="<what is rolled back and why>"` set in the parameters cell' in \
        refused.value.next_step
