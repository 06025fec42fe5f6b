"""Scenarios: TOML files that describe a sandbox world's start and its faults.

``scenarios/*.toml`` beside this module ship with the project; any other path
to a ``.toml`` file works too. The format is documented in ``docs/scenarios.md``.

An environment with ``database = true`` gets a real PostgreSQL server (Path B,
built by :mod:`.scenario_clusters`); every other part of a world is plain JSON, so
Path A scenarios start no server at all.
"""

from __future__ import annotations

import secrets as _random
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rollback_helpers.clock import parse_iso, utc_iso
from rollback_helpers.domain.config import read_toml
from rollback_helpers.errors import ConfigError
from rollback_helpers.sandbox.core.latency import checked_latency
from rollback_helpers.sandbox.core.world import STATE_FILE, World, digest_for, world_lock
from rollback_helpers.sandbox.github.common import WEB
from rollback_helpers.sandbox.github.faults import build_github_faults
from rollback_helpers.sandbox.github.forgers import build_forgeries
from rollback_helpers.sandbox.github.team import build_team
from rollback_helpers.sandbox.scenario_clusters import (
    build_database,
    build_extra_clusters,
    build_metadata_cluster,
    build_restore_and_flip,
    cluster_map_file,
)
from rollback_helpers.sandbox.scenario_schema import check_scenario

SCENARIO_DIR = Path(__file__).parent / "scenarios"
DAY = 86400.0
FLY_KEYS = ("restore_seconds", "restore_outcome", "proxy_fault", "ssh_latency", "logged_in",
            "email")
GITHUB_KEYS = ("permissions", "token_scopes")  # what GET /repos/{repo} tells a preflight


def list_scenarios() -> dict[str, str]:
    """Shipped scenario names and their one-line descriptions."""
    return {p.stem: tomllib.loads(p.read_text()).get("description", "").strip().splitlines()[0]
            for p in sorted(SCENARIO_DIR.glob("*.toml"))}


