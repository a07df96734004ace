"""The libwebrtc side of the network benchmark: the official LiveKit Python SDK publishing
StreamIt's synthetic pattern, so the same viewer reads the same frame codes from it as from
`streamit-studio publish`.

The frames come on stdin as packed I420 (the test writes them with the Rust pattern
generator, which stamps frame n with capture time n * 33,333 us); this script captures frame
n when its time is due, at 30 fps, and publishes it as one H.264 layer (the SDK's defaults
otherwise) with Opus carrying a 440 Hz tone at -20 dBFS, the audio `publish` sends by default
(silence would cost libwebrtc nothing on a narrow uplink while ours paid for a tone). Once
both tracks are published it prints `published`; at the end, one JSON line: `epochUnixUs`,
the wall clock of capture time zero (for glass-to-glass), frames captured and late, process
CPU seconds.

Usage: pattern_publisher.py URL TOKEN SECONDS WIDTH HEIGHT  < frames
"""
import argparse
import asyncio
import json
import resource
import sys
import time

from livekit import rtc

from py_publisher import audio_frames

FPS = 30


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("token")
    ap.add_argument("seconds", type=float)
    ap.add_argument("width", type=int)
    ap.add_argument("height", type=int)
    args = ap.parse_args()
    w, h = args.width, args.height
    size = w * h * 3 // 2
    stdin = sys.stdin.buffer

    room = rtc.Room()
    await room.connect(args.url, args.token)
    src = rtc.VideoSource(w, h)
    track = rtc.LocalVideoTrack.create_video_track("camera", src)
    opts = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA, video_codec=rtc.VideoCodec.H264, simulcast=False
    )
    await room.local_participant.publish_track(track, opts)
    asrc = rtc.AudioSource(48000, 1)
    atrack = rtc.LocalAudioTrack.create_audio_track("mic", asrc)
    await room.local_participant.publish_track(
        atrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    tone = audio_frames(tone=True)
    print("published", flush=True)

    start = time.monotonic()
    epoch_us = time.time_ns() // 1000
    n = a = late = 0
    loop = asyncio.get_running_loop()
    while time.monotonic() - start < args.seconds:
        el = time.monotonic() - start
        while a * 0.02 <= el:
            await asrc.capture_frame(tone[a % len(tone)])
            a += 1
        if n / FPS <= el:
            data = await loop.run_in_executor(None, stdin.read, size)
            if len(data) < size:
                break
            if el - n / FPS > 1.0 / FPS:
                late += 1
            src.capture_frame(
                rtc.VideoFrame(w, h, rtc.VideoBufferType.I420, data),
                timestamp_us=n * 1_000_000 // FPS,
            )
            n += 1
        await asyncio.sleep(0.002)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    await room.disconnect()
    print(json.dumps({
        "epochUnixUs": epoch_us,
        "framesCaptured": n,
        "framesLate": late,
        "cpuSeconds": round(ru.ru_utime + ru.ru_stime, 2),
    }), flush=True)


asyncio.run(main())
