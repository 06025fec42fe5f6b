"""The runbook's paths, each described once: a new path is one entry here (and its model in the union).

The command line's choices and default scenarios, the notebook papermill runs,
the record comment's heading, whether a run takes the lock and needs a
confirmation, and which parameters it takes all read :data:`PATHS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollback_helpers.domain.parameters import (
    AnyParameters,
    PathAParameters,
    PathBParameters,
    VerifyFlipParameters,
)
from rollback_helpers.errors import ConfigError


@dataclass(frozen=True)
class PathSpec:
    name: str                # the command line's word, the lock's and the record comment's `path`
    title: str               # the record comment's heading, triage's recommendation
    notebook: str            # its notebook in rollback_helpers/notebooks/
    steps: tuple[str, ...]   # the step module its notebook imports first, then those its
                             # later steps load (a headless run's kernel imports them early)
    default_scenario: str    # the sandbox scenario a drill of it starts from
    changes: bool            # False: it only reads (no dry run, no lock, no confirmation)
    parameters: type[AnyParameters]


PATHS: dict[str, PathSpec] = {spec.name: spec for spec in (
    PathSpec("path-a", "Path A — image rollback", "path_a_image_rollback.ipynb",
             ("rollback_helpers.runbook.path_a", "rollback_helpers.runbook.path_a_evidence",
              "rollback_helpers.run.notify"),
             default_scenario="default", changes=True, parameters=PathAParameters),
    PathSpec("path-b", "Path B — database break-glass", "path_b_database_breakglass.ipynb",
             ("rollback_helpers.runbook.path_b", "rollback_helpers.run.notify"),
             default_scenario="b-default", changes=True, parameters=PathBParameters),
    PathSpec("verify-flip", "Path B — verify the flip", "path_b_verify_flip.ipynb",
             ("rollback_helpers.runbook.verify_flip", "rollback_helpers.runbook.path_a_evidence"),
             default_scenario="b-flipped", changes=False, parameters=VerifyFlipParameters),
)}


def path_spec(name: str) -> PathSpec:
    """The path named ``name``, or a ConfigError (exit 2) listing the paths there are."""
    try:
        return PATHS[name]
    except KeyError:
        raise ConfigError(f"There is no runbook path {name!r}.",
                          f"Name one of: {', '.join(PATHS)}.") from None
