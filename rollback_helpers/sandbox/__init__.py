"""The embedded sandbox: a simulated Fly.io + GitHub world for drills and tests.

It plugs in at the runbook's two seams — the command runner (flyctl) and the
httpx client (GitHub REST and the app's health endpoint) — so a drill runs the
same parsing and decision code as an incident. Its state lives in a directory
(``world.json`` plus a call log), so the process that builds a world, the
notebook kernel that acts in it and the test that inspects it afterwards all
see the same world.
"""

from rollback_helpers.sandbox.world import World

__all__ = ["World"]
