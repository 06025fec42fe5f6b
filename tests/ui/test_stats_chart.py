"""The recovery-time chart: a PNG of the size asked, with or without points."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rollback_helpers.ui.stats_chart import recovery_chart

T0 = datetime(2026, 9, 1, tzinfo=UTC)


def size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return image.size


def test_points_per_environment_make_a_png_of_the_size_asked() -> None:
    """9 × 4 inches at 100 dpi: 900 × 400 pixels, whatever the points."""
    png = recovery_chart({"staging": [(T0, 11.0), (T0 + timedelta(days=1), 70.0)],
                          "production": [(T0 + timedelta(hours=5), 15.0)]}, title="Recovery time")
    assert png.startswith(b"\x89PNG") and size(png) == (900, 400)


def test_no_recovered_incident_still_draws_the_axes() -> None:
    """An empty period is a chart that says so, not an error."""
    png = recovery_chart({"staging": []}, width=6, height=3)
    assert size(png) == (600, 300)
