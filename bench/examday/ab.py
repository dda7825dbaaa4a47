"""Status polls against two vexam sources, alternating, for a before/after on a shared machine.

    python -m bench.examday.ab WORKDIR BEFORE_SRC [--rounds N] [--seconds S] [--concurrency C]

After a `python -m bench.examday --direct --workdir WORKDIR` run (its database and seeded
candidates stay): one uvicorn process serving BEFORE_SRC (e.g. `git archive COMMIT src | tar
-x -C DIR`, then DIR/src) and one serving this checkout, on the same database; status-poll
runs (bench/examday/load.py) alternate between them, N rounds of S seconds each. Prints each
run's requests/s and server CPU per request, then the medians: the two are measured minutes
apart at most, so other work on the machine weighs on both alike.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench import vexam_source
from bench.examday.__main__ import DATABASE, _env, _load, _start, _stop, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("workdir")
    parser.add_argument("before_src")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    args.warmup = 2.0
    args.face = ""  # frames without a face, as the load test sends by default
    args.database = DATABASE
    work = Path(args.workdir)
    database_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}"
    log = work / "ab-servers.log"
    sources = {"before": vexam_source(args.before_src, "before_src"), "after": ""}
    servers = {
        name: _start("vexam", 1, _env(database_url, work / "data", src), log)
        for name, src in sources.items()
    }
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    try:
        for round_ in range(args.rounds):
            for name, started in servers.items():
                urls = [url for url, _ in started]
                pids = [process.pid for _, process in started]
                tag = f"ab-{name}-{round_}"
                result = _load("status", urls, pids, work, args, work / "take.mp4", tag, {})
                s = summary(result)
                figures[name].append(s)
                print(f"{name}: {s['rps']:.0f} req/s, {s['cpu_ms']:.2f} server CPU ms/req")
    finally:
        for started in servers.values():
            _stop(started)
    for name, runs in figures.items():
        cpu = statistics.median(r["cpu_ms"] for r in runs)
        rps = statistics.median(r["rps"] for r in runs)
        print(f"median {name}: {rps:.0f} req/s, {cpu:.2f} server CPU ms/req")


if __name__ == "__main__":
    main()
