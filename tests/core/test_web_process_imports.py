"""A web process loads no library that only workers or rare requests need.

Each web process holds what it imports for its whole life, and a host runs several: numpy
(through the media audit) and openpyxl (through the results export) added about 18 MiB to
every one of them. The face check and the OCR load numpy when they first run, in the
processes that serve them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("numpy", "openpyxl", "PIL", "av", "dlib")

_PROBE = """
import json, sys
from vexam.main import create_app
create_app()
print(json.dumps(sorted(name for name in sys.argv[1:] if name in sys.modules)))
"""


def test_building_the_web_app_loads_no_worker_or_export_library(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VEXAM_")}
    env.update(VEXAM_ENV="test", VEXAM_DATA_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *HEAVY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
