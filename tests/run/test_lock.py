"""The environment lock: a lease on a GitHub ref, taken atomically, renewed, broken only when expired."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clock import VirtualClock, parse_iso, utc_iso
from rollback_helpers.errors import LockHeld, PreconditionFailed
from rollback_helpers.run.lock import EnvironmentLock, Lease, lease_from_message
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.testing import SandboxBackends

Transport = Callable[[httpx.Request], httpx.Response]
TTL = 600.0
REF = "refs/rollback-locks/staging"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return create_world("default", tmp_path)


@pytest.fixture
def clock(world: World) -> VirtualClock:
    return VirtualClock(world.now)


def github(world: World, clock: VirtualClock,
           wrap: Callable[[Transport], Transport] | None = None) -> GitHubClient:
    return SandboxBackends.wire(world, clock=clock, wrap=wrap).github()


def lock(world: World, clock: VirtualClock, **kw: Callable[[Transport], Transport]) -> EnvironmentLock:
    return EnvironmentLock(github(world, clock, kw.get("wrap")), "staging", clock=clock, ttl=TTL)


def lease(holder: str, run_id: str, path: str = "path-a") -> Lease:
    return Lease(env="staging", holder=holder, run_id=run_id, path=path, started_at="",
                 expires_at="", workflow_run_url="")


def ref_target(world: World) -> str | None:
    refs: dict[str, str] = world.state["github"].get("git", {}).get("refs", {})
    return refs.get(REF)


def test_acquire_creates_the_ref_and_held_reads_the_lease_back(world: World,
                                                               clock: VirtualClock) -> None:
    mine = lock(world, clock).acquire(lease("alice", "run-a"))
    assert mine.started_at == utc_iso(clock.now())
    assert parse_iso(mine.expires_at) == clock.now() + TTL
    assert ref_target(world) is not None
    assert lock(world, clock).held() == mine
    commit = world.state["github"]["git"]["objects"][ref_target(world)]
    assert lease_from_message(commit["message"]) == mine
    assert commit["message"].startswith("rollback lock: staging held by alice (run run-a)\n\n")


def test_held_is_none_on_a_free_environment_and_changes_nothing(world: World,
                                                                clock: VirtualClock) -> None:
    assert lock(world, clock).held() is None
    assert [c for c in world.calls() if c["mutating"]] == []


def test_a_second_run_is_refused_with_the_holder_since_when_run_id_and_workflow_url(
        world: World, clock: VirtualClock) -> None:
    alice = lock(world, clock)
    alice.acquire(lease("alice", "run-a"))
    alice.update(workflow_run_url="https://github.com/renewa/renewa-one/actions/runs/7000001")
    with pytest.raises(LockHeld) as caught:
        lock(world, clock).acquire(lease("bob", "run-b"))
    message = str(caught.value)
    assert "alice" in message and "run-a" in message and utc_iso(clock.now()) in message
    assert "actions/runs/7000001" in message and "staging" in message
    assert isinstance(caught.value, PreconditionFailed) and caught.value.exit_code == 3


def test_renew_pushes_the_expiry_and_update_changes_fields_as_a_fast_forward(
        world: World, clock: VirtualClock) -> None:
    alice = lock(world, clock)
    first = alice.acquire(lease("alice", "run-a"))
    before = ref_target(world)
    clock.sleep(120)
    renewed = alice.renew()
    assert parse_iso(renewed.expires_at) == clock.now() + TTL
    assert renewed.started_at == first.started_at
    objects = world.state["github"]["git"]["objects"]
    assert objects[ref_target(world)]["parents"] == [before]  # a compare-and-swap on the old one
    updated = alice.update(workflow_run_url="https://example.invalid/run/1")
    assert lock(world, clock).held() == updated and updated.workflow_run_url.endswith("/run/1")


def test_release_deletes_the_ref_so_the_next_run_can_take_it(world: World,
                                                             clock: VirtualClock) -> None:
    alice = lock(world, clock)
    alice.acquire(lease("alice", "run-a"))
    assert alice.release() is True
    assert ref_target(world) is None and alice.release() is False
    assert lock(world, clock).acquire(lease("bob", "run-b")).holder == "bob"


def test_the_same_run_id_resumes_its_own_lease(world: World, clock: VirtualClock) -> None:
    first = lock(world, clock).acquire(lease("alice", "run-a"))
    clock.sleep(30)
    again = lock(world, clock).acquire(lease("alice", "run-a"))  # e.g. after a crash
    assert again.started_at == first.started_at and again.expires_at > first.expires_at


def test_an_expired_lease_is_taken_over_only_explicitly_and_the_takeover_is_recorded(
        world: World, clock: VirtualClock) -> None:
    alice = lock(world, clock)
    alice.acquire(lease("alice", "run-a"))
    clock.sleep(TTL + 1)
    bob = lock(world, clock)
    with pytest.raises(LockHeld, match="expired") as caught:
        bob.acquire(lease("bob", "run-b"))
    assert caught.value.hint is not None
    assert "--break-lock" in caught.value.hint.render("run")
    assert 'break_lock="<why>"' in str(caught.value)  # rendered for a headless notebook here
    taken = bob.acquire(lease("bob", "run-b"), break_lock="alice's laptop died mid-run")
    assert "run-a" in taken.broken_from and "alice's laptop died mid-run" in taken.broken_from
    assert lock(world, clock).held() == taken
    with pytest.raises(LockHeld, match="taken over by bob"):
        alice.renew()  # the old holder learns it lost the lock
    assert alice.release() is False and lock(world, clock).held() == taken  # and never deletes it


def test_a_live_lease_is_never_broken(world: World, clock: VirtualClock) -> None:
    lock(world, clock).acquire(lease("alice", "run-a"))
    clock.sleep(TTL - 5)
    with pytest.raises(LockHeld, match="never broken"):
        lock(world, clock).acquire(lease("bob", "run-b"), break_lock="I am in a hurry")
    assert lock(world, clock).held().holder == "alice"  # type: ignore[union-attr]


def test_concurrent_acquire_one_wins_the_create_and_the_other_is_told_who(
        world: World, clock: VirtualClock) -> None:
    bob = lock(world, clock)

    def bob_first(handle: Transport) -> Transport:
        def answer(request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path.endswith("/git/refs") \
                    and bob.lease is None:
                bob.acquire(lease("bob", "run-b"))  # lands between alice's commit and her create
            return handle(request)
        return answer

    alice = lock(world, clock, wrap=bob_first)
    with pytest.raises(LockHeld, match="bob"):
        alice.acquire(lease("alice", "run-a"))
    assert lock(world, clock).held().holder == "bob"  # type: ignore[union-attr]
    creates = [c["status"] for c in world.calls() if c["call"].endswith("/git/refs")]
    assert creates == [201, 422]


def test_two_takeovers_of_one_expired_lease_cannot_both_win(world: World,
                                                             clock: VirtualClock) -> None:
    lock(world, clock).acquire(lease("alice", "run-a"))
    clock.sleep(TTL + 1)
    bob = lock(world, clock)

    def bob_first(handle: Transport) -> Transport:
        def answer(request: httpx.Request) -> httpx.Response:
            if request.method == "PATCH" and bob.lease is None:
                bob.acquire(lease("bob", "run-b"), break_lock="alice is gone")
            return handle(request)
        return answer

    carol = lock(world, clock, wrap=bob_first)
    with pytest.raises(LockHeld, match="bob"):
        carol.acquire(lease("carol", "run-c"), break_lock="alice is gone")
    assert lock(world, clock).held().holder == "bob"  # type: ignore[union-attr]
    patches = [c["status"] for c in world.calls() if c["call"].startswith("PATCH")]
    assert patches == [200, 422]  # the second swap was not a fast-forward


def test_a_create_whose_answer_was_lost_is_recognised_as_ours(world: World,
                                                              clock: VirtualClock) -> None:
    def drop_first_create(handle: Transport) -> Transport:
        dropped = [False]

        def answer(request: httpx.Request) -> httpx.Response:
            response = handle(request)
            if request.method == "POST" and request.url.path.endswith("/git/refs") \
                    and not dropped[0]:
                dropped[0] = True
                raise httpx.ReadTimeout("timed out", request=request)
            return response
        return answer

    taken = lock(world, clock, wrap=drop_first_create).acquire(lease("alice", "run-a"))
    assert lock(world, clock).held() == taken


def test_an_environment_name_that_cannot_be_a_ref_is_refused(world: World,
                                                             clock: VirtualClock) -> None:
    with pytest.raises(ValueError):
        EnvironmentLock(github(world, clock), "../main", clock=clock, ttl=TTL)


def test_operators_in_several_processes_racing_for_the_lock_get_exactly_one_holder(
        world: World) -> None:
    import subprocess
    import sys

    code = """
