"""Interoperability with the official tus client from npm: `tus-js-client` run under Node
(tests/uploads/node, installed by `npm ci` in `.ci/run`) uploads a recording to a live
server, bound to a real submission with the candidate's auth headers and a sha256
Upload-Checksum on every PATCH, aborted after the first chunks and resumed by a new client
that knows only the upload's URL. Skipped when Node or the node_modules are missing, unless
VEXAM_REQUIRE_NODE=1 (CI), where that is a failure."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.uploads.conftest import make_video, submitted_with
from tests.uploads.test_tus_live import _head, _state, extend_upload_period, live  # noqa: F401
from vexam.exams import uploads

NODE_DIR = Path(__file__).parent / "node"
CHUNK = 4096
SCRIPT_TIMEOUT_S = 120


def _node() -> str:
    """The node binary, with tus-js-client installed; skip (or fail in CI) otherwise."""
    node = shutil.which("node")
    missing = ""
    if node is None:
        missing = "node is not on PATH"
    elif not (NODE_DIR / "node_modules" / "tus-js-client" / "package.json").is_file():
        missing = f"tus-js-client is not installed: run `npm ci` in {NODE_DIR}"
    if missing:
        if os.environ.get("VEXAM_REQUIRE_NODE") == "1":
            pytest.fail(f"VEXAM_REQUIRE_NODE=1 but {missing}")
        pytest.skip(missing)
    assert node is not None
    return node


async def test_tus_js_client_uploads_resumes_and_is_verified(
    app,
    client,
    inbox,
    new_phone,
    world,
    live,  # noqa: F811
    tmp_path,
) -> None:
    """tus-js-client 4 (npm) creates the upload of a real submission, PATCHes 4 KiB chunks
    with sha256 checksums, is aborted after 8 KiB, and a new Upload resumes from the URL at
    the offset HEAD reports; the file is byte-exact and the verification job accepts it."""
    node = _node()
    # A real video of several chunks, so that the abort and the resume mean something.
    data = make_video(tmp_path / "long.mp4", "mp4", "libx264", frames=24 * 20)
    assert len(data) > 4 * CHUNK
    sub = await submitted_with(app, client, inbox, new_phone, world, data)
    await extend_upload_period(app, sub)
    source = tmp_path / "take1.mp4"
    source.write_bytes(data)
    abort_after = 2 * CHUNK

    env = {
        **os.environ,
        "VEXAM_UPLOAD_HEADERS": json.dumps(sub.who),
        "VEXAM_UPLOAD_METADATA": json.dumps(
            {"submission_id": str(sub.submission_id), "filename": "take1.mp4"}
        ),
    }
    done = subprocess.run(  # noqa: ASYNC221 — the live server is another process
        [
            node,
            str(NODE_DIR / "upload.mjs"),
            f"{live.url}/api/v1/uploads",
            str(source),
            str(CHUNK),
            str(abort_after),
        ],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print("tus-js-client:", {k: v for k, v in result.items() if k != "statuses"})

    assert result["url"] == result["finalUrl"]  # resumed, not created again
    assert result["statuses"].count("POST 201") == 1
    assert abort_after <= result["resumedFrom"] < len(data)
    assert result["resumedFrom"] % CHUNK == 0
    assert result["checksummed"] == result["patches"] >= len(data) // CHUNK
    assert all(s.split()[1] in {"201", "200", "204"} for s in result["statuses"]), result

    location = result["url"].removeprefix(live.url)
    assert _head(live, sub, location).headers["upload-offset"] == str(len(data))
    path = uploads.path_of_id(live.settings, location.rsplit("/", 1)[1])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert await app.state.queue.drain() == 1
    assert await _state(app, sub) == "verified"
