"""Run both identity benchmarks: `python -m bench.identity [--smoke]`.

Faces: verification CPU time against its goal and same/different-person distances.
OCR: per-degradation accuracy, gate refusals and CPU per card against their goals.
"""

from __future__ import annotations

import subprocess
import sys


def main() -> int:
    """Run `bench.identity.faces` then `bench.identity.ocr` with the same arguments."""
    status = 0
    for module in ("bench.identity.faces", "bench.identity.ocr"):
        print(f"\n### {module}", flush=True)
        status |= subprocess.call([sys.executable, "-m", module, *sys.argv[1:]])
    return status


if __name__ == "__main__":
    sys.exit(main())
