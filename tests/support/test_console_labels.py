"""SPEC §7/§8: the support console names what it shows: every audit action the code records
has a label (so the audit search never shows a bare code), and so does each subject type;
review and appeal pages name statuses, documents and how details were entered."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import bearer, staff
from tests.identity.conftest import new_id_number, to_review
from tests.support.test_support_console import EN, HTML, new_candidate
from vexam.core.context import Role
from vexam.support.labels import AUDIT_ACTION_LABELS, AUDIT_ACTOR_LABELS, AUDIT_SUBJECT_LABELS
from vexam.support.pages import _role_label

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


def test_every_audit_actor_that_is_not_a_role_has_a_label() -> None:
    """An entry written for a payment gateway's callback names its actor ("payment_provider"
    was shown raw in the audit search)."""
    actors = {
        keyword.value.value
        for path in SRC.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "actor_role" and isinstance(keyword.value, ast.Constant)
    }
    assert "payment_provider" in actors
    assert actors - {role.value for role in Role} - AUDIT_ACTOR_LABELS.keys() == set()
    assert _role_label("payment_provider") == "Payment provider"  # what the page translates


@pytest.mark.usefixtures("app")
async def test_review_and_appeal_pages_name_their_codes(client, inbox, new_phone, app) -> None:
    """A review shows the document, how it was entered and its decision by name; an appeal
    shows the holder's status and its outcome by name (English here, Chinese by default)."""
    agent = bearer(await staff(app, client, new_phone(), "support"))
    who, _ = await new_candidate(client, inbox, new_phone())
    number = new_id_number()
    review = await to_review(client, who, number)
    decided = await client.post(
        f"/support/reviews/{review['id']}/decision",
        data={"decision": "approve", "reason": "一致"},
        headers={**agent, **HTML},
    )
    assert decided.status_code == 303
    page = (await client.get(f"/support/reviews/{review['id']}", headers={**agent, **EN})).text
    assert "Resident ID card" in page and "typed by hand" in page
    assert "Decided: Approved" in page and ", manual<" not in page
    other, _ = await new_candidate(client, inbox, new_phone())
    body = {"kind": "identity_conflict", "id_number": number, "message": "这是我的身份证号"}
    opened = await client.post("/api/v1/identity/appeals", json=body, headers=other)
    assert opened.status_code in (200, 201), opened.text
    appeals = (await client.get("/support/appeals", headers={**agent, **EN})).text
    card = appeals[appeals.index(f'data-testid="appeal-{opened.json()["id"]}"') :]
    holder = card[
        card.index('data-testid="holder"') : card.index("</dl>", card.index('data-testid="holder"'))
    ]
    assert "Certified · typed by hand" in holder and "certified" not in holder.replace(
        "Certified", ""
    )
