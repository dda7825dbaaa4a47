"""Benchmarks; each prints ratios against a peer or a physical limit measured in the same run."""

from __future__ import annotations

from pathlib import Path


def vexam_source(folder: str, flag: str = "--server-src") -> str:
    """The folder holding the `vexam` package to serve: `folder`, or its `src` (what
    `git archive COMMIT src | tar -x -C DIR` makes); "" for this checkout. Refuses a
    folder with neither, which would silently serve this checkout instead."""
    if not folder:
        return ""
    for candidate in (Path(folder), Path(folder) / "src"):
        if (candidate / "vexam" / "__init__.py").exists():
            return str(candidate.resolve())
    raise SystemExit(f"{flag} {folder}: no vexam package in it or in its src")
