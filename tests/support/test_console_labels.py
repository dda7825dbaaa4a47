"""SPEC §7/§8: the support console names what it shows: every audit action the code records
has a label (so the audit search never shows a bare code), and so does each subject type."""

from __future__ import annotations

import ast
from pathlib import Path

from vexam.support.labels import AUDIT_ACTION_LABELS, AUDIT_SUBJECT_LABELS

SRC = Path(__file__).resolve().parents[2] / "src" / "vexam"
# Actions built from a value at run time: their prefix and every value they take.
BUILT = {
    "identity.review_": ("approved", "rejected"),
    "identity.appeal_": ("upheld", "dismissed"),
    "payment.callback_": ("charged", "ignored"),
}


def _strings(node: ast.expr, constants: dict[str, str]) -> list[str]:
    """The action names an audit.record argument can be."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body, constants) + _strings(node.orelse, constants)
    if isinstance(node, ast.Name) and node.id in constants:
        return [constants[node.id]]
    if isinstance(node, ast.JoinedStr):
        head = node.values[0]
        assert isinstance(head, ast.Constant) and head.value in BUILT, ast.unparse(node)
        return [f"{head.value}{tail}" for tail in BUILT[head.value]]
    raise AssertionError(f"cannot read the audit action {ast.unparse(node)}")


def recorded() -> tuple[set[str], set[str]]:
    """Every (action, subject type) the code passes to `audit.record`."""
    actions: set[str] = set()
    subjects: set[str] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            func = getattr(node, "func", None)
            if not (
                isinstance(node, ast.Call)
                and isinstance(func, ast.Attribute)
                and func.attr == "record"
                and isinstance(func.value, ast.Name)
                and func.value.id == "audit"
            ):
                continue
            actions.update(_strings(node.args[1], constants))
            subjects.update(_strings(node.args[2], constants))
    return actions, subjects


def test_every_audit_action_and_subject_has_a_label() -> None:
    actions, subjects = recorded()
    assert len(actions) > 50
    assert actions - AUDIT_ACTION_LABELS.keys() == set()
    assert subjects - AUDIT_SUBJECT_LABELS.keys() == set()
