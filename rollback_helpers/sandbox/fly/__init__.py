"""The sandbox's Fly.io: flyctl emulated command by command (:mod:`.flyctl`, with
:mod:`.auth` and :mod:`.mpg`), the Managed Postgres clusters behind real servers
(:mod:`.databases`), the human flip (:mod:`.flip`) and the apps' health endpoints
(:mod:`.health`). It stands on :mod:`..core` and :mod:`..postgres`, never on GitHub.
"""
