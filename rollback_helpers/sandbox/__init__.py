"""The embedded sandbox: a simulated Fly.io + GitHub world for drills and tests.

It plugs in at the runbook's two seams — the command runner (flyctl) and the
httpx client (GitHub REST and the app's health endpoint) — so a drill runs the
same parsing and decision code as an incident. Its state lives in a directory
(``world.json`` plus a call log), so the process that builds a world, the
notebook kernel that acts in it and the test that inspects it afterwards all
see the same world.
"""

import os

from rollback_helpers.sandbox.core.world import World

# The services register what their scheduled events do (a restore finishing, a workflow run
# completing) when imported: import them with the package, so every process that loads a
# world can apply events that another process scheduled.
from rollback_helpers.sandbox.fly import mpg  # noqa: E402, F401  isort: skip
from rollback_helpers.sandbox.github import actions, faults, team  # noqa: E402, F401  isort: skip

__all__ = ["World"]


def shutdown(state_dir: "str | os.PathLike[str]") -> None:
    """Stop every process the sandbox started for this world (servers, tunnels). Idempotent."""
    from pathlib import Path

    from rollback_helpers.sandbox.occupants import stop_recorded_processes

    stop_recorded_processes(Path(state_dir))


def discard(state_dir: "str | os.PathLike[str]") -> None:
    """Stop the world's processes and delete its servers' data, wherever it lives (a server's
    data may sit in its own directory under /tmp, outside ``state_dir``). Idempotent."""
    from pathlib import Path

    from rollback_helpers.sandbox.scenarios import discard_servers

    shutdown(state_dir)
    if Path(state_dir).is_dir():
        discard_servers(Path(state_dir))


def situations(world: World) -> dict[str, str]:
    """What each environment's app runs, and what was deployed before it (``v43 after v41``)."""
    found = {}
    for name, app in world.state["fly"]["apps"].items():
        images = [str(m.get("image", "")) for m in app.get("machines", [])]
        running = max(set(images), key=images.count) if images else "nothing"
        deploys = [str(d["image"]) for d in app.get("deploys", [])]
        before = deploys[:len(deploys) - deploys[::-1].index(running) - 1] \
            if running in deploys else deploys
        found[str(app.get("env"))] = f"{name} runs {running}" + (
            f", deployed after {before[-1]}" if before else "")
    return found