import sys
from rollback_helpers.errors import LockHeld
from rollback_helpers.run.lock import EnvironmentLock, Lease
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.testing import SandboxBackends

sandbox = SandboxBackends.wire(World.load(sys.argv[1]))
gh, clock = sandbox.github(), sandbox.clock
who = sys.argv[2]
try:
    EnvironmentLock(gh, "staging", clock=clock, ttl=600).acquire(
        Lease(env="staging", holder=who, run_id="run-" + who, path="path-a", started_at="",
              expires_at=""))
    print("won")
except LockHeld as exc:
    print("held", exc.what)
"""
    names = ["ann", "ben", "cal", "dee"]
    children = [subprocess.Popen([sys.executable, "-c", code, str(world.state_dir), name],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for name in names]
    answers = {}
    for name, child in zip(names, children, strict=True):
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        answers[name] = out.strip()
    winners = [name for name, answer in answers.items() if answer == "won"]
    assert len(winners) == 1, answers
    holder = EnvironmentLock(github(World.load(world.state_dir), VirtualClock(world.now)),
                             "staging", clock=VirtualClock(world.now), ttl=TTL).held()
    assert holder is not None and holder.holder == winners[0]
    assert all(f"locked by another rollback: {winners[0]}" in answer
               for name, answer in answers.items() if name not in winners)
