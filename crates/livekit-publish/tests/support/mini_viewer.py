"""A minimal independent viewer (official LiveKit Python SDK) for this crate's tests.

Usage: mini_viewer.py URL TOKEN SECONDS [--send-chat TEXT] [--quality low|medium|high]
Prints one JSON report line on stdout at the end.
"""
import argparse
import asyncio
import json
import sys
import time

from livekit import rtc


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("token")
    ap.add_argument("seconds", type=float)
    ap.add_argument("--send-chat", default=None)
    ap.add_argument("--quality", default=None)
    a = ap.parse_args()

    t0 = time.monotonic()
    rep = {
        "video_frames": 0,
        "resolutions": {},
        "audio_frames": 0,
        "first_frame_s": None,
        "chat": [],
        "participants": [],
        "mute_events": [],
        "tracks": [],
        "errors": [],
        "frames_per_s": {},
    }
    room = rtc.Room()
    tasks = []

    async def video(track):
        stream = rtc.VideoStream(track)
        async for ev in stream:
            f = ev.frame
            if rep["first_frame_s"] is None:
                rep["first_frame_s"] = round(time.monotonic() - t0, 3)
            rep["video_frames"] += 1
            sec = str(int(time.monotonic() - t0))
            rep["frames_per_s"][sec] = rep["frames_per_s"].get(sec, 0) + 1
            k = f"{f.width}x{f.height}"
            rep["resolutions"][k] = rep["resolutions"].get(k, 0) + 1

    async def audio(track):
        stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1)
        async for _ in stream:
            rep["audio_frames"] += 1

    @room.on("track_subscribed")
    def on_sub(track, pub, participant):
        rep["tracks"].append({"kind": int(track.kind), "sid": pub.sid, "from": participant.identity})
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            if a.quality:
                q = {"low": rtc.VideoQuality.VIDEO_QUALITY_LOW, "medium": rtc.VideoQuality.VIDEO_QUALITY_MEDIUM, "high": rtc.VideoQuality.VIDEO_QUALITY_HIGH}[a.quality]
                try:
                    pub.set_video_quality(q)
                except Exception as e:  # noqa
                    rep["errors"].append(f"set_video_quality: {e}")
            tasks.append(asyncio.ensure_future(video(track)))
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            tasks.append(asyncio.ensure_future(audio(track)))

    @room.on("track_muted")
    def on_muted(participant, pub):
        rep["mute_events"].append({"muted": True, "sid": pub.sid, "t": round(time.monotonic() - t0, 3)})

    @room.on("track_unmuted")
    def on_unmuted(participant, pub):
        rep["mute_events"].append({"muted": False, "sid": pub.sid, "t": round(time.monotonic() - t0, 3)})

    @room.on("participant_connected")
    def on_pc(p):
        rep["participants"].append(p.identity)

    async def read_chat(reader, identity):
        text = await reader.read_all()
        rep["chat"].append({"from": identity, "text": text})

    def on_text(reader, identity):
        tasks.append(asyncio.ensure_future(read_chat(reader, identity)))

    room.register_text_stream_handler("lk.chat", on_text)
    await room.connect(a.url, a.token, rtc.RoomOptions(auto_subscribe=True))
    for p in room.remote_participants.values():
        rep["participants"].append(p.identity)
    print("connected", file=sys.stderr, flush=True)
    if a.send_chat:
        await asyncio.sleep(1.0)
        await room.local_participant.send_text(a.send_chat, topic="lk.chat")
    await asyncio.sleep(max(0.0, a.seconds - (time.monotonic() - t0)))
    await room.disconnect()
    for t in tasks:
        t.cancel()
    print(json.dumps(rep), flush=True)


asyncio.run(main())
