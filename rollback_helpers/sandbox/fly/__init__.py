"""The sandbox's Fly: the app's traffic and the Prometheus API that reports it."""
