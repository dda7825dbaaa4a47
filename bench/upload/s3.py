"""Uploads on the S3 store (issue 6, S3-compatible store): what small PATCHes cost in S3
traffic and time, against the physical limit of writing each PATCH's bytes to the same S3
server once.

    python -m bench.upload.s3 [--mib 20] [--patch-kib 256] [--uploads 2]

Starts an S3 API server (moto's `moto_server`, a process of its own), prepares one submission per
upload (as `bench.upload` does, SQLite), and sends each upload through vexam's tus endpoint
(in process, over ASGI) in PATCHes of `--patch-kib`, one upload after the other; then, for
the limit, PUTs the same PATCH-sized pieces to the same server with boto3 (what any store
must do at least to make every PATCH durable in S3 before answering it). Prints MB/s of
both, their ratio, and the bytes vexam's store sent to and read from S3 per byte uploaded
(1.0 sent, 0 read would be no overhead; a part is written once and completion reads the
object back once to hash it).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx

from bench.upload.__main__ import _b64, _free_port
from bench.upload.vexam_setup import prepare, settings_for
from vexam.core.s3 import S3BlobStore
from vexam.exams.payments import SandboxProvider
from vexam.identity.engines import IdentityEngines
from vexam.identity.registers import FormatOnlyRegister
from vexam.main import create_app

TUS = {"Tus-Resumable": "1.0.0"}
REGION = "us-east-1"


class Traffic:
    """Bytes a boto3 client sent in request bodies and read in GetObject answers."""

    def __init__(self, client: Any) -> None:
        self.sent = 0
        self.read = 0
        client.meta.events.register("before-send.s3", self._before_send)
        client.meta.events.register("after-call.s3.GetObject", self._after_get)

    def _before_send(self, request: Any, **_: Any) -> None:
        body = request.body
        if isinstance(body, bytes | bytearray):
            self.sent += len(body)
        elif body is not None and hasattr(body, "seek"):
            self.sent += body.seek(0, os.SEEK_END)
            body.seek(0)

    def _after_get(self, parsed: dict[str, Any], **_: Any) -> None:
        self.read += int(parsed.get("ContentLength", 0))


async def _vexam(settings: Any, slots: list[Any], files: list[bytes], piece: int) -> dict[str, Any]:
    resources: dict[str, object] = {
        "id_register": FormatOnlyRegister(),
        "identity_engines": IdentityEngines(),
        "payment_provider": SandboxProvider(settings.secret_key),
    }
    app: Any = create_app(settings, resources=resources)
    async with app.router.lifespan_context(app):
        store = app.state.store  # set up by the lifespan
        assert isinstance(store, S3BlobStore)
        traffic = Traffic(store.client)
        transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=120
        ) as http:
            began = time.perf_counter()
            for slot, data in zip(slots, files, strict=True):
                created = await http.post(
                    "/api/v1/uploads",
                    headers={
                        **slot.headers,
                        **TUS,
                        "Upload-Length": str(len(data)),
                        "Upload-Metadata": f"submission_id {_b64(str(slot.submission_id))}",
                    },
                )
                if created.status_code != 201:
                    raise RuntimeError(f"creation: {created.status_code} {created.text[:300]}")
                location = created.headers["location"]
                for offset in range(0, len(data), piece):
                    sent = await http.patch(
                        location,
                        content=data[offset : offset + piece],
                        headers={
                            **slot.headers,
                            **TUS,
                            "Upload-Offset": str(offset),
                            "Content-Type": "application/offset+octet-stream",
                        },
                    )
                    if sent.status_code != 204:
                        raise RuntimeError(f"PATCH at {offset}: {sent.status_code} {sent.text}")
            seconds = time.perf_counter() - began
            moved = {"sent": traffic.sent, "read": traffic.read}
            key = store.object_key(f"uploads/{location.rsplit('/', 1)[1]}")
            body = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
            if hashlib.sha256(body).digest() != hashlib.sha256(files[-1]).digest():
                raise RuntimeError("the last upload's object differs from the file")
    return {"seconds": seconds, **moved}


def _raw(client: Any, bucket: str, files: list[bytes], piece: int) -> float:
    began = time.perf_counter()
    for number, data in enumerate(files):
        for offset in range(0, len(data), piece):
            client.put_object(
                Bucket=bucket, Key=f"raw/{number}/{offset}", Body=data[offset : offset + piece]
            )
    return time.perf_counter() - began


def _wait_for(endpoint: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto_server exited with {server.returncode}")
        try:
            if httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("moto_server did not answer within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mib", type=int, default=20, help="size of each upload")
    parser.add_argument("--patch-kib", type=int, default=256)
    parser.add_argument("--uploads", type=int, default=2)
    args = parser.parse_args()
    size, piece = args.mib << 20, args.patch_kib << 10
    files = [os.urandom(size) for _ in range(args.uploads)]
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_for(endpoint, server)
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        client.create_bucket(Bucket=bucket)
        with tempfile.TemporaryDirectory(prefix="vexam-bench-s3-") as folder:
            work = Path(folder)
            database = f"sqlite+aiosqlite:///{work / 'vexam.db'}"
            digests = [(hashlib.sha256(f).hexdigest(), len(f)) for f in files]
            slots = asyncio.run(prepare(work, database, digests))
            settings = settings_for(work, database).model_copy(
                update={
                    "storage_url": f"s3://{bucket}/vx",
                    "s3_endpoint_url": endpoint,
                    "s3_region": REGION,
                    "s3_access_key": "bench",
                    "s3_secret_key": "bench",
                }
            )
            measured = asyncio.run(_vexam(settings, slots, files, piece))
        raw = _raw(client, bucket, files, piece)
    finally:
        server.terminate()
        server.wait(timeout=30)
    total = size * args.uploads
    vexam_mb_s = total / measured["seconds"] / 1e6
    raw_mb_s = total / raw / 1e6
    print(
        f"S3 store, {args.uploads} × {args.mib} MiB in {args.patch_kib} KiB PATCHes "
        f"(moto_server on loopback, one upload at a time)"
    )
    print("| | MB/s | × raw PUTs | S3 bytes sent per byte | S3 bytes read per byte |")
    print("| --- | --- | --- | --- | --- |")
    print(
        f"| vexam | {vexam_mb_s:.1f} | {vexam_mb_s / raw_mb_s:.2f} | "
        f"{measured['sent'] / total:.2f} | {measured['read'] / total:.2f} |"
    )
    print(f"| raw PUT of each PATCH's bytes | {raw_mb_s:.1f} | 1.00 | 1.00 | 0.00 |")


if __name__ == "__main__":
    main()
