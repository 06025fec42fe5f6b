"""Path B's hand-over: the manual flip checklist, in an order verify-flip verifies.

    [image step, when the app still runs the bad deploy's image] → Infisical → redeploy
    → cluster map → verify-flip → (only then) detach + destroy the old cluster, by hand

The image step comes first because the redeploy after the secrets flip runs the
running image's migrations against the restored cluster (:mod:`.path_b_image`).
verify-flip is named after the map edit, the last step it checks.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from rollback_helpers.clients.database import DbUrl
from rollback_helpers.domain.cluster_map import ClusterMap
from rollback_helpers.run.context import RunContext
from rollback_helpers.runbook.path_b_image import Images, path_a_command
from rollback_helpers.ui.display import METADATA_KEY, Report


@dataclass(frozen=True)
class Flip:
    """What the checklist is about: the clusters, the app's URLs, the map, the image step."""

    old_id: str
    new_id: str
    urls: dict[str, DbUrl]
    cluster_map: ClusterMap
    image_first: str | None = None  # runbook.path_b_image.image_step's text
    runs_previous: bool = False  # the app already runs the restored schema's image


def rerun_command(ctx: RunContext, *, ready_timeout: float | None = None) -> str:
    """The same Path B command again (a re-run carries on with the cluster already restoring)."""
    env = ctx.env.name
    if ctx.backends.name == "sandbox":
        where = f" --sandbox-dir {ctx.backends.sandbox_dir}" if ctx.backends.sandbox_dir else ""
        head = f"rollback-runbook drill path-b --env {env}{where}"
    else:
        confirm = f" --confirm {env}" if ctx.env.is_protected else ""
        head = f"rollback-runbook run path-b --env {env} --live{confirm}"
    timeout = f" --ready-timeout {ready_timeout:.0f}" if ready_timeout else ""
    said = "".join(f" --{flag} {shlex.quote(value)}" for flag, value in
                   (("reason", ctx.reason), ("incident", ctx.incident)) if value)
    return head + timeout + said


def drill_world(ctx: RunContext) -> str | None:
    """A drill's world directory ("" when it has none to share); None on the real world."""
    if ctx.backends.name != "sandbox":
        return None
    return str(ctx.backends.sandbox_dir or "")


def verify_command(ctx: RunContext) -> str:
    world = drill_world(ctx)
    if world is None:
        return f"rollback-runbook run verify-flip --env {ctx.env.name}"
    return f"rollback-runbook drill verify-flip --env {ctx.env.name}" + (
        f" --sandbox-dir {world}" if world else "")


def flip_steps(ctx: RunContext, flip: Flip) -> list[str]:
    cfg, env, old_id, new_id = ctx.cfg, ctx.env, flip.old_id, flip.new_id
    hosts = "; ".join(f"{u.var}: host {u.host} → {u.host.replace(old_id, new_id)}"
                      for u in flip.urls.values()) or \
        f"{cfg.database_url_var} and {cfg.migration_url_var}: replace {old_id} with {new_id} in the host"
    image = [flip.image_first] if flip.image_first else []
    redeploy = (f"Redeploy {env.app} (or wait for Auto Redeploy) once it runs the pre-deploy image "
                "(step 1): the redeploy's release command then meets the restored schema."
                if flip.image_first else
                f"Redeploy {env.app} (or wait for Auto Redeploy): it runs the pre-deploy image, "
                "whose migrations the restored cluster has." if flip.runs_previous else
                f"Before you redeploy {env.app}: check that the image it runs has no migration "
                "the restored cluster lacks (the plan names the image); then redeploy.")
    return [*image,
            f"In Infisical (project {cfg.infisical_project}, environment {env.infisical_env}), update "
            f"{cfg.database_url_var} and {cfg.migration_url_var} — {hosts}. Passwords stay the same. "
            "Never `flyctl secrets set`: the Infisical sync would overwrite it.",
            redeploy,
            f"Apply the diff below to {flip.cluster_map.path} (the single source of truth) and "
            "merge it.",
            f"Run `{verify_command(ctx)}`: it checks the URLs, both logins, the image against the "
            "restored schema, health and the map, and marks the flip verified.",
            f"Only after verify-flip passes: `flyctl mpg detach {old_id} -a {env.app}` and "
            f"`flyctl mpg destroy {old_id}` (human only)."]


def checklist_report(ctx: RunContext, flip: Flip) -> Report:
    steps = flip_steps(ctx, flip)
    report = Report("Manual flip checklist — a human does these, in order", status="stopped",
                    code=flip.cluster_map.flip_diff(ctx.env.name, flip.new_id))
    for number, text in enumerate(steps, 1):
        report.fact(f"[ ] {number}", text)
    if ctx.env.is_protected:
        report.note("🚨 NEVER `flyctl mpg destroy` on production before the replacement is "
                    "verified serving — there is zero recovery.")
    map_step = len(steps) - 2
    report.note(f"The diff above is step {map_step}'s edit. The runbook stops here.")
    return report


def hand_over(report: Report, *, new_id: str, lost_writes: str, next_step: str) -> Report:
    """The run's result in the checklist's output metadata: the command line prints it as the
    run's last lines (``--quiet`` too), and the flip-pending notification carries it."""
    report.metadata = {METADATA_KEY: {"handover": {
        "new cluster": new_id, "lost writes": lost_writes, "next": next_step}}}
    report.fact("new cluster", new_id).fact("lost writes", lost_writes).fact("next", next_step)
    return report


def next_step(ctx: RunContext, images: Images | None, *, first: bool) -> str:
    """The one command to run next: Path A's re-promotion when the image step comes first."""
    if first and images is not None and images.previous is not None:
        command = path_a_command(ctx.env.name, images.previous,
                                 protected=ctx.env.is_protected, run_id=ctx.run_id,
                                 sandbox=drill_world(ctx))
        return f"`{command}` (checklist step 1), then the rest of the checklist"
    if first:
        return "the checklist from step 1 (the image), then the rest"
    return f"the checklist, then `{verify_command(ctx)}`"
