"""The sandbox's GitHub: the REST endpoints the runbook uses, answered from
``world.state["github"]``. :mod:`.api` is the router; each other module serves one concern
(issues, workflow runs, git references, contents, records, the repository, the team) or
injects faults. It stands on :mod:`..core` only: never on Fly or on PostgreSQL.
"""