def load_scenario(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(list_scenarios())
        raise ConfigError(f"Unknown sandbox scenario {name_or_path!r}.",
                          f"Use one of: {known}, or the path to a scenario .toml file.")
    data = read_toml(path, what="scenario file")
    check_scenario(data, path)
    data.setdefault("name", path.stem)
    return data


def create_world(name_or_path: str, state_dir: str | Path, *, speed: float = 0.0,
                 latency: Mapping[str, float] | None = None) -> World:
    """Build a fresh world from a scenario into ``state_dir`` (emptied first).

    ``latency``: seconds per call of some seams, over the scenario's ``[latency]``.

    Servers of an earlier world in the same directory are stopped and deleted
    first; if building fails half-way, every server it started is stopped. The
    world's lock is held throughout, so no other process acts in a half-built world.
    """
    scenario = load_scenario(name_or_path)
    state_dir = Path(state_dir)
    if latency:
        scenario = {**scenario, "latency": {**scenario.get("latency", {}),
                                            **checked_latency(latency)}}
    with world_lock(state_dir):
        return _build_world(scenario, state_dir, speed)


def open_world(name_or_path: str, state_dir: str | Path, *, speed: float = 0.0,
               latency: Mapping[str, float] | None = None) -> tuple[World, bool]:
    """The world in ``state_dir`` if there is one, else a new one from the scenario.

    Returns the world and whether it was created. Several processes that start
    together on one directory build it once and all share it.
    """
    state_dir = Path(state_dir)
    with world_lock(state_dir):
        if (state_dir / STATE_FILE).is_file():
            return World.load(state_dir), False
        return create_world(name_or_path, state_dir, speed=speed, latency=latency), True


def _build_world(scenario: dict[str, Any], state_dir: Path, speed: float) -> World:
    state_dir.mkdir(parents=True, exist_ok=True)
    discard_servers(state_dir)
    for stale in (STATE_FILE, "calls.jsonl"):
        (state_dir / stale).unlink(missing_ok=True)
    start = parse_iso(scenario.get("start", "2026-06-10T09:00:00Z"))
    world = World({"now": start, "speed": speed, "scenario": scenario["name"],
                   "description": scenario.get("description", ""), "events": [], "counters": {},
                   "latency": {seam: float(seconds) for seam, seconds
                               in scenario.get("latency", {}).items() if seconds}},
                  state_dir)
    try:
        _build_github(world, scenario)
        build_team(world, scenario)
        _build_fly(world, scenario)
        build_forgeries(world, scenario)
        build_github_faults(world, scenario)
        world.advance()  # a run already in flight may have started
        world.save()
    except BaseException:
        discard_servers(state_dir)
        raise
    return world


def discard_servers(state_dir: Path) -> None:
    """Stop and delete the servers, backups and recorded processes of a world in ``state_dir``."""
    if not any((state_dir / name).exists() for name in ("clusters", "backups", "pids")):
        return  # a Path A world: nothing to import, nothing to stop
    from rollback_helpers.sandbox.occupants import stop_recorded_processes
    from rollback_helpers.sandbox.postgres import servers as postgres

    stop_recorded_processes(state_dir)
    postgres.purge(state_dir)


def _build_github(world: World, scenario: dict[str, Any]) -> None:
    gh = scenario.get("github", {})
    workflow = scenario.get("workflow", {})
    world.state["github"] = {
        "repo": gh.get("repo", "renewa/renewa-one"),
        "token": "ghs_sandbox" + _random.token_hex(16),
        "issues": [],
        "comments": {},
        "runs": [],
        "files": dict(gh.get("files", {})),
        "workflow": {
            "file": workflow.get("file", "promote-image.yml"),
            "id": int(workflow.get("id", 48151623)),
            "queue_time": float(workflow.get("queue_time", 5)),
            "duration": float(workflow.get("duration", 90)),
            "conclusion": workflow.get("conclusion", "success"),
            "dispatch": workflow.get("dispatch", "details"),
            "state": workflow.get("state", "active"),
        },
        "faults": {
            "token": scenario.get("faults", {}).get("token", "valid"),
            "rate_limit_on": list(scenario.get("faults", {}).get("rate_limit_on", [])),
            "secondary_limit_on": list(scenario.get("faults", {}).get("secondary_limit_on", [])),
            "server_error_on": list(scenario.get("faults", {}).get("server_error_on", [])),
        },
        "request_count": 0,
    }
    world.state["github"].update({key: gh[key] for key in GITHUB_KEYS if key in gh})


def _issue(world: World, *, title: str, body: str, labels: list[str], created: float,
           pull_request: bool = False) -> dict[str, Any]:
    number = world.next_id("issue", start=int(world.state.get("first_issue", 1001)))
    issue: dict[str, Any] = {
        "number": number, "title": title, "body": body, "labels": labels, "state": "open",
        "created_at": utc_iso(created), "updated_at": utc_iso(created),
        "user": "deploy-bot" if not pull_request else "some-dev",
    }
    if pull_request:
        issue["pull_request"] = True
    world.state["github"]["issues"].append(issue)
    return issue


def record_body(env: str, app: str, image: str, previous: str, *, sha: str, at: float,
                workflow_run: str, optional: Mapping[str, str] | None = None) -> str:
    """The reference deployment-record body (docs/records.md); ``optional`` holds the fields a
    record may leave out (``cluster_id``, ``backup_id``), written when not empty."""
    lines = [f"Deployment record for {env}", "", f"- env: {env}", f"- app: {app}",
             f"- image: {image}"]
    if previous:
        lines.append(f"- previous_image: {previous}")
    lines.append(f"- git_sha: {sha}")
    lines += [f"- {key}: {value}" for key, value in (optional or {}).items() if value]
    lines += [f"- workflow_run: {workflow_run}", "- deployed_by: deploy-bot",
              f"- deployed_at: {utc_iso(at)}"]
    return "\n".join(lines) + "\n"


def _build_fly(world: World, scenario: dict[str, Any]) -> None:
    fly_spec = scenario.get("fly", {})
    world.state["fly"] = {"org": fly_spec.get("org", "renewa"),
                          "apps": {}, "images": {}, "clusters": {}}
    world.state["fly"].update({key: fly_spec[key] for key in FLY_KEYS if key in fly_spec})
    world.state["fly"]["traffic"] = scenario.get("traffic", "healthy")
    envs: dict[str, Any] = scenario.get("environments", {})
    deploy_plan: list[tuple[float, str, str]] = []
    for env, spec in envs.items():
        deploys = list(spec.get("deploys", []))
        for i, name in enumerate(deploys):
            deploy_plan.append((world.now - (len(deploys) - i) * DAY + _env_offset(env), env, name))
        _build_app(world, env, spec)
        _build_timeline(world.state["fly"]["apps"][spec["app"]], deploy_plan, env, spec)
    build_extra_clusters(world, scenario.get("clusters", {}))
    backup_ids: dict[str, dict[str, str]] = {}
    for env, spec in envs.items():
        times = sorted((at, name) for at, e, name in deploy_plan if e == env)
        if spec.get("database"):
            backup_ids[env] = build_database(world, env, spec, times)
        elif spec.get("cluster_id"):
            backup_ids[env] = build_metadata_cluster(world, spec, times)
    world.state["github"]["files"].update(cluster_map_file(scenario))
    _build_records(world, envs, deploy_plan, backup_ids)
    for env, spec in envs.items():
        if spec.get("restored"):
            build_restore_and_flip(world, env, spec)


def _build_records(world: World, envs: dict[str, Any], deploy_plan: list[tuple[float, str, str]],
                   backup_ids: dict[str, dict[str, str]]) -> None:
    previous: dict[str, str] = {}
    repo = world.state["github"]["repo"]
    for at, env, name in sorted(deploy_plan):
        spec = envs[env]
        image = f"{spec.get('repository', 'registry.fly.io/renewa-one')}@{digest_for(name)}"
        override = spec.get("record_bodies", {}).get(name)
        backup_id = spec.get("backups", {}).get(name, backup_ids.get(env, {}).get(name, ""))
        body = _fill(override, image, previous.get(env, ""), env, spec["app"]) \
            if override is not None else record_body(
            env, spec["app"], image, previous.get(env, ""), sha=digest_for("git" + name)[7:14],
            at=at, workflow_run=f"{WEB}/{repo}/actions/runs/"
                                f"{world.next_id('run', 7000000)}",
            optional={"cluster_id": spec.get("cluster_id", ""), "backup_id": backup_id})
        labels = ["deployment-record", f"env:{env}",
                  *spec.get("extra_labels", {}).get(name, [])]
        _issue(world, title=f"Deploy {name} to {env}", body=body, labels=labels, created=at)
        previous[env] = image
        for _ in range(int(spec.get("pull_requests_after", {}).get(name, 0))):
            _issue(world, title=f"Bump dependencies after {name}", body="Routine update.",
                   labels=["deployment-record", f"env:{env}"], created=at + 60, pull_request=True)


def _fill(template: str, image: str, previous: str, env: str, app: str) -> str:
    """A hand-written record body: ``{image}``, ``{previous_image}``, ``{env}``, ``{app}`` set."""
    for key, value in {"image": image, "previous_image": previous, "env": env, "app": app}.items():
        template = template.replace("{" + key + "}", value)
    return template


def _env_offset(env: str) -> float:
    return {"development": -3 * 3600, "staging": -2 * 3600, "production": -3600}.get(env, 0)


def _build_app(world: World, env: str, spec: dict[str, Any]) -> None:
    deploys = list(spec.get("deploys", []))
    running = spec.get("running", deploys[-1] if deploys else "")
    repository = spec.get("repository", "registry.fly.io/renewa-one")
    unhealthy = set(spec.get("unhealthy", []))
    images = world.state["fly"]["images"]
    for name in {*deploys, running, *spec.get("extra_images", [])} - {""}:
        # One image, one behaviour: unhealthy in any environment means unhealthy everywhere.
        healthy = name not in unhealthy and images.get(name, {}).get("healthy", True)
        images[name] = {"digest": digest_for(name), "repository": repository, "healthy": healthy}
    count = int(spec.get("machines", 2))
    states = list(spec.get("machine_states", ["started"] * count))
    machines = []
    for i in range(count):
        seed = digest_for(f"{env}-machine-{i}")[7:]
        machines.append({
            "id": seed[:14], "name": f"{['cool', 'odd', 'bold', 'calm'][i % 4]}-{seed[14:18]}-{i}",
            "state": states[i], "region": spec.get("region", "fra"),
            "private_ip": f"fdaa:12:a3f1:a7b:{seed[18:21]}:{seed[21:25]}:{seed[25:29]}:2",
            "image": running, "created_at": utc_iso(world.now - 90 * DAY),
            "updated_at": utc_iso(world.now - 3600),
        })
    world.state["fly"]["apps"][spec["app"]] = {
        "env": env, "repository": repository, "release": len(deploys) + 10,
        "machines": machines, "secrets": dict(spec.get("secrets", {})),
        "healthy_override": spec.get("health_status"),
    }


def _build_timeline(app: dict[str, Any], deploy_plan: list[tuple[float, str, str]], env: str,
                    spec: dict[str, Any]) -> None:
    """Which image the app ran from when (its records' ``deployed_at``), and the two images
    the traffic profile names: the bad deploy (the newest; none when the deploy damaged a
    database, whose app keeps serving) and the one before it."""
    deploys = [(at, name) for at, e, name in sorted(deploy_plan) if e == env]
    app["deploys"] = [{"image": name, "at": at} for at, name in deploys]
    running = spec.get("running")
    if running and deploys and running != deploys[-1][1]:  # drift: deployed outside the records
        app["deploys"].append({"image": running, "at": deploys[-1][0] + 3600.0})
    names = [name for _, name in deploys]
    # Path B's bad deploy damaged the data, not the code: its traffic stays healthy.
    app["traffic"] = {"bad": names[-1] if names and not spec.get("database") else "",
                      "target": names[-2] if len(names) > 1 else ""}
