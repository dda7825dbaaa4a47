"""Allow `python -m vexam ...`."""

from vexam.cli import app

app()
