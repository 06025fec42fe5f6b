"""The incident chart: a PNG of the 5xx ratio and p95 with the incident's moments marked."""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import sys

import numpy as np

from rollback_helpers.ui.chart import Marker, chart_image, incident_chart

T0 = 1_700_000_000.0
ERRORS = [(T0 + 60 * i, 0.25 if 10 <= i < 20 else 0.002) for i in range(30)]
P95 = [(T0 + 60 * i, 0.8 if 10 <= i < 20 else 0.12) for i in range(30)]
GREEN = (0x04, 0x78, 0x57)  # the third marker's colour


def pixels(png: bytes) -> np.ndarray:
    import matplotlib.image

    return np.asarray(matplotlib.image.imread(io.BytesIO(png), format="png"))


def has_colour(png: bytes, rgb: tuple[int, int, int]) -> bool:
    image = (pixels(png)[..., :3] * 255).round().astype(int)
    return bool(np.any(np.all(np.abs(image - np.array(rgb)) <= 25, axis=-1)))


def test_the_chart_is_a_png_of_the_asked_size() -> None:
    png = incident_chart(ERRORS, P95, width=8.0, height=4.0, dpi=50)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (400, 200)


def test_each_marker_is_drawn_in_its_colour() -> None:
    markers = [Marker(T0 + 600, "bad deploy"), Marker(T0 + 1150, "dispatch"),
               Marker(T0 + 1200, "all machines on target"), Marker(T0 + 1500, "verdict")]
    marked = incident_chart(ERRORS, P95, markers)
    assert has_colour(marked, GREEN)
    assert not has_colour(incident_chart(ERRORS, P95, markers[:2]), GREEN)


def test_no_traffic_is_a_gap_and_says_so_not_a_zero_line() -> None:
    empty = [(t, None) for t, _ in ERRORS]
    png = incident_chart(empty, empty)
    red = (0xB9, 0x1C, 0x1C)  # the 5xx line's colour
    assert not has_colour(png, red)
    assert has_colour(incident_chart(ERRORS, P95), red)


def test_the_notebook_gets_an_ipython_image_that_keeps_the_png() -> None:
    png = incident_chart(ERRORS, P95)
    image = chart_image(png)
    assert image.data == png
    shown = image._repr_png_()  # what the notebook stores: base64 text in recent IPython
    assert (base64.b64decode(shown) if isinstance(shown, str) else shown) == png


def test_importing_the_module_does_not_import_matplotlib() -> None:
    code = ("import json, sys\nimport rollback_helpers.ui.chart\n"
            "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] == 'matplotlib')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(done.stdout) == []
