"""The vexam web app as `vexam serve` builds it, served by uvicorn with httptools + uvloop
(no access log, like the peers); settings from the VEXAM_* environment."""

from __future__ import annotations

import sys

import uvicorn

from vexam.main import create_app

if __name__ == "__main__":
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
