"""Real PostgreSQL for the sandbox: servers run under a world's directory (:mod:`.servers`),
clusters made, damaged, backed up and restored from ``pg_basebackup`` copies
(:mod:`.backups`), and the TCP forwarder behind ``mpg proxy`` (:mod:`.tcp_proxy`).

It knows nothing of worlds, Fly or GitHub: it takes a directory and a cluster id.
"""
