"""The run's timeline as its Summary counts it (headless runs and walkthroughs alike)."""

from __future__ import annotations

FINISHED = "Finish: "  # the timeline lines Finish writes, after the story the Summary shows


def story_length(timeline: list[tuple[str, str]]) -> int:
    """The run's timeline as the Summary counts it: what Finish logged is not the run's story,
    so running Finish again needs no new Summary."""
    return sum(1 for _, event in timeline if not event.startswith(FINISHED))
