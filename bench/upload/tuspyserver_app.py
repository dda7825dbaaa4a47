"""The PyPI peer: `tuspyserver` (FastAPI) at /files, storing in BENCH_TUSPY_DIR."""

from __future__ import annotations

import os

from fastapi import FastAPI
from tuspyserver import create_tus_router

app = FastAPI()
app.include_router(
    create_tus_router(prefix="files", files_dir=os.environ.get("BENCH_TUSPY_DIR", "/tmp/tuspy"))
)
