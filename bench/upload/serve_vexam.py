"""The vexam web app as `vexam serve` builds it, served by uvicorn with httptools + uvloop
(no access log, like the peers); settings from the VEXAM_* environment.

With BENCH_PROFILE=FILE set, the server runs under a profiler and writes its profile to FILE
when it stops: cProfile on process CPU time when FILE ends in .pstats, else pyinstrument
(`pip install pyinstrument`; text, or HTML when FILE ends in .html)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import uvicorn

from vexam.main import create_app


def _serve() -> None:
    uvicorn.run(
        create_app(warm=True),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    target = os.environ.get("BENCH_PROFILE")
    if not target:
        _serve()
    elif target.endswith(".pstats"):  # cProfile on process CPU time (python -m pstats FILE)
        import cProfile
        import time

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        cpu = cProfile.Profile(time.process_time)
        cpu.enable()
        try:
            _serve()
        finally:
            cpu.disable()
            cpu.dump_stats(target)
    else:
        from pyinstrument import Profiler

        # uvicorn re-raises SIGTERM after its shutdown: end here, so the profile is written.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        try:
            _serve()
        finally:
            profiler.stop()
            out = Path(target)
            if out.suffix == ".html":
                out.write_text(profiler.output_html())
            else:
                out.write_text(profiler.output_text(unicode=True, show_all=False))
