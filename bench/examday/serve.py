"""One web process of the bench: `python -m bench.examday.serve vexam|peer PORT`.

Both apps are served by the same uvicorn setup (httptools, uvloop, no access log); vexam
is built as `vexam serve` builds it, its settings from the VEXAM_* environment.
"""

from __future__ import annotations

import os
import signal
import sys

import uvicorn


def _profile_on_demand(path: str) -> None:
    """Profile the event loop's thread; SIGUSR1 writes the figures so far to `path`."""
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    signal.signal(signal.SIGUSR1, lambda *_: profiler.dump_stats(path))


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "vexam":
        from vexam.main import create_app

        application = create_app(warm=True)
    else:
        from bench.examday.peer_app import app as application
    if os.environ.get("BENCH_PROFILE"):
        _profile_on_demand(os.environ["BENCH_PROFILE"])
    uvicorn.run(
        application,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
