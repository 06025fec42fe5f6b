"""The env → cluster map: read leniently, never written, flipped only as a printed diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_helpers.domain.cluster_map import parse_cluster_map, read_cluster_map
from rollback_helpers.errors import ClusterMismatch, ConfigError

REFERENCE = """# env -> Fly Managed Postgres cluster id
declare -A MPG_CLUSTERS=(
  [development]=k3v9x2m1q8w7e6r5
  [staging]=p0o9i8u7y6t5r4e3
  [production]=gjpkdon1pn60yln4
)
"""
PATH = "scripts/lib/mpg-clusters.sh"


class Files:
    def __init__(self, text: str) -> None:
        self.text, self.asked = text, []

    def get_file(self, path: str, ref: str | None = None) -> str:
        self.asked.append(path)
        return self.text


def test_reference_form_is_read() -> None:
    """The contract's reference file yields one cluster id per environment."""
    assert parse_cluster_map(REFERENCE, PATH).clusters == {
        "development": "k3v9x2m1q8w7e6r5", "staging": "p0o9i8u7y6t5r4e3",
        "production": "gjpkdon1pn60yln4"}


def test_quotes_and_comments_are_tolerated() -> None:
    """Quoted keys and values and trailing comments do not change what is read."""
    text = 'declare -A MPG_CLUSTERS=(\n  ["staging"]="p0o9i8u7y6t5r4e3"  # moved 2026-05\n)\n'
    assert parse_cluster_map(text, PATH).clusters == {"staging": "p0o9i8u7y6t5r4e3"}


def test_a_file_without_entries_is_a_config_error() -> None:
    """A map with no [env]=id lines is reported, naming the configuration keys to check."""
    with pytest.raises(ConfigError, match="cluster_map_path"):
        parse_cluster_map("#!/bin/bash\necho hi\n", PATH)


def test_an_unmapped_environment_names_what_the_map_has() -> None:
    """Asking for an environment the map lacks lists the ones it has and the way out."""
    with pytest.raises(ClusterMismatch, match="development, production, staging") as caught:
        parse_cluster_map(REFERENCE, PATH).cluster_for("qa")
    assert "source_cluster=" in caught.value.next_step


def test_flip_diff_changes_exactly_one_line() -> None:
    """The printed diff replaces only the environment's id, as a unified diff with a/ b/ paths."""
    diff = parse_cluster_map(REFERENCE, PATH).flip_diff("staging", "n3wc1u5t3r0000ab")
    assert diff.startswith(f"--- a/{PATH}\n+++ b/{PATH}\n")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("---", "+++")]
    assert changed == ["-  [staging]=p0o9i8u7y6t5r4e3", "+  [staging]=n3wc1u5t3r0000ab"]


def test_the_map_is_read_from_github_unless_a_local_file_is_set(tmp_path: Path) -> None:
    """Without cluster_map_file the repository copy is read; with it, the local file."""
    files = Files(REFERENCE)
    assert read_cluster_map(repo_path=PATH, local_file="", github=files).clusters["staging"]
    assert files.asked == [PATH]
    local = tmp_path / "mpg-clusters.sh"
    local.write_text(REFERENCE.replace("p0o9i8u7y6t5r4e3", "l0ca1c0pyc1u5t3r"))
    cmap = read_cluster_map(repo_path=PATH, local_file=str(local), github=Files(""))
    assert cmap.clusters["staging"] == "l0ca1c0pyc1u5t3r"
    with pytest.raises(ConfigError, match="does not exist"):
        read_cluster_map(repo_path=PATH, local_file=str(tmp_path / "nope"), github=files)
