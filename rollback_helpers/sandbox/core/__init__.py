"""What every room of the sandbox stands on: the world's state, clock, call log and
scheduled events (:mod:`.world`), and the background processes it records (:mod:`.processes`).

It imports nothing else of the sandbox.
"""
