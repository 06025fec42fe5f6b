"""``rollback-runbook init``: write a commented ``runbook.toml`` for a team's own repository.

    rollback-runbook init                          asks, when run in a terminal
    rollback-runbook init --repo acme/shop --app staging=shop-staging --app production=shop

Flags answer the questions; in a terminal, whatever no flag answered is asked,
with a default in brackets (Enter takes it). The file is validated before it is
put in place: its answers are checked for shape, and the written text is loaded
back with the runbook's own ``load_config``. Nothing is contacted: run
``rollback-runbook check --backend real`` next.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollback_helpers.domain.config import RunbookConfig, load_config
from rollback_helpers.domain.config_template import (
    DEFAULT_LABELS,
    InitAnswers,
    check_answers,
    default_app,
    render,
)
from rollback_helpers.errors import ConfigError

NAME = "init"
Ask = Callable[[str, str], str]  # (question, default) → the answer, or the default
_REMOTE = re.compile(r"github\.com[:/](?P<repo>[^/\s]+/[^/\s]+?)(?:\.git)?/?$")
# field → (flag attribute, question, default when nobody answers)
QUESTIONS: dict[str, tuple[str, str, str]] = {
    "workflow": ("workflow", "Workflow that promotes an image (file name)", "promote-image.yml"),
    "workflow_ref": ("workflow_ref", "Branch to dispatch it on", "main"),
    "workflow_env_input": ("env_input", "Its input that names the environment", "env"),
    "workflow_image_input": ("image_input", "Its input that takes the image", "image"),
    "record_labels": ("record_labels", "Labels on every deployment record ({env} = environment)",
                      ", ".join(DEFAULT_LABELS)),
    "cluster_map_path": ("cluster_map", "Env → cluster-id map in the repository",
                         "scripts/lib/mpg-clusters.sh"),
    "incidents_dir": ("incidents_dir", "Where to archive incident notebooks", "incidents"),
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="write a commented runbook.toml for your repository")
    p.add_argument("--repo", help="GitHub repository with the records and workflow (owner/name)")
    p.add_argument("--app", action="append", metavar="ENV=APP",
                   help="an environment and its Fly app (repeatable)")
    p.add_argument("--workflow", help="the promote workflow's file name (promote-image.yml)")
    p.add_argument("--workflow-ref", help="the branch it is dispatched on (main)")
    p.add_argument("--env-input", help="its input that names the environment (env)")
    p.add_argument("--image-input", help="its input that takes the image (image)")
    p.add_argument("--record-labels", help="labels on every record, comma-separated; {env} is "
                   "the environment (deployment-record,env:{env})")
    p.add_argument("--fly-org", help="Fly organization slug (default: the repository's owner)")
    p.add_argument("--cluster-map", help="env → cluster-id map in the repository")
    p.add_argument("--incidents-dir", help="where executed notebooks are archived (incidents)")
    p.add_argument("--infisical-project",
                   help="the Infisical project Path B's checklist names (default: the repo's name)")
    p.add_argument("--production-approvals", type=int,
                   help="people who must approve a live production run, the operator included (2)")
    p.add_argument("--github-api-url", default="https://api.github.com",
                   help="GitHub REST base URL (GitHub Enterprise: https://<host>/api/v3)")
    p.add_argument("--output", default="runbook.toml", help="the file to write (runbook.toml)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.add_argument("--no-input", action="store_true", help="never ask, even in a terminal")


def run(args: argparse.Namespace, *, ask: Ask | None = None) -> int:
    """Collect the answers (flags, then questions), validate, write; exit 0 or a ConfigError (2)."""
    if ask is None and not args.no_input and sys.stdin.isatty() and sys.stdout.isatty():
        ask = terminal_ask
    target = Path(args.output)
    if target.exists() and not args.force:
        raise ConfigError(f"{target} already exists.", "Pass --force to replace it, or choose "
                          "another --output.")
    answers = collect(args, ask)
    check_answers(answers)
    cfg = write_validated(render(answers), target, answers)
    print(f"Wrote {target} for {cfg.github_repo}: "
          + ", ".join(f"{env} → {app}" for env, app in answers.apps.items()) + ".")
    print(f"It loads: workflow {cfg.workflow} on {cfg.workflow_ref} (inputs "
          f"{cfg.workflow_env_input}, {cfg.workflow_image_input}), map {cfg.cluster_map_path}, "
          f"archives in {cfg.incidents_dir}/.")
    print("Next: rollback-runbook check --backend real   (reads GitHub and Fly; changes nothing)")
    return 0


def terminal_ask(question: str, default: str) -> str:
    try:
        answer = input(f"{question} [{default}]: ").strip()
    except EOFError:
        raise ConfigError(f"No answer to {question!r} (input ended).",
                          "Answer in a terminal, or pass every value as a flag with "
                          "--no-input.") from None
    return answer or default


def collect(args: argparse.Namespace, ask: Ask | None) -> InitAnswers:
    guessed = guess_repo()
    repo = args.repo or (ask("GitHub repository (owner/name)", guessed) if ask else guessed)
    if not repo:
        raise ConfigError("No GitHub repository given, and this folder is not a checkout with a "
                          "GitHub `origin` remote.", "Pass --repo owner/name (or run "
                          "`rollback-runbook init` in a terminal to be asked).")
    apps = _apps(args, repo, ask)
    values = {key: getattr(args, flag) or (ask(question, default) if ask else default)
              for key, (flag, question, default) in QUESTIONS.items()}
    labels = tuple(part.strip() for part in values.pop("record_labels").split(",") if part.strip())
    org = args.fly_org or (ask("Fly organization", repo.split("/")[0].lower()) if ask else "")
    default = ", ".join(e for e in apps if e == "production")
    chosen = ask("Protected environments (a live run needs --confirm and two people)",
                 default) if ask else default
    protected = tuple(e.strip() for e in chosen.split(",") if e.strip())
    if unknown := [e for e in protected if e not in apps]:
        raise ConfigError(f"Protected environment(s) {', '.join(unknown)} are not among "
                          f"{', '.join(apps)}.", "Name environments given above, comma-separated.")
    name = repo.strip().rsplit("/", 1)[-1]
    project = args.infisical_project or (
        ask("Infisical project (Path B's flip checklist names it)", name) if ask else name)
    approvals = args.production_approvals
    if approvals is None:
        approvals = _number(ask("People who must approve a live run on a protected environment "
                                "(you included)", "2")) if ask and protected else 2
    return InitAnswers(github_repo=repo.strip(), apps=apps, record_labels=labels, fly_org=org,
                       github_api_url=args.github_api_url, protected=protected,
                       infisical_project=project, production_approvals=approvals, **values)


def _number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a number of people.", "Answer with a whole number, "
                          "e.g. 2; nothing was written.") from None


def _apps(args: argparse.Namespace, repo: str, ask: Ask | None) -> dict[str, str]:
    apps: dict[str, str] = {}
    for item in args.app or []:
        env, sep, app = item.partition("=")
        if not sep or not env.strip() or not app.strip():
            raise ConfigError(f"--app {item!r} is not ENV=APP.", "Write it like "
                              "--app staging=shop-staging.")
        apps[env.strip()] = app.strip()
    if apps or ask is None:
        if not apps:
            raise ConfigError("No environment given.", "Name each environment's Fly app: "
                              "--app staging=shop-staging --app production=shop.")
        return apps
    envs = ask("Environments (comma-separated)", "staging, production")
    for env in (e.strip() for e in envs.split(",") if e.strip()):
        apps[env] = ask(f"Fly app for {env}", default_app(repo, env))
    return apps


def guess_repo(start: Path | None = None) -> str:
    """``owner/name`` of the ``origin`` remote of the checkout around ``start`` (the current
    folder), read from its ``.git/config`` itself: the command runner starts no git."""
    for folder in [(start or Path.cwd()).resolve(), *(start or Path.cwd()).resolve().parents]:
        dot_git = folder / ".git"
        if dot_git.exists():
            return _origin(dot_git)
    return ""


def _origin(dot_git: Path) -> str:
    git = dot_git
    if dot_git.is_file():  # a worktree: its config is the main repository's
        git = (dot_git.parent / dot_git.read_text().strip().removeprefix("gitdir: ")).resolve()
        if (git / "commondir").is_file():
            git = (git / (git / "commondir").read_text().strip()).resolve()
    try:
        text = (git / "config").read_text()
    except OSError:
        return ""
    section = re.search(r'^\[remote "origin"\]\s*$(?P<body>[\s\S]*?)(?=^\[|\Z)', text, re.M)
    url = re.search(r"^\s*url\s*=\s*(\S+)", section["body"], re.M) if section else None
    found = _REMOTE.search(url[1]) if url else None
    return found["repo"] if found else ""


def write_validated(text: str, target: Path, answers: InitAnswers) -> RunbookConfig:
    """Write beside ``target``, load it back as the runbook would, then put it in place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    draft = target.with_name(f".{target.name}.draft")
    draft.write_text(text)
    try:
        cfg = load_config(config_file=draft, environ={})
        for env, app in answers.apps.items():
            loaded = cfg.env(env)
            if loaded.app != app or list(loaded.record_labels) != answers.labels_for(env):
                raise ConfigError(f"{env} reads back as app {loaded.app!r} with labels "
                                  f"{list(loaded.record_labels)}.", "Report this; nothing was "
                                  "written.")
        os.replace(draft, target)
        return cfg
    finally:
        draft.unlink(missing_ok=True)
