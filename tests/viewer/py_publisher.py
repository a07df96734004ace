"""Anchor for the benchmark: the official LiveKit Python SDK (libwebrtc inside)
publishing video plus silent Opus. Prints one JSON line: frames captured, process CPU
seconds and peak RSS (this process; the SDK's native core runs in it).

Video: by default a synthetic 720p30 picture (30 precomputed moving-bar frames, like the
Rust benchmark) as H.264, one layer; `--y4m FILE` reads a YUV4MPEG2 4:2:0 file instead
(looped, at its size, paced at 30 fps), `--codec vp8|h264` and `--simulcast` choose the
codec and LiveKit's default simulcast ladder (the SDK's defaults, bitrates included);
`--max-bitrate BPS` sets the top layer's bitrate (the SDK scales the lower layers from it),
so a comparison of picture quality is at the same bitrate.

`--screen` also shares the X screen of $DISPLAY as a second track (source screen share, one
layer at its captured size, `--screen-fps`, `--screen-bitrate`, marked as a screencast so
libwebrtc encodes it as screen content), captured with `mss` (XShmGetImage, as the studio
captures) and handed to the SDK as BGRA, which converts it to I420 (libyuv) as a
browser's capturer would. `--tone` sends a 440 Hz tone instead of silence (what
`streamit-studio publish` sends by default).

Usage: py_publisher.py URL TOKEN SECONDS [--y4m FILE] [--codec vp8|h264] [--simulcast]
       [--max-bitrate BPS] [--screen [--screen-fps N] [--screen-bitrate BPS]] [--tone]
"""
import argparse
import asyncio
import json
import math
import resource
import struct
import time

from livekit import rtc

W, H = 1280, 720


def bars():
    out = []
    for n in range(30):
        shift = (n * 12) % W
        row = bytes(((((x + shift) % W) * 8 // W) * 30 + 16) for x in range(W))
        y = row * H
        uv = bytes([128]) * ((W // 2) * (H // 2))
        out.append(y + uv + uv)
    return W, H, (lambda n: out[n % 30])


def y4m(path):
    """(width, height, frame(n)) reading the file's frames in a loop."""
    f = open(path, "rb")
    header = f.readline().decode().split()
    if header[0] != "YUV4MPEG2":
        raise SystemExit(f"{path}: not a YUV4MPEG2 file")
    w = int(next(t[1:] for t in header if t.startswith("W")))
    h = int(next(t[1:] for t in header if t.startswith("H")))
    start = f.tell()
    size = w * h * 3 // 2

    def frame(_n):
        line = f.readline()
        if not line:
            f.seek(start)
            line = f.readline()
        if not line.startswith(b"FRAME"):
            raise SystemExit(f"{path}: expected FRAME")
        return f.read(size)

    return w, h, frame


def audio_frames(tone):
    """20 ms frames that repeat: silence, or a 440 Hz tone at -20 dBFS (a whole number of
    cycles in 100 ms, so five frames loop seamlessly)."""
    if not tone:
        return [rtc.AudioFrame(bytes(960 * 2), 48000, 1, 960)]
    return [
        rtc.AudioFrame(
            struct.pack(
                "<960h",
                *(int(3277 * math.sin(2 * math.pi * 440 * (k * 960 + i) / 48000)) for i in range(960)),
            ),
            48000,
            1,
            960,
        )
        for k in range(5)
    ]


async def share_screen(room, args, codec):
    """Publishes the X screen as a screen-share track in `codec`; returns
    capture(timestamp_us)."""
    import mss

    grabber = mss.mss()
    mon = grabber.monitors[0]
    sw, sh = mon["width"], mon["height"]
    # As a screen: the encoder's screen-content mode, as `publish --screen` uses.
    ssrc = rtc.VideoSource(sw, sh, is_screencast=True)
    strack = rtc.LocalVideoTrack.create_video_track("screen", ssrc)
    sopts = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_SCREENSHARE, video_codec=codec, simulcast=False
    )
    if args.screen_bitrate:
        sopts.video_encoding.CopyFrom(
            rtc.VideoEncoding(max_bitrate=args.screen_bitrate, max_framerate=args.screen_fps)
        )
    await room.local_participant.publish_track(strack, sopts)

    def capture(ts_us):
        shot = grabber.grab(mon)
        ssrc.capture_frame(
            rtc.VideoFrame(sw, sh, rtc.VideoBufferType.BGRA, shot.raw), timestamp_us=ts_us
        )

    capture.size = f"{sw}x{sh}"
    return capture


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("token")
    ap.add_argument("seconds", type=float)
    ap.add_argument("--y4m")
    ap.add_argument("--codec", choices=["h264", "vp8"], default="h264")
    ap.add_argument("--simulcast", action="store_true")
    ap.add_argument("--max-bitrate", type=int, help="top layer's bitrate (bps) instead of the SDK's default")
    ap.add_argument("--screen", action="store_true", help="also share the X screen of $DISPLAY")
    ap.add_argument("--screen-fps", type=int, default=15)
    ap.add_argument("--screen-bitrate", type=int, help="the share's bitrate (bps)")
    ap.add_argument("--tone", action="store_true", help="a 440 Hz tone instead of silence")
    args = ap.parse_args()
    w, h, frame = y4m(args.y4m) if args.y4m else bars()
    room = rtc.Room()
    t0 = time.monotonic()
    await room.connect(args.url, args.token)
    src = rtc.VideoSource(w, h)
    track = rtc.LocalVideoTrack.create_video_track("camera", src)
    codec = rtc.VideoCodec.VP8 if args.codec == "vp8" else rtc.VideoCodec.H264
    opts = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_CAMERA, video_codec=codec, simulcast=args.simulcast
    )
    if args.max_bitrate:
        opts.video_encoding.CopyFrom(rtc.VideoEncoding(max_bitrate=args.max_bitrate, max_framerate=30))
    await room.local_participant.publish_track(track, opts)
    asrc = rtc.AudioSource(48000, 1)
    atrack = rtc.LocalAudioTrack.create_audio_track("mic", asrc)
    await room.local_participant.publish_track(
        atrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    audio = audio_frames(args.tone)
    screen = await share_screen(room, args, codec) if args.screen else None
    start = time.monotonic()
    n = 0
    a = 0
    s = 0
    while time.monotonic() - start < args.seconds:
        el = time.monotonic() - start
        while a * 0.02 <= el:
            await asrc.capture_frame(audio[a % len(audio)])
            a += 1
        if n / 30.0 <= el:
            f = rtc.VideoFrame(w, h, rtc.VideoBufferType.I420, frame(n))
            src.capture_frame(f, timestamp_us=int(n * 33333))
            n += 1
        if screen and s / args.screen_fps <= el:
            screen(int(s * 1_000_000 / args.screen_fps))
            s += 1
        await asyncio.sleep(0.003)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    await room.disconnect()
    print(json.dumps({
        "frames": n,
        "screenFrames": s,
        "screenSize": screen.size if screen else None,
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
        "connect_s": round(start - t0, 3),
    }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
