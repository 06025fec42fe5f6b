"""The runbook's facts as types: configuration, pinned images, deployment records, the cluster map."""
