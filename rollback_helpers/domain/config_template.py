"""A team's own ``runbook.toml``: the answers ``rollback-runbook init`` collects, checked and
written as a commented file that :func:`rollback_helpers.domain.config.load_config` reads.

The answers are checked for shape here (an ``owner/name`` repository, Fly app names,
a workflow file name, labels, a relative map path); whether GitHub and Fly agree
is ``rollback-runbook check``'s job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from rollback_helpers.errors import ConfigError

REPO = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
APP = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # Fly app names
ENV = re.compile(r"[a-z][a-z0-9_-]{0,30}")
WORKFLOW = re.compile(r"(?:[A-Za-z0-9._-]+\.ya?ml|[0-9]+)")
INPUT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,99}")
ORG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
DEFAULT_LABELS = ("deployment-record", "env:{env}")


@dataclass(frozen=True)
class InitAnswers:
    github_repo: str
    apps: dict[str, str]                       # environment → Fly app, in the order given
    workflow: str = "promote-image.yml"
    workflow_ref: str = "main"
    workflow_env_input: str = "env"
    workflow_image_input: str = "image"
    record_labels: tuple[str, ...] = DEFAULT_LABELS  # "{env}" becomes the environment's name
    fly_org: str = ""                          # default: the repository's owner, lower-case
    cluster_map_path: str = "scripts/lib/mpg-clusters.sh"
    incidents_dir: str = "incidents"
    github_api_url: str = "https://api.github.com"
    protected: tuple[str, ...] = ("production",)  # confirmation and two people: a setting
    infisical_project: str = ""                # default: the repository's name
    production_approvals: int = 2              # people a live production run needs, operator too

    @property
    def project(self) -> str:
        return self.infisical_project or self.github_repo.rsplit("/", 1)[-1]

    def labels_for(self, env: str) -> list[str]:
        return [label.replace("{env}", env) for label in self.record_labels]

    @property
    def org(self) -> str:
        return self.fly_org or self.github_repo.split("/", 1)[0].lower()


def default_app(repo: str, env: str) -> str:
    """``shop-staging`` for ``acme/shop``; production runs under the bare name."""
    name = re.sub(r"[^a-z0-9-]+", "-", repo.rsplit("/", 1)[-1].lower()).strip("-") or "app"
    return name if env == "production" else f"{name}-{env}"


def _checks(a: InitAnswers) -> list[tuple[bool, str]]:
    return [
        (bool(REPO.fullmatch(a.github_repo)), f"--repo {a.github_repo!r} is not owner/name"),
        (bool(a.apps), "no environment given (--app ENV=APP)"),
        *((bool(ENV.fullmatch(env)), f"environment name {env!r} is not lower-case letters, "
           "digits, '-' or '_'") for env in a.apps),
        *((bool(APP.fullmatch(app)), f"app {app!r} for {env} is not a Fly app name "
           "(lower-case letters, digits, '-')") for env, app in a.apps.items()),
        (bool(WORKFLOW.fullmatch(a.workflow)), f"--workflow {a.workflow!r} is not a workflow "
         "file name (promote-image.yml) or a numeric id"),
        (bool(a.workflow_ref.strip()) and " " not in a.workflow_ref,
         f"--workflow-ref {a.workflow_ref!r} is not a branch name"),
        *((bool(INPUT.fullmatch(name)), f"workflow input name {name!r} is not valid")
          for name in (a.workflow_env_input, a.workflow_image_input)),
        (a.workflow_env_input != a.workflow_image_input, "the env and image inputs must differ"),
        (bool(a.record_labels) and all(lbl.strip() and "," not in lbl for lbl in a.record_labels),
         "--record-labels needs at least one label, without commas inside a label"),
        (bool(ORG.fullmatch(a.org)), f"--fly-org {a.org!r} is not a Fly organization slug"),
        (bool(a.cluster_map_path) and not a.cluster_map_path.startswith("/"),
         f"--cluster-map {a.cluster_map_path!r} must be a path inside the repository"),
        (bool(a.incidents_dir.strip()), "--incidents-dir is empty"),
        (a.github_api_url.startswith("https://"), "--github-api-url must be an https:// URL"),
        (bool(PROJECT.fullmatch(a.project)), f"--infisical-project {a.project!r} is not a "
         "project slug (letters, digits, '-', '_')"),
        (1 <= a.production_approvals <= 10, f"--production-approvals {a.production_approvals} "
         "is not a number of people from 1 to 10"),
    ]


def check_answers(answers: InitAnswers) -> None:
    """ConfigError listing every answer that cannot be right (exit 2)."""
    problems = [message for ok, message in _checks(answers) if not ok]
    if problems:
        raise ConfigError("The answers cannot make a valid runbook.toml:\n  - "
                          + "\n  - ".join(problems), "Fix these and run `rollback-runbook init` "
                          "again; nothing was written.")


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def render(answers: InitAnswers) -> str:
    """The commented ``runbook.toml`` for these answers."""
    a = answers
    lines = [
        f"# rollback-runbook's configuration for {a.github_repo}.",
        "# Written by `rollback-runbook init`; every key is described in docs/configuration.md.",
        "# Credentials never go here: the runbook reads GITHUB_TOKEN or GH_TOKEN (else `gh auth",
        "# token`), and flyctl uses its own login (`flyctl auth login`) or FLY_API_TOKEN.",
        "# Check it against GitHub and Fly with: rollback-runbook check --backend real",
        "",
        "# The repository with the deployment records, the promote workflow and the cluster map.",
        f"github_repo = {_q(a.github_repo)}",
        "# GitHub's REST API (GitHub Enterprise Server: https://<host>/api/v3).",
        f"github_api_url = {_q(a.github_api_url)}",
        "",
        "# Path A re-promotes the previous image by dispatching this workflow on this branch,",
        "# with the environment and the pinned image (repo@sha256:…) in these two inputs.",
        f"workflow = {_q(a.workflow)}",
        f"workflow_ref = {_q(a.workflow_ref)}",
        f"workflow_env_input = {_q(a.workflow_env_input)}",
        f"workflow_image_input = {_q(a.workflow_image_input)}",
        "",
        "# The Infisical project whose secrets Path B's flip checklist tells you to update.",
        f"infisical_project = {_q(a.project)}",
        "",
        "# The Fly organization whose Managed Postgres clusters Path B lists.",
        f"fly_org = {_q(a.org)}",
        "# The env → cluster-id map in the repository: read, never written (Path B prints the diff).",
        f"cluster_map_path = {_q(a.cluster_map_path)}",
        "",
        "# Where executed notebooks (the incident records) are archived; drills go to <dir>/drills.",
        f"incidents_dir = {_q(a.incidents_dir)}",
        "",
        "# Only the environments below exist (the runbook's built-in development, staging and",
        "# production are another team's apps).",
        "builtin_environments = false",
    ]
    for env, app in a.apps.items():
        lines += _environment(env, app, a.labels_for(env), protected=env in a.protected)
        if env in a.protected:
            lines += ["# People who must approve a live run here, the operator included.",
                      f"approvals = {a.production_approvals}"]
    return "\n".join(lines) + "\n"


def _environment(env: str, app: str, labels: list[str], *, protected: bool) -> list[str]:
    return [
        "",
        f"# {env}: the Fly app, and the labels every one of its deployment records carries.",
        f"[environments.{env}]",
        f"app = {_q(app)}",
        "record_labels = [" + ", ".join(_q(label) for label in labels) + "]",
        "# protected: a live run needs --confirm <name> and, by default, two people",
        f"protected = {'true' if protected else 'false'}",
        f"# health_url = {_q(f'https://{app}.fly.dev/api/health/ready')}  # the default",
        "# infisical_env = \"…\"  # the Infisical environment Path B's flip checklist names",
    ]
