"""A playback copy of a recording every browser plays: H.264 video and AAC audio in MP4.

Browsers record WebM (VP8/VP9 + Opus) or MP4 (H.264 + Opus or AAC). Every browser plays
H.264 + AAC in MP4; older Safari plays no WebM and no Opus in MP4. So a copy is made only
when the original is not already MP4 with H.264 and AAC (or no audio). H.264 video is copied
packet by packet (cheap: no decoding), anything else is re-encoded with libx264 on one
thread; Opus audio becomes AAC (cheap). Pure functions on local files, run in a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# What `probe_video` reports for MP4/MOV/3GP files (FFmpeg's demuxer name).
_MP4_CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2", "mp4", "mov"}
_PLAYABLE_AUDIO = {None, "aac", "mp3"}
X264_OPTIONS = {"preset": "veryfast", "crf": "26", "threads": "1"}


def needs_transcode(probe: dict[str, Any]) -> bool:
    """Whether a verified recording (its probe) needs an H.264/AAC MP4 copy to play in every
    browser."""
    return not (
        probe.get("container") in _MP4_CONTAINERS
        and probe.get("video_codec") == "h264"
        and probe.get("audio_codec") in _PLAYABLE_AUDIO
    )


def transcode(source: Path, dest: Path) -> dict[str, Any]:
    """Write `dest` (MP4, H.264 + AAC, moov first for streaming) from `source`.

    Returns what was done: {"video": "copy"|"h264", "audio": "copy"|"aac"|None}. Raises
    PyAV's errors for files it cannot decode.
    """
    import av

    with (
        av.open(str(source)) as given,
        av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        vin = given.streams.video[0]
        ain = given.streams.audio[0] if given.streams.audio else None
        copy_video = vin.codec_context.name == "h264"
        if copy_video:
            vout: Any = out.add_stream_from_template(vin)
        else:
            vin.thread_type = "SLICE"
            vin.codec_context.thread_count = 1
            rate = vin.average_rate or vin.guessed_rate or 30
            vout = out.add_stream("libx264", rate=rate, options=dict(X264_OPTIONS))
            vout.width = vin.codec_context.width // 2 * 2
            vout.height = vin.codec_context.height // 2 * 2
            vout.pix_fmt = "yuv420p"
            if vin.time_base is not None:
                vout.codec_context.time_base = vin.time_base
        aout: Any = None
        copy_audio = False
        if ain is not None:
            copy_audio = ain.codec_context.name == "aac"
            if copy_audio:
                aout = out.add_stream_from_template(ain)
            else:
                aout = out.add_stream("aac", rate=ain.codec_context.sample_rate or 48000)
                aout.bit_rate = 128_000
        streams = [vin] if ain is None else [vin, ain]
        for packet in given.demux(*streams):
            if packet.stream is vin:
                if copy_video:
                    if packet.dts is not None:
                        packet.stream = vout
                        out.mux(packet)
                    continue
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        # Let the encoder choose key frames, not the source's frame types.
                        frame.pict_type = av.video.frame.PictureType.NONE
                        out.mux(vout.encode(frame))
            elif aout is not None:
                if copy_audio:
                    if packet.dts is not None:
                        packet.stream = aout
                        out.mux(packet)
                    continue
                for audio_frame in packet.decode():
                    if isinstance(audio_frame, av.AudioFrame):
                        audio_frame.pts = None  # the encoder's FIFO re-times the samples
                        out.mux(aout.encode(audio_frame))
        if not copy_video:
            out.mux(vout.encode(None))
        if aout is not None and not copy_audio:
            out.mux(aout.encode(None))
    return {
        "video": "copy" if copy_video else "h264",
        "audio": None if ain is None else ("copy" if copy_audio else "aac"),
    }
