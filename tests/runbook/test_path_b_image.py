"""Path B's image/schema rule, on plain values: which image runs, what the checklist's first
step says, and what verify-flip names."""

from __future__ import annotations

from rollback_helpers.clients.database import ConnectionCheck
from rollback_helpers.domain.images import ImageRef
from rollback_helpers.runbook.path_b_image import (
    Images,
    Schema,
    image_step,
    plan_note,
    schema_problems,
)

BAD = ImageRef("registry.fly.io/renewa-one", "sha256:" + "b" * 64)
PREVIOUS = ImageRef("registry.fly.io/renewa-one", "sha256:" + "a" * 64)
RESTORED = Schema("20260520_add_invoice_status", "20260610_drop_meter_readings",
                  ("customers", "meter_readings"))


def images(*running: str, previous: ImageRef | None = PREVIOUS) -> Images:
    return Images("renewa-one-staging", frozenset(running), BAD, previous, 1010)


def check(newest: str, **counts: int) -> ConnectionCheck:
    return ConnectionCheck(user="app-user", connected=True, current_user="app-user",
                           server_version="16", in_recovery=False, error="",
                           newest_migration=f"schema_migrations: {newest}", table_counts=counts)


def test_the_schema_survives_the_run_comment() -> None:
    assert Schema.parse(RESTORED.render()) == RESTORED
    assert Schema.parse("") is None and RESTORED.bad_has_migrations


def test_the_image_step_comes_first_only_while_the_bad_image_runs() -> None:
    step = image_step(images(BAD.digest), RESTORED, env="production", protected=True, run_id="r1")
    assert step is not None and step.startswith("FIRST, before any secret changes")
    assert (f"rollback-runbook run path-a --env production --live --confirm production "
            f"--target-digest {PREVIOUS.digest}") in step
    assert "20260610_drop_meter_readings" in step and "Path B run r1" in step
    drill = image_step(images(BAD.digest), RESTORED, env="staging", protected=False, run_id="r1",
                       sandbox="/w")
    assert drill is not None and "rollback-runbook drill path-a --env staging --sandbox-dir /w" in drill
    assert image_step(images(PREVIOUS.digest), RESTORED, env="staging", protected=False,
                      run_id="r1") is None
    unknown = image_step(images(BAD.digest, previous=None), None, env="staging", protected=False,
                         run_id="r1")
    assert unknown is not None and "names no previous_image" in unknown
    assert "still runs the bad deploy's image" in plan_note(images(BAD.digest))
    assert "neither the bad deploy's image" in plan_note(images("sha256:" + "c" * 64))


def test_verify_flip_names_the_migration_and_the_table() -> None:
    kept = check("20260520_add_invoice_status", customers=200, meter_readings=600)
    assert schema_problems(images(PREVIOUS.digest), RESTORED, kept, "") == []
    ahead = dict(schema_problems(images(BAD.digest), RESTORED, kept, ""))
    assert list(ahead) == ["image ahead of schema"]
    assert "the next redeploy applies 20260610_drop_meter_readings" in ahead["image ahead of schema"]
    destroyed = check("20260610_drop_meter_readings", customers=200, meter_readings=-1)
    found = dict(schema_problems(images(BAD.digest), RESTORED, destroyed, ""))
    assert list(found) == ["restored data changed", "table missing again", "image ahead of schema"]
    assert "meter_readings" in found["table missing again"]
    assert "already applied 20260610_drop_meter_readings" in found["image ahead of schema"]
