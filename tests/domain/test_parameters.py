"""One parameters object per path: validated once, refusing what the path does not take."""

from __future__ import annotations

import math
import types
from typing import Any

import pytest

from rollback_helpers.domain.parameters import (
    PathAParameters,
    PathBParameters,
    VerifyFlipParameters,
    check_parameters,
    checked,
    parameters_of,
)
from rollback_helpers.errors import BadInput, ConfigError

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("path, model", [("path-a", PathAParameters), ("path-b", PathBParameters),
                                         ("verify-flip", VerifyFlipParameters)])
def test_the_path_picks_its_model(path: str, model: type[Any]) -> None:
    """The union is discriminated on `path`: the mapping becomes that path's object."""
    params = check_parameters(path, {"env": "staging"})
    assert type(params) is model and params.path == path and params.env == "staging"


@pytest.mark.parametrize("path, given, named, owner", [
    ("path-b", {"target_digest": DIGEST}, "'target_digest'", "path-a takes it"),
    ("path-b", {"watch_in_flight": True}, "'watch_in_flight'", "path-a takes it"),
    ("verify-flip", {"override_unhealthy_target": "why"}, "'override_unhealthy_target'",
     "path-a takes it"),
    ("path-a", {"backup_id": "backup_1"}, "'backup_id'", "path-b takes it"),
    ("path-a", {"old_cluster": "c1"}, "'old_cluster'", "verify-flip takes it"),
    ("verify-flip", {"dry_run": False}, "'dry_run'", "path-a and path-b take it"),
    ("verify-flip", {"break_lock": "why"}, "'break_lock'", "path-a and path-b take it"),
    ("verify-flip", {"confirm": "production"}, "'confirm'", "path-a and path-b take it"),
])
def test_another_paths_option_is_refused_naming_it_and_its_path(
        path: str, given: dict[str, Any], named: str, owner: str) -> None:
    """Path B refuses Path A's options and vice versa: bad input, never silently ignored."""
    with pytest.raises(ConfigError) as caught:
        check_parameters(path, {"env": "staging", **given})
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert f"parameter {named} is not one {path} takes ({owner})" in message


def test_an_unknown_parameter_is_refused_and_the_path_lists_what_it_takes() -> None:
    with pytest.raises(ConfigError) as caught:
        check_parameters("path-a", {"env": "staging", "targetdigest": DIGEST})
    assert "parameter 'targetdigest' is not one path-a takes." in str(caught.value)
    assert "target_digest" in caught.value.next_step and "dry_run" in caught.value.next_step


def test_a_mapping_naming_another_path_is_refused() -> None:
    """path_a.start cannot be handed Path B's parameters by setting `path`."""
    with pytest.raises(ConfigError, match="'path' = 'path-b', but this is the path-a notebook"):
        check_parameters("path-a", {"path": "path-b"})
    assert check_parameters("path-a", {"path": "path-a"}).path == "path-a"


@pytest.mark.parametrize("given, named", [({"dry_run": 0}, "'dry_run'"),
                                          ({"record_number": "12"}, "'record_number'"),
                                          ({"ready_timeout": math.inf}, "'ready_timeout'")])
def test_a_bad_value_is_named_without_the_paths_tag(given: dict[str, Any], named: str) -> None:
    """pydantic locates a union member's error under its tag; the message names the parameter."""
    with pytest.raises(ConfigError) as caught:
        check_parameters("path-b", given)
    assert f"parameter {named} = " in str(caught.value)
    assert "path-b." not in str(caught.value)


def test_the_command_line_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--record-number = 0"):
        check_parameters("path-b", {"record_number": 0}, source="the command line",
                         name=lambda key: "--" + key.replace("_", "-"))


def test_a_malformed_target_digest_is_bad_input_in_the_model() -> None:
    """The image reference is checked with the other parameters, before anything is contacted."""
    with pytest.raises(BadInput, match="joins the digest with ':'"):
        check_parameters("path-a", {"target_digest": "registry.fly.io/app:" + DIGEST})
    assert checked(PathAParameters, {"target_digest": None}).target_digest is None
    with pytest.raises(BadInput, match="is empty"):  # empty is missing, never "resolve it"
        check_parameters("path-a", {"target_digest": ""})


def test_only_changing_paths_have_a_mode_verify_flip_is_always_a_dry_run() -> None:
    flip = checked(VerifyFlipParameters, {"env": "staging"})
    assert (flip.dry_run, flip.confirm, flip.break_lock) == (True, "", "")
    assert checked(PathAParameters, {"dry_run": False}).dry_run is False


