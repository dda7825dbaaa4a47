"""Face audit benchmark (SPEC §6): `python -m bench.media [--smoke]`.

Generates (PyAV, libx264) a 1280x720 30 fps video from the shared face photos: the
candidate, the same person in another photo, an empty room, another person, and the
candidate small in the frame, in scenes of known times, with a key frame every second.
Then, with the whole process pinned to ONE core (`sched_setaffinity`, as `taskset -c N`
would) and the decoder on one thread, runs the media jobs' face audit
(`media_audit.audit_video`, the worker's settings) twice: decoding every frame (the worst
case: browser WebM has few key frames) and key frames only (as for phone camera files). It
prints wall and CPU seconds against the video's duration. Goal: CPU ≤ 0.2 × duration (CPU
time, because other work on a shared machine stretches wall time, not the work done). Also
times the H.264/AAC playback copy of a VP8/WebM recording (the part `media_transcode`
re-encodes) and checks the flags land on the scenes. The full run uses a 3-minute video;
`--smoke` uses 20 seconds. Exit status 1 when a goal or a flag check is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.media.conftest import SHARED_FACES, embedding_of, face_video

from vexam.config import Settings
from vexam.exams import media_audit, media_transcode
from vexam.identity.engines import IdentityEngines
from vexam.identity.faces import MATCH_THRESHOLD

GOAL = 0.2  # audit CPU seconds per second of video, one core
FULL = [("obama_1.jpg", 60.0), ("obama_4.jpg", 40.0), (None, 10.0), ("biden_2.jpg", 20.0)]
FULL += [("obama_3.jpg", 50.0)]
SMOKE = [("obama_1.jpg", 8.0), (None, 3.0), ("biden_2.jpg", 4.0), ("obama_4.jpg", 5.0)]
EXPECTED = {None: "no_face", "biden_2.jpg": "other_person"}
SIZE = (1280, 720)
FPS = 30


def pin_one_core() -> str:
    """Pin this process (every thread) to one core; returns which."""
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"core {core} (sched_setaffinity, like taskset -c {core})"


def check_flags(flags: list[dict[str, object]], scenes: list[tuple[str | None, float]]) -> bool:
    """Every flag-worthy scene is covered by a flag of its kind starting within 2 s of it, and
    no flag falls on the candidate's own scenes (allowing 1 s at their edges)."""
    ok = True
    start = 0.0
    for photo, seconds in scenes:
        end = start + seconds
        kind = EXPECTED.get(photo)
        found = [
            f
            for f in flags
            if float(str(f["from_s"])) < end - 1 and float(str(f["to_s"])) > start + 1
        ]
        if kind is None and found:
            print(f"MISS: flags {found} on the candidate's scene {start:.0f}-{end:.0f} s")
            ok = False
        if kind is not None and not any(
            f["kind"] == kind and abs(float(str(f["from_s"])) - start) <= 2 for f in found
        ):
            print(f"MISS: no {kind} flag at {start:.0f}-{end:.0f} s (found {found})")
            ok = False
        start = end
    return ok


def main() -> int:
    """Generate the video, pin to one core, audit, transcode, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="20 s video instead of 3 minutes")
    args = parser.parse_args()
    if not (SHARED_FACES / "obama_1.jpg").exists():
        print(f"skipped: the shared face photos are absent ({SHARED_FACES})")
        return 0
    scenes = SMOKE if args.smoke else FULL
    duration = sum(seconds for _, seconds in scenes)
    settings = Settings()
    engines = IdentityEngines()
    with tempfile.TemporaryDirectory(prefix="vexam-bench-media-") as folder:
        video = Path(folder) / "exam.mp4"
        made = time.perf_counter()
        face_video(video, scenes, size=SIZE, fps=FPS, keyframe_every=FPS)
        print(
            f"video: {duration:.0f} s, {SIZE[0]}x{SIZE[1]} {FPS} fps H.264, "
            f"{video.stat().st_size / 1e6:.1f} MB, made in {time.perf_counter() - made:.1f} s"
        )
        where = pin_one_core()
        reference = embedding_of(engines, "obama_2.jpg")
        engine = engines.faces()
        runs = {}
        for label, only_keys in (("every frame decoded", False), ("key frames only", None)):
            wall, cpu = time.perf_counter(), time.process_time()
            result = media_audit.audit_video(
                video,
                engine,
                reference,
                threshold=MATCH_THRESHOLD,
                every_s=settings.media_sample_seconds,
                embed_every_s=settings.media_embed_seconds,
                keyframes_only=only_keys,
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            runs[label] = (result, wall, cpu, check_flags(result.flags, scenes))

        webm = Path(folder) / "exam.webm"
        clip_s = 4.0 if args.smoke else 10.0
        clip = [("obama_1.jpg", clip_s)]
        face_video(webm, clip, size=SIZE, fps=FPS, fmt="webm", codec="libvpx")
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        media_transcode.transcode(webm, Path(folder) / "copy.mp4")
        t_wall, t_cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu

    print(f"pinned to {where}; decoder on one thread")
    print()
    print("| measure | seconds | × video duration | goal |")
    print("| --- | ---: | ---: | --- |")
    ok = True
    for label, (_result, wall, cpu, _) in runs.items():
        ratio = cpu / duration
        ok = ok and ratio <= GOAL
        print(f"| face audit, {label}, CPU | {cpu:.1f} | {ratio:.3f} | ≤ {GOAL} |")
        print(f"| face audit, {label}, wall | {wall:.1f} | {wall / duration:.3f} | (shared) |")
    print(
        f"| VP8/WebM → H.264 MP4 copy, CPU ({clip_s:.0f} s clip) | {t_cpu:.1f} | "
        f"{t_cpu / clip_s:.3f} | — |"
    )
    print(f"| VP8/WebM → H.264 MP4 copy, wall | {t_wall:.1f} | {t_wall / clip_s:.3f} | — |")
    print()
    flags_ok = True
    for label, (result, _, _, good) in runs.items():
        flags_ok = flags_ok and good
        print(
            f"{label}: {result.samples} samples ({result.decoded}), {result.compared} faces "
            f"compared, flags {[(f['kind'], f['from_s'], f['to_s']) for f in result.flags]}"
        )
    print()
    print(f"{'PASS' if ok else 'MISS'}: face audit CPU ratio <= {GOAL} both ways")
    print(f"{'PASS' if flags_ok else 'MISS'}: flags on the empty room and the other person only")
    return 0 if ok and flags_ok else 1


if __name__ == "__main__":
    sys.exit(main())
