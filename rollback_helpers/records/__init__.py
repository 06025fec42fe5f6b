"""The archived notebook, the run's record: where it is stored, how it is kept
(write-once, with its SHA-256), listed, rendered and verified. Below ``run``: nothing
here knows a live run; what it needs from one (a GitHub client) it is given."""
