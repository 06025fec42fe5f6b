"""The image that meets the restored schema: Path B's rule, shared by Path B and verify-flip.

Every deploy and redeploy on Fly runs the image's release command — its migrations —
against the cluster ``DATABASE_URL_MIGRATION`` names. The restored cluster holds the
schema of the image before the bad deploy (the bad record's ``previous_image``). If the
app still runs the bad deploy's image when the secrets flip, the redeploy that follows
re-applies the bad migration to the restored cluster and destroys its data again. So:
the pre-deploy image is re-promoted (Path A's dispatch) first, and only then the URLs flip.

The newest migration on each side checks the rule: the restored cluster's is the
pre-deploy image's, the current cluster's is the bad image's. Nothing here changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollback_helpers.clients.database import ConnectionCheck
from rollback_helpers.clients.fly import Fly
from rollback_helpers.domain.deployments import DeploymentRecord
from rollback_helpers.domain.images import ImageRef
from rollback_helpers.ui.display import short


@dataclass(frozen=True)
class Images:
    """Which image the app runs, and which image each side's schema belongs to."""

    app: str
    running: frozenset[str]  # the started machines' digests
    bad: ImageRef  # the bad deploy's image: the current cluster's schema
    previous: ImageRef | None  # the image before it: the restored cluster's schema
    record: int  # the bad deploy's record number

    @property
    def runs_bad(self) -> bool:
        return self.bad.digest in self.running

    @property
    def runs_previous(self) -> bool:
        return self.previous is not None and self.running == {self.previous.digest}

    def running_text(self) -> str:
        if self.runs_bad:
            return f"{short(self.bad.digest)}: the bad deploy's image (record #{self.record})"
        if self.runs_previous and self.previous is not None:
            return f"{short(self.previous.digest)}: the pre-deploy image (the restored schema's)"
        return ", ".join(sorted(short(d) for d in self.running)) or "no started machine"


def read_images(fly: Fly, app: str, record: DeploymentRecord) -> Images:
    return Images(app, frozenset(fly.status(app).running_digests()), record.image,
                  record.previous_image, record.number)


def migration_name(newest: str) -> str:
    """``schema_migrations: 20260520_x`` → ``20260520_x`` (check_connection's form)."""
    return newest.partition(": ")[2] or newest


@dataclass(frozen=True)
class Schema:
    """The restored cluster's schema as Path B verified it, kept on its run comment."""

    restored: str  # the restored cluster's newest migration
    bad: str  # the current (damaged) cluster's newest migration: the bad image's
    tables: tuple[str, ...]  # the tables the restored cluster has

    @property
    def bad_has_migrations(self) -> bool:
        """The bad deploy applied a migration the restored schema lacks."""
        return bool(self.bad) and self.bad != self.restored

    def render(self) -> str:
        return f"restored={self.restored}; bad={self.bad}; tables={','.join(self.tables)}"

    @classmethod
    def parse(cls, text: str) -> Schema | None:
        fields = dict(part.strip().partition("=")[::2] for part in text.split(";") if "=" in part)
        if "restored" not in fields:
            return None
        tables = tuple(t for t in fields.get("tables", "").split(",") if t)
        return cls(fields["restored"], fields.get("bad", ""), tables)


def schema_of(new: ConnectionCheck, source: ConnectionCheck | None) -> Schema:
    bad = migration_name(source.newest_migration) if source and source.connected else ""
    tables = tuple(t for t, n in new.table_counts.items() if n >= 0)
    return Schema(migration_name(new.newest_migration), bad, tables)


def path_a_command(env: str, image: ImageRef, *, protected: bool, run_id: str,
                   sandbox: str | None = None) -> str:
    """Path A's live run that re-promotes ``image``, carrying this run's id in its reason; in
    a drill (``sandbox``: its world's directory, or ""), Path A's drill in the same world."""
    confirm = f" --confirm {env}" if protected else ""
    where = f" --sandbox-dir {sandbox}" if sandbox else ""
    head = (f"rollback-runbook drill path-a --env {env}{where}{confirm}" if sandbox is not None
            else f"rollback-runbook run path-a --env {env} --live{confirm}")
    return (f"{head} --target-digest "
            f"{image.digest} --reason \"Path B run {run_id}: the restored schema is "
            f"{short(image.digest)}'s\"")


def image_step(images: Images, schema: Schema | None, *, env: str, protected: bool,
               run_id: str, sandbox: str | None = None) -> str | None:
    """The checklist's first step when the app still runs the bad deploy's image."""
    if not images.runs_bad:
        return None
    ahead = (f"{schema.bad} (the restored cluster is at {schema.restored})"
             if schema and schema.bad_has_migrations else "its migrations")
    why = (f"Until then every redeploy runs the bad image's release command, which would "
           f"apply {ahead} to whatever cluster {images.app}'s DATABASE_URL_MIGRATION names.")
    if images.previous is None:
        return (f"FIRST, before any secret changes: put the image before the bad deploy back on "
                f"{images.app} with Path A (record #{images.record} names no previous_image: "
                f"`rollback-runbook run path-a --env {env} --live --target-digest <digest>`). "
                + why)
    command = path_a_command(env, images.previous, protected=protected, run_id=run_id,
                             sandbox=sandbox)
    return (f"FIRST, before any secret changes: re-promote the pre-deploy image "
            f"{short(images.previous.digest)} (the restored schema's) through Path A's dispatch: "
            f"`{command}`. Its release command runs against the current cluster, which already "
            f"has its migrations. " + why)


def plan_note(images: Images) -> str:
    """What the plan says about the image, for the operator to see before approving."""
    if images.runs_bad:
        previous = short(images.previous.digest) if images.previous else "the image before it"
        return (f"⚠ {images.app} still runs the bad deploy's image {short(images.bad.digest)} "
                f"(record #{images.record}). The restored schema belongs to {previous}: the "
                "checklist re-promotes it (Path A) BEFORE the secrets flip, since the redeploy "
                "after the flip runs the running image's migrations against the restored cluster.")
    if images.runs_previous:
        return (f"{images.app} runs the pre-deploy image {images.running_text().split(':')[0]}: "
                "the redeploy after the flip runs the migrations the restored cluster has.")
    return (f"{images.app} runs {images.running_text()}, neither the bad deploy's image nor the "
            "one before it: check its migrations against the restored schema before the flip.")


def schema_problems(images: Images, schema: Schema | None, new: ConnectionCheck,
                    old_migration: str) -> list[tuple[str, str]]:
    """verify-flip's image/schema rule: (what failed, the migration or table it names)."""
    problems: list[tuple[str, str]] = []
    now = migration_name(new.newest_migration)
    restored = schema.restored if schema else ""
    if restored and now != restored:
        problems.append(("restored data changed", f"the new cluster's newest migration is {now}, "
                         f"not {restored} as restored (a release command ran against it)"))
    missing = [t for t in (schema.tables if schema else ()) if new.table_counts.get(t, -1) < 0]
    if missing:
        problems.append(("table missing again", f"{', '.join(missing)} is missing on the new "
                         "cluster (it was there when restored)"))
    if images.runs_bad:
        bad = (schema.bad if schema and schema.bad else old_migration) or "its migrations"
        done = (f"its release command already applied {bad} to the new cluster" if bad == now
                else f"the next redeploy applies {bad} to the new cluster (at {now})")
        problems.append((
            "image ahead of schema", f"{images.app} runs the bad deploy's image "
            f"{short(images.bad.digest)} (record #{images.record}); {done}. Re-promote the "
            "pre-deploy image with Path A before any further redeploy"))
    return problems