def test_path_b_ready_timeout_is_a_configuration_override() -> None:
    params = checked(PathBParameters, {"ready_timeout": 30.0, "config": {"poll_interval": 2.0}})
    assert params.config_overrides() == {"poll_interval": 2.0, "ready_timeout": 30.0}
    assert checked(PathAParameters, {}).config_overrides() is None


def test_the_parameters_object_is_frozen() -> None:
    params = checked(PathAParameters, {"env": "staging"})
    with pytest.raises(ValueError, match="frozen"):
        params.env = "production"  # type: ignore[misc]


class FakeShell:
    user_ns_hidden = {"exit": None, "quit": None, "_ih": None, "shown_by_ipython": None}


def test_parameters_of_takes_the_notebooks_plain_values_only() -> None:
    """globals() of a notebook: its parameters, and what papermill injected; not modules, the
    run object of an earlier cell, private names or what IPython put there itself."""
    namespace: dict[str, Any] = {
        "env": "staging", "dry_run": False, "record_number": 12, "ready_timeout": 30.5,
        "config": {"poll_interval": 1}, "sandbox_dir": None, "verify_tables": ["a"],
        "path_b": types.ModuleType("path_b"), "run": object(), "start": print,
        "_": "last output", "__name__": "__main__", "In": ["", "env = ''"], "Out": {},
        "get_ipython": FakeShell, "shown_by_ipython": "hidden", "typo_parameter": "x"}
    assert parameters_of(namespace) == {
        "env": "staging", "dry_run": False, "record_number": 12, "ready_timeout": 30.5,
        "config": {"poll_interval": 1}, "sandbox_dir": None, "verify_tables": ["a"],
        "typo_parameter": "x"}


def test_an_injected_parameter_the_notebook_does_not_take_is_refused() -> None:
    """papermill only warns about an unknown -p; the model refuses it before any contact."""
    namespace = {"env": "staging", "dry_run": True, "targetdigest": DIGEST}
    with pytest.raises(ConfigError, match="'targetdigest' is not one path-a takes"):
        check_parameters("path-a", parameters_of(namespace))


def test_a_live_path_b_run_on_the_real_world_says_why_path_a_is_not_enough() -> None:
    """Path A first: a headless live run without path_a_tried is bad input (exit 2) naming the
    flag; a dry run, a drill or a walkthrough need not say it; given, it is kept."""
    live = {"path": "path-b", "env": "staging", "backend": "real", "dry_run": False}
    with pytest.raises(ConfigError) as refused:
        checked(PathBParameters, live)
    assert refused.value.exit_code == 2 and 'path_a_tried="<why>"' in refused.value.next_step
    for fine in ({"dry_run": True}, {"backend": "sandbox"}, {"interactive": True}):
        assert checked(PathBParameters, {**live, **fine}).path_a_tried == ""
    why = "the migration dropped meter_readings"
    assert checked(PathBParameters, {**live, "path_a_tried": why}).path_a_tried == why


@pytest.mark.parametrize("path, given, named", [
    ("path-a", {"target_digest": ""}, "'target_digest'"),
    ("path-b", {"backup_id": ""}, "'backup_id'"),
    ("path-b", {"backup_id": "x; rm -rf /"}, "'backup_id'"),
    ("path-b", {"new_cluster_name": "c" * 100_000}, "'new_cluster_name'"),
    ("path-b", {"source_cluster": "--org=evil"}, "'source_cluster'"),
    ("verify-flip", {"old_cluster": "a b"}, "'old_cluster'"),
    ("path-a", {"reason": "x" * 100_000}, "'reason'"),
    ("path-a", {"no_such_parameter": 1}, "'no_such_parameter'"),
    ("path-a", {"config": {"poll_interval": 1e308}, "colour": "red"}, "'colour'"),
])
def test_empty_unsafe_or_oversized_parameters_are_bad_input(path: str, given: dict[str, object],
                                                            named: str) -> None:
    """Empty is missing (never the default); names that reach argv, refs or paths match a strict
    pattern; free text stays far below GitHub's 65,536-character comment limit; an unknown name
    is refused. The message stays short: the 100 KB value is not echoed."""
    from rollback_helpers.domain.parameters import check_parameters
    from rollback_helpers.errors import ConfigError

    with pytest.raises(ConfigError, match=named) as raised:
        check_parameters(path, given)
    assert len(str(raised.value)) < 1000


def test_a_credential_in_the_override_reason_is_refused_before_anything_starts() -> None:
    """The override's reason goes into a decision, the record and the run comment's story."""
    with pytest.raises(BadInput) as refused:
        PathAParameters(env="staging", override_unhealthy_target="ok, token ghp_" + "a" * 36)
    assert "override_unhealthy_target" in str(refused.value)
    assert "a" * 36 not in str(refused.value)
