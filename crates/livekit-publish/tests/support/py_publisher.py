"""Anchor for the benchmark: the official LiveKit Python SDK (libwebrtc inside)
publishing a synthetic 720p30 picture (30 precomputed moving-bar frames, like
the Rust benchmark) as H.264 plus silent Opus. Prints one JSON line:
process CPU seconds and peak RSS (this process; the SDK's native core runs in it).

Usage: py_publisher.py URL TOKEN SECONDS
"""
import asyncio
import json
import resource
import sys
import time

from livekit import rtc

W, H = 1280, 720


def frames():
    out = []
    for n in range(30):
        shift = (n * 12) % W
        row = bytes(((((x + shift) % W) * 8 // W) * 30 + 16) for x in range(W))
        y = row * H
        uv = bytes([128]) * ((W // 2) * (H // 2))
        out.append(y + uv + uv)
    return out


async def main():
    url, token, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    pics = frames()
    room = rtc.Room()
    t0 = time.monotonic()
    await room.connect(url, token)
    src = rtc.VideoSource(W, H)
    track = rtc.LocalVideoTrack.create_video_track("camera", src)
    opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, video_codec=rtc.VideoCodec.H264)
    await room.local_participant.publish_track(track, opts)
    asrc = rtc.AudioSource(48000, 1)
    atrack = rtc.LocalAudioTrack.create_audio_track("mic", asrc)
    await room.local_participant.publish_track(atrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    silence = rtc.AudioFrame(bytes(960 * 2), 48000, 1, 960)
    start = time.monotonic()
    n = 0
    a = 0
    while time.monotonic() - start < seconds:
        el = time.monotonic() - start
        while a * 0.02 <= el:
            await asrc.capture_frame(silence)
            a += 1
        if n / 30.0 <= el:
            f = rtc.VideoFrame(W, H, rtc.VideoBufferType.I420, pics[n % 30])
            src.capture_frame(f, timestamp_us=int(n * 33333))
            n += 1
        await asyncio.sleep(0.003)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    await room.disconnect()
    print(json.dumps({
        "frames": n,
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
        "connect_s": round(start - t0, 3),
    }), flush=True)


asyncio.run(main())
