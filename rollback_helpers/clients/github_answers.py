"""Reading GitHub's answers: JSON bodies (an object, a list) and the message of a refusal.

A body that is not what the endpoint promises (a proxy's login page, a list for an object)
is a :class:`~rollback_helpers.errors.GitHubError` naming the endpoint, never a KeyError
later.
"""

from __future__ import annotations

from typing import Any

import httpx

from rollback_helpers.errors import GitHubError


def error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    errors = data.get("errors")
    detail = f" {errors}" if errors else ""
    return f"{data.get('message', '')}{detail}".strip()


def header_number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def json_body(response: httpx.Response, endpoint: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        status = response.status_code
        raise GitHubError(f"GitHub's answer to {endpoint} is not JSON (HTTP {status}).",
                          "Check the GitHub API URL in the config (a proxy or login page may "
                          "be answering instead).") from exc


def json_object(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    data = json_body(response, endpoint)
    if not isinstance(data, dict):
        raise GitHubError(f"GitHub's answer to {endpoint} is not a JSON object.",
                          "Check the GitHub API URL in the config.")
    return data


def json_list(response: httpx.Response, endpoint: str) -> list[dict[str, Any]]:
    data = json_body(response, endpoint)
    if not isinstance(data, list):
        raise GitHubError(f"GitHub's answer to {endpoint} is not a JSON list.",
                          "Check the GitHub API URL in the config.")
    return [item for item in data if isinstance(item, dict)]
