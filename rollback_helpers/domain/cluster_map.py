"""The env → cluster-id map (``scripts/lib/mpg-clusters.sh``): read, never written.

Path B prints the exact unified diff a human applies during the flip.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rollback_helpers.errors import ClusterMismatch, ConfigError
from rollback_helpers.hints import Option, hint

# [staging]=p0o9i8u7y6t5r4e3   ["staging"]="p0o9…"   (inside declare -A MPG_CLUSTERS=( … ))
_ENTRY = re.compile(r"""^\s*\[\s*["']?(?P<env>[A-Za-z0-9_-]+)["']?\s*\]\s*=\s*["']?(?P<id>[a-z0-9]+)["']?""")


class FileSource(Protocol):
    def get_file(self, path: str, ref: str | None = None) -> str: ...


@dataclass(frozen=True)
class ClusterMap:
    path: str
    text: str
    clusters: dict[str, str]

    def cluster_for(self, env: str) -> str:
        if env not in self.clusters:
            raise ClusterMismatch(
                f"{self.path} has no cluster for {env!r} (it names: "
                f"{', '.join(sorted(self.clusters)) or 'none'}).",
                hint(f"Add [{env}]=<cluster id> to {self.path}, or re-run with ",
                     Option("source_cluster", "<cluster id>"), "."))
        return self.clusters[env]

    def flip_diff(self, env: str, new_cluster: str) -> str:
        """The unified diff that points ``env`` at ``new_cluster``: for a human to apply."""
        old = self.cluster_for(env)
        after = [_replace_entry(line, env, old, new_cluster) for line in self.text.splitlines(True)]
        return "".join(difflib.unified_diff(self.text.splitlines(True), after,
                                            f"a/{self.path}", f"b/{self.path}"))


def _replace_entry(line: str, env: str, old: str, new: str) -> str:
    match = _ENTRY.match(line)
    if match and match["env"] == env and match["id"] == old:
        start, end = match.span("id")
        return line[:start] + new + line[end:]
    return line


def parse_cluster_map(text: str, path: str) -> ClusterMap:
    clusters: dict[str, str] = {}
    for line in text.splitlines():
        match = _ENTRY.match(line.split("#", 1)[0])
        if match:
            clusters[match["env"]] = match["id"]
    if not clusters:
        raise ConfigError(f"{path} holds no [env]=cluster-id entries.",
                          "Check cluster_map_path / cluster_map_file in the configuration.")
    return ClusterMap(path, text, clusters)


def read_cluster_map(*, repo_path: str, local_file: str, github: FileSource) -> ClusterMap:
    """From a local checkout if ``local_file`` is set, else from the repository on GitHub."""
    if local_file:
        file = Path(local_file)
        if not file.is_file():
            raise ConfigError(f"cluster_map_file {local_file} does not exist.",
                              "Fix the path, or leave it empty to read the map from GitHub.")
        return parse_cluster_map(file.read_text(), repo_path)
    return parse_cluster_map(github.get_file(repo_path), repo_path)
