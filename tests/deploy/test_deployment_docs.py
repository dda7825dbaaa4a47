"""Issue 10 deployment docs: docs/deployment.md documents every setting, shows the nginx site
and the systemd units exactly as deploy/ ships them, and the README links to it."""

from __future__ import annotations

import re
from pathlib import Path

from vexam.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deployment.md"


def test_every_setting_is_in_the_environment_reference() -> None:
    text = DOC.read_text()
    rows = set(re.findall(r"^\| `(VEXAM_[A-Z0-9_]+)` \|", text, re.MULTILINE))
    wanted = {f"VEXAM_{name.upper()}" for name in Settings.model_fields}
    assert sorted(wanted - rows) == [], "settings missing from docs/deployment.md"
    assert sorted(rows - wanted) == [], "documented settings that do not exist"


def test_nginx_site_and_systemd_units_are_shown_as_shipped() -> None:
    text = DOC.read_text()
    site = (ROOT / "deploy" / "nginx" / "vexam.conf.template").read_text()
    assert f"```nginx\n{site}```" in text
    units = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
    assert len(units) == 3
    for unit in units:
        assert f"`deploy/systemd/{unit.name}`" in text
        assert f"```ini\n{unit.read_text()}```" in text


def test_readme_links_the_deployment_guide() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/deployment.md" in readme and "deploy/local-cluster up" in readme
