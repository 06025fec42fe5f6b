"""Composition, not reaching in: no module uses a private member of another object.

A class split to fit the 400-line cap must be parts with public methods (the GitHub client is
a session and its parts), not mixins or modules that call each other's ``_private`` members.
The few names below are other libraries' public protocols that happen to start with ``_``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rollback_helpers"
PROTOCOLS = {
    "_replace",          # namedtuple's (urllib's SplitResult)
    "_repr_html_",       # IPython's rich display
    "_showtraceback",    # IPython's hook the runbook overrides for its own errors
}


def reaches_in(source: str) -> list[str]:
    """``x._name`` where ``x`` is not ``self``/``cls`` (nor the same class's ``other``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") \
                or node.attr.startswith("__") or node.attr in PROTOCOLS:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "other"):
            continue
        found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_checker_sees_a_private_call_on_another_object() -> None:
    assert reaches_in("self.session._send('GET', url)\nself._own()\n") == [
        "1: self.session._send"]


def test_no_module_uses_a_private_member_of_another_object() -> None:
    offences = {str(path.relative_to(PACKAGE)): found for path in sorted(PACKAGE.rglob("*.py"))
                if (found := reaches_in(path.read_text()))}
    assert offences == {}
