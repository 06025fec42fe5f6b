"""verify-flip at the checklist's steps, in process on a sandbox world (real PostgreSQL).

After a Path B run, a person follows the checklist; verify-flip, run before the map edit,
takes the new cluster from Path B's run comment and names the map edit still to do
(exit 3); run after a flip done with the bad image still running, it names the image, the
migration and the table destroyed again (exit 6).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollback_helpers.errors import PreconditionFailed, VerificationFailed
from rollback_helpers.runbook import path_b, verify_flip
from rollback_helpers.sandbox import discard
from rollback_helpers.sandbox.core.world import World, digest_for
from rollback_helpers.sandbox.fly.flip import simulate_human_flip
from rollback_helpers.sandbox.github.actions import promote_image
from rollback_helpers.sandbox.postgres import backups as pg_backups
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.ui.interactive import RecordingScreen

REPO = "registry.fly.io/renewa-one"


@pytest.fixture
def world(pg_state_dir: Path) -> Iterator[World]:
    made = create_world("b-default", pg_state_dir)
    yield made
    discard(pg_state_dir)


def prepared(world: World) -> str:
    """A live Path B run to its checklist; the restored cluster's id."""
    run = path_b.start({"env": "staging", "dry_run": False, "sandbox_dir": str(world.state_dir),
                        "reason": "v42 dropped meter_readings",
                        "path_a_tried": "v42's migration destroyed data: an image cannot undo it"},
                       screen=RecordingScreen())
    for step in (run.preflight, run.resolve, run.plan, run.restore, run.wait_until_ready,
                 run.verify_new_cluster, run.record, run.checklist, run.summary):
        step()
    assert run.outcome == "prepared: flip pending" and run.new_cluster
    return run.new_cluster


def verify(world: World) -> verify_flip.VerifyFlip:
    check = verify_flip.start({"env": "staging", "sandbox_dir": str(world.state_dir)},
                              screen=RecordingScreen())
    for step in (check.preflight, check.read_urls, check.verify_connections,
                 check.check_health_and_map, check.verdict):
        step()
    return check


def promote(world: World, name: str) -> None:
    with world.transaction():
        assert promote_image(world, {"env": "staging", "image": f"{REPO}@{digest_for(name)}"})
        world.advance()


def test_verify_flip_names_the_map_edit_then_the_image_ahead_of_the_schema(world: World) -> None:
    new_id = prepared(world)
    promote(world, "v41")  # step 1, the image
    simulate_human_flip(world, "staging", new_id, cluster_map=False)  # Infisical, redeploy

    with pytest.raises(PreconditionFailed) as map_only:
        verify(world)
    assert map_only.value.exit_code == 3
    assert "(map not edited)" in map_only.value.what and new_id in map_only.value.what

    promote(world, "v42")  # the bad image again: its release runs against the new cluster
    with pytest.raises(VerificationFailed) as ahead:
        verify(world)
    what = ahead.value.what
    assert ahead.value.exit_code == 6
    for named in ("image ahead of schema", pg_backups.DESTRUCTIVE_MIGRATION,
                  "table missing again: meter_readings", "map not edited"):
        assert named in what, what
