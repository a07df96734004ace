#!/usr/bin/env python3
"""An independent LiveKit viewer for StreamIt's tests, built on the official Python SDK.

It joins a room with a token, subscribes to whatever is published, decodes video and audio,
optionally sends chat or tries to publish, and prints ONE JSON report on stdout when it ends.
Everything else goes to stderr. It is a measuring instrument: it never decides pass/fail.

Stops after --duration seconds, or earlier once every --until-* condition holds.

With --commands it is driven line by line: it reads JSON commands on stdin
({"cmd": "send", "text": "…"} sends chat on lk.chat, {"cmd": "quit"} leaves; end of input
leaves too) and prints JSON events on stdout as they happen, one per line, each with an
"event" key: joined, sent (whether send_text returned or raised), chat (received),
room_metadata, disconnected. The report is still the last line.
"""

import argparse
import asyncio
import faulthandler
import json
import math
import os
import sys
import threading
import time

from livekit import rtc
from google.protobuf.json_format import MessageToDict

QUALITIES = {
    "low": rtc.VideoQuality.VIDEO_QUALITY_LOW,
    "medium": rtc.VideoQuality.VIDEO_QUALITY_MEDIUM,
    "high": rtc.VideoQuality.VIDEO_QUALITY_HIGH,
}


def read_pattern_code(y, width, height, stride=None, x0=0, y0=0):
    """Reads StreamIt's synthetic-pattern block code from a luma plane (stride = width).

    Layout (crates/media/src/pattern.rs): block b = width // 40; bit i is the block at
    x = (1 + i % 32)·b, y = (1 + i // 32)·b; mean luma of the block's inner half > 128 → 1;
    bits 0..32 frame number, 32..80 timestamp µs, 80..88 CRC-8/SMBUS of those 10 bytes,
    88..96 sync 0xA5 (all MSB first). Returns (frame_no, timestamp_us) or None.
    With `stride`, `x0`, `y0`: the code of the width×height region at (x0, y0) alone.
    """
    stride = stride or width
    b = width // 40
    if width < 160 or 5 * b > height:
        return None
    lo, hi = b // 4, (3 * b) // 4
    step = max(1, (hi - lo) // 4)  # a 4×4 grid of samples per block is plenty
    bits = []
    for i in range(96):
        bx, by = (1 + i % 32) * b, (1 + i // 32) * b
        total = count = 0
        for yy in range(by + lo, by + hi, step):
            row = (y0 + yy) * stride + x0
            for xx in range(bx + lo, bx + hi, step):
                total += y[row + xx]
                count += 1
        bits.append(1 if count and total / count > 128 else 0)
    data = bytes(int("".join(map(str, bits[k : k + 8])), 2) for k in range(0, 96, 8))
    if data[11] != 0xA5 or crc8(data[:10]) != data[10]:
        return None
    return int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:10], "big")


class PsnrRef:
    """The source a publisher sends, to measure the decoded picture against: a YUV4MPEG2
    4:2:0 file whose frame i carries the pattern code of frame number i (the benchmark
    stamps it), so a decoded frame's code names its source frame even when the publisher
    loops the file. PSNR is over luma below the code's band (rows < 5·width/40), so it
    measures the picture and not the black-and-white blocks."""

    def __init__(self, path, every):
        import numpy as np

        self.np = np
        with open(path, "rb") as f:
            data = f.read()
        end = data.index(b"\n")
        tags = data[:end].decode("ascii", "replace").split()
        self.w = int(next(t[1:] for t in tags if t.startswith("W")))
        self.h = int(next(t[1:] for t in tags if t.startswith("H")))
        frame_len = self.w * self.h * 3 // 2
        self.planes = []
        pos = end + 1
        while pos < len(data):
            start = data.index(b"\n", pos) + 1  # after "FRAME..."
            if start + frame_len > len(data):
                break
            self.planes.append(np.frombuffer(data, np.uint8, self.w * self.h, start).reshape(self.h, self.w))
            pos = start + frame_len
        if not self.planes:
            raise ValueError(f"no frames in {path}")
        self.skip = 5 * (self.w // 40)
        self.every = max(1, every)
        self.seen = 0
        self.db = []
        self.unreadable = 0

    def measure(self, frame):
        """Every `every`-th decoded frame at the source's size: PSNR-Y against its source."""
        if frame.width != self.w or frame.height != self.h:
            return
        self.seen += 1
        if self.seen % self.every:
            return
        np = self.np
        i420 = frame.convert(rtc.VideoBufferType.I420)
        y = np.frombuffer(i420.data, np.uint8, self.w * self.h).reshape(self.h, self.w)
        code = read_pattern_code(memoryview(i420.data).cast("B"), self.w, self.h)
        if code is None:
            self.unreadable += 1
            return
        ref = self.planes[code[0] % len(self.planes)]
        diff = y[self.skip :].astype(np.int32) - ref[self.skip :]
        mse = float(np.mean(diff * diff))
        self.db.append(100.0 if mse == 0 else 10.0 * math.log10(255.0 * 255.0 / mse))

    def to_json(self):
        db = sorted(self.db)
        return {
            "size": f"{self.w}x{self.h}",
            "samples": len(db),
            "unreadable": self.unreadable,
            "mean_db": round(sum(db) / len(db), 3) if db else None,
            "min_db": round(db[0], 3) if db else None,
            "p10_db": round(db[len(db) // 10], 3) if db else None,
        }


def crc8(data):
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


EVENTS = False


def emit(event, **fields):
    """One event line on stdout (only with --commands)."""
    if EVENTS:
        print(json.dumps({"event": event, **fields}), flush=True)


def log(*args):
    print("[viewer]", *args, file=sys.stderr, flush=True)


class Report:
    """What the viewer saw, with times in ms since the viewer started connecting."""

    def __init__(self):
        self.t0 = time.monotonic()
        # The same instant on the wall clock, so a test can place its own events (a cap
        # set, a server killed) on the report's timeline.
        self.started_unix_ms = int(time.time() * 1000)
        self.joined = False
        self.error = None
        self.connect_ms = None
        self.identity = None
        self.video_frames = 0
        self.frames_per_second = {}  # whole seconds since start → frames decoded in that second
        self.resolutions = {}
        self.size_changes = []  # [ms since start, "WxH"] each time the decoded size changes
        self.first_frame_ms = None
        self.last_frame_ms = None
        self.video_tracks = []
        self.video_inbound = []
        self.audio_frames = 0
        self.audio_inbound = []
        self.audio_samples = 0
        self.audio_peak_rms = 0.0
        self.audio_rms_per_second = {}  # whole seconds since start → loudest 10 ms frame (RMS, 0..1)
        self.first_audio_ms = None
        self.chat_received = []
        self.data_received = []
        self.participants_seen = []
        self.participant_events = []
        self.participant_attributes = {}  # identity → its attributes as last seen
        self.mute_events = []
        self.unpublished = []
        self.max_remote_participants = 0
        self.chat_sent = 0
        self.chat_sent_ids = []  # the text stream id of each message sent (what moderation names)
        self.publish = {"attempted": False, "ok": None, "error": None}
        self.disconnect_reason = None
        # The SDK's own reconnects ("reconnecting" / "reconnected"): a full restart makes new
        # peer connections, so counters start again and frames published meanwhile never come.
        self.restarts = []
        # Synthetic-pattern codes read from decoded frames: (frame_no, timestamp_us, recv_unix_us).
        self.pattern_samples = []
        self.pattern_unreadable = 0
        self.psnr = None  # a PsnrRef with --psnr-ref

    def pattern_json(self):
        samples = self.pattern_samples
        numbers = [s[0] for s in samples]
        # A code lower than the one before is disorder. The same code twice is not: when
        # the SFU switches simulcast layers up, the new layer's key frame can carry the
        # capture time of the last frame it forwarded from the old one.
        out_of_order = sum(1 for a, b in zip(numbers, numbers[1:]) if b < a)
        repeated = sum(1 for a, b in zip(numbers, numbers[1:]) if b == a)
        # The span is counted per stretch between the viewer's own restarts: frames published
        # while this viewer was away say nothing about the publisher.
        cuts = [r["unix_us"] for r in self.restarts if r["event"] == "reconnecting"]
        span = 0
        for lo, hi in zip([0] + cuts, cuts + [float("inf")]):
            part = [s[0] for s in samples if lo <= s[2] < hi]
            if part:
                span += max(part) - min(part) + 1 - len(set(part))
        span += len(set(numbers))
        # Gaps between frames on the glass: what a person sees as a stall.
        arrivals = [s[2] for s in samples]
        gaps_ms = [(b - a) / 1000.0 for a, b in zip(arrivals, arrivals[1:])]
        return {
            "read": len(samples),
            "unreadable": self.pattern_unreadable,
            "first_frame_no": numbers[0] if numbers else None,
            "last_frame_no": numbers[-1] if numbers else None,
            "distinct": len(set(numbers)),
            "missing_in_span": span - len(set(numbers)),
            "out_of_order": out_of_order,
            "repeated": repeated,
            "max_gap_ms": round(max(gaps_ms), 1) if gaps_ms else None,
            # Stalls longer than 250 ms (a 30 fps picture standing for 7+ frames).
            "freezes_ms": [round(g, 1) for g in gaps_ms if g > 250.0],
            # Capped so the report stays small; the Rust side computes latency from these.
            "samples": samples[:: max(1, len(samples) // 600)],
        }

    def ms(self):
        return round((time.monotonic() - self.t0) * 1000.0, 1)

    def to_json(self):
        return {
            "joined": self.joined,
            "error": self.error,
            "identity": self.identity,
            "connect_ms": self.connect_ms,
            "started_unix_ms": self.started_unix_ms,
            "video": {
                "frames": self.video_frames,
                "resolutions": self.resolutions,
                "size_changes": self.size_changes,
                "first_frame_ms": self.first_frame_ms,
                "last_frame_ms": self.last_frame_ms,
                "tracks": self.video_tracks,
                "inbound": self.video_inbound,
                "frames_per_second": self.frames_per_second,
            },
            "audio": {
                "frames": self.audio_frames,
                "samples": self.audio_samples,
                "peak_rms": round(self.audio_peak_rms, 6),
                "first_frame_ms": self.first_audio_ms,
                "rms_per_second": self.audio_rms_per_second,
                "inbound": self.audio_inbound,
            },
            "chat_received": self.chat_received,
            "data_received": self.data_received,
            "chat_sent": self.chat_sent,
            "chat_sent_ids": self.chat_sent_ids,
            "participants_seen": self.participants_seen,
            "participant_events": self.participant_events,
            "participant_attributes": self.participant_attributes,
            "max_remote_participants": self.max_remote_participants,
            "mute_events": self.mute_events,
            "unpublished": self.unpublished,
            "publish": self.publish,
            "disconnect_reason": self.disconnect_reason,
            "restarts": self.restarts,
            "pattern": self.pattern_json(),
            "psnr": self.psnr.to_json() if self.psnr else None,
            "duration_ms": self.ms(),
        }


def region_of(frame_w, frame_h, region):
    """Pixels (x, y, w, h), even, of a region given as fractions of the frame."""
    even = lambda v: int(round(v / 2)) * 2
    fx, fy, fw, fh = region
    return even(fx * frame_w), even(fy * frame_h), even(fw * frame_w), even(fh * frame_h)


async def consume_video(track, report, quality_applied, read_pattern, entry, region=None):
    # `entry` is this track's line in report.video_tracks: what it alone decoded (a
    # camera and a screen share are told apart there).
    entry.update(frames=0, sizes={}, codes_read=0, codes_distinct=0, first_code=None, last_code=None, last_frame_ms=None)
    if region:
        entry.update(region_codes_read=0, region_codes_distinct=0, region_first_code=None, region_last_code=None)
    codes = set()
    region_codes = set()
    stream = rtc.VideoStream(track)
    async for event in stream:
        frame = event.frame
        if report.psnr is not None:
            report.psnr.measure(frame)
        if read_pattern:
            recv_us = time.time_ns() // 1000
            i420 = frame.convert(rtc.VideoBufferType.I420)
            code = read_pattern_code(memoryview(i420.data).cast("B"), i420.width, i420.height)
            if code is None:
                report.pattern_unreadable += 1
            else:
                report.pattern_samples.append((code[0], code[1], recv_us))
                codes.add(code[0])
                entry["codes_read"] += 1
                entry["codes_distinct"] = len(codes)
                entry["last_code"] = code[0]
                if entry["first_code"] is None:
                    entry["first_code"] = code[0]
            if region:
                x, y, w, h = region_of(i420.width, i420.height, region)
                code = read_pattern_code(memoryview(i420.data).cast("B"), w, h, stride=i420.width, x0=x, y0=y)
                if code is not None:
                    region_codes.add(code[0])
                    entry["region_codes_read"] += 1
                    entry["region_codes_distinct"] = len(region_codes)
                    entry["region_last_code"] = code[0]
                    if entry["region_first_code"] is None:
                        entry["region_first_code"] = code[0]
        entry["frames"] += 1
        size = f"{frame.width}x{frame.height}"
        entry["sizes"][size] = entry["sizes"].get(size, 0) + 1
        entry["last_frame_ms"] = report.ms()
        report.video_frames += 1
        second = str(int(time.monotonic() - report.t0))
        report.frames_per_second[second] = report.frames_per_second.get(second, 0) + 1
        key = f"{frame.width}x{frame.height}"
        report.resolutions[key] = report.resolutions.get(key, 0) + 1
        now = report.ms()
        if not report.size_changes or report.size_changes[-1][1] != key:
            report.size_changes.append([now, key])
        if report.first_frame_ms is None:
            report.first_frame_ms = now
            log(f"first video frame {key} at {now} ms (quality request: {quality_applied})")
        report.last_frame_ms = now


async def consume_audio(track, report):
    stream = rtc.AudioStream(track, sample_rate=48000, num_channels=1)
    async for event in stream:
        frame = event.frame
        report.audio_frames += 1
        samples = frame.data  # memoryview of int16
        report.audio_samples += len(samples)
        if report.first_audio_ms is None:
            report.first_audio_ms = report.ms()
        if len(samples):
            rms = math.sqrt(sum(int(s) * int(s) for s in samples[::8]) / max(1, len(samples[::8]))) / 32768.0
            report.audio_peak_rms = max(report.audio_peak_rms, rms)
            # The SDK plays silence when no packets come: loudness per second shows when sound flowed.
            sec = str(int(report.ms() // 1000))
            report.audio_rms_per_second[sec] = max(report.audio_rms_per_second.get(sec, 0.0), round(rms, 6))


async def try_publish(room, report, timeout):
    """Publish a tiny video track; the report says whether the server allowed it."""
    report.publish["attempted"] = True
    source = rtc.VideoSource(64, 64)
    track = rtc.LocalVideoTrack.create_video_track("permission-probe", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
    try:
        await asyncio.wait_for(room.local_participant.publish_track(track, options), timeout)
        report.publish["ok"] = True
        log("publish allowed")
    except Exception as exc:  # the SDK raises its own error types; record whatever it says
        report.publish["ok"] = False
        report.publish["error"] = f"{type(exc).__name__}: {exc}" or type(exc).__name__
        log("publish refused:", report.publish["error"])


async def run(args):
    report = Report()
    if args.psnr_ref:
        report.psnr = PsnrRef(args.psnr_ref, args.psnr_every)
    room = rtc.Room()
    tasks = []
    video_tracks = []
    audio_tracks = []
    done = asyncio.Event()

    def remote_count():
        return len(room.remote_participants)

    def note_participant(identity, event):
        if identity not in report.participants_seen:
            report.participants_seen.append(identity)
        report.participant_events.append({"event": event, "identity": identity, "t_ms": report.ms()})
        report.max_remote_participants = max(report.max_remote_participants, remote_count())

    def note_attributes(p):
        report.participant_attributes[p.identity] = dict(p.attributes)

    @room.on("participant_connected")
    def _on_joined(p):
        note_participant(p.identity, "joined")
        note_attributes(p)

    @room.on("participant_attributes_changed")
    def _on_attributes(changed, p):
        note_attributes(p)

    @room.on("participant_disconnected")
    def _on_left(p):
        note_participant(p.identity, "left")

    # Inbound-rtp as last sampled, per track object: after a restart the old track's peer
    # connection is gone, and its last sample is all that is left of what it decoded.
    sampled = {}
    sids = {}

    def retire(sid, track, tracks, into):
        old = sids.get(sid)
        sids[sid] = track
        if old is not None and old is not track and old in tracks:
            tracks.remove(old)
            for st in sampled.pop(id(old), []):
                into.append(dict(st, retired=True))

    def received(inbound):
        return sum(int(st.get("received", {}).get("packetsReceived", 0)) for st in inbound)

    async def sample_stats():
        while not done.is_set():
            await asyncio.sleep(0.25)
            for track in video_tracks + audio_tracks:
                try:
                    stats = await asyncio.wait_for(track.get_stats(), 1)
                except Exception:
                    continue
                inbound = [MessageToDict(st.inbound_rtp) for st in stats if st.HasField("inbound_rtp")]
                if not inbound:
                    continue
                before = sampled.get(id(track), [])
                if received(inbound) < received(before):  # the same track object, new counters
                    into = report.video_inbound if track in video_tracks else report.audio_inbound
                    into.extend(dict(st, retired=True) for st in before)
                sampled[id(track)] = inbound

    tasks.append(asyncio.create_task(sample_stats()))

    def note_restart(event):
        report.restarts.append({"event": event, "t_ms": report.ms(), "unix_us": time.time_ns() // 1000})
        log(f"{event} at {report.ms()} ms")

    @room.on("reconnecting")
    def _on_reconnecting():
        note_restart("reconnecting")

    @room.on("reconnected")
    def _on_reconnected():
        note_restart("reconnected")

    @room.on("track_subscribed")
    def _on_track(track, publication, participant):
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            applied = None
            if args.quality:
                try:
                    publication.set_video_quality(QUALITIES[args.quality])
                    applied = args.quality
                except Exception as exc:
                    log("could not set quality:", exc)
            entry = {
                "sid": publication.sid,
                "source": rtc.TrackSource.Name(publication.source),
                "participant": participant.identity,
                "mime_type": publication.mime_type,
                "simulcasted": publication.simulcasted,
                "width": publication.width,
                "height": publication.height,
                "muted": publication.muted,
            }
            report.video_tracks.append(entry)
            retire(publication.sid, track, video_tracks, report.video_inbound)
            video_tracks.append(track)
            tasks.append(asyncio.create_task(consume_video(track, report, applied, args.read_pattern, entry, args.region)))
        elif track.kind == rtc.TrackKind.KIND_AUDIO:
            retire(publication.sid, track, audio_tracks, report.audio_inbound)
            audio_tracks.append(track)
            tasks.append(asyncio.create_task(consume_audio(track, report)))

    def on_mute(muted):
        def handler(participant, publication):
            report.mute_events.append(
                {
                    "sid": publication.sid,
                    "kind": "video" if publication.kind == rtc.TrackKind.KIND_VIDEO else "audio",
                    "muted": muted,
                    "t_ms": report.ms(),
                    "video_frames_at": report.video_frames,
                }
            )

        return handler

    @room.on("track_unpublished")
    def _on_unpublished(publication, participant):
        report.unpublished.append(
            {"sid": publication.sid, "participant": participant.identity, "t_ms": report.ms()}
        )

    room.on("track_muted", on_mute(True))
    room.on("track_unmuted", on_mute(False))

    def on_chat(reader, identity):
        async def read():
            text = await reader.read_all()
            report.chat_received.append({"from": identity, "text": text, "t_ms": report.ms()})
            emit("chat", **{"from": identity, "text": text, "unix_ms": time.time_ns() // 1_000_000})
            log(f"chat from {identity}: {text!r}")

        tasks.append(asyncio.create_task(read()))

    room.register_text_stream_handler("lk.chat", on_chat)

    @room.on("data_received")
    def _on_data(packet):
        sender = packet.participant.identity if packet.participant else None
        try:
            text = packet.data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        report.data_received.append({"from": sender, "topic": packet.topic, "text": text, "t_ms": report.ms()})

    @room.on("room_metadata_changed")
    def _on_room_metadata(old, new):
        emit("room_metadata", metadata=new)

    @room.on("disconnected")
    def _on_disconnected(reason):
        report.disconnect_reason = str(reason)
        emit("disconnected", reason=str(reason))
        done.set()

    try:
        await asyncio.wait_for(
            room.connect(args.url, args.token, rtc.RoomOptions(auto_subscribe=True)), args.connect_timeout
        )
        report.joined = True
        report.connect_ms = report.ms()
        report.identity = room.local_participant.identity
        for p in room.remote_participants.values():
            note_participant(p.identity, "present")
            note_attributes(p)
        log(f"joined room as {report.identity} in {report.connect_ms} ms")
        emit("joined", identity=report.identity, metadata=room.metadata)
    except Exception as exc:
        report.error = f"connect failed: {type(exc).__name__}: {exc}"
        log(report.error)
        print_report(report)  # nothing to leave
        return

    if args.try_publish:
        await try_publish(room, report, args.publish_timeout)

    async def send_chats():
        if not args.send_chat:
            return
        # Chat goes to whoever is in the room; wait for someone to receive it.
        while remote_count() == 0 and not done.is_set():
            await asyncio.sleep(0.1)
        await asyncio.sleep(args.chat_delay)
        for text in args.send_chat:
            info = await room.local_participant.send_text(text, topic="lk.chat")
            report.chat_sent += 1
            report.chat_sent_ids.append(info.stream_id)
            log(f"sent chat {text!r}")
            await asyncio.sleep(0.3)

    tasks.append(asyncio.create_task(send_chats()))

    async def obey_commands():
        """--commands: each stdin line is a JSON command; end of input means quit."""
        loop = asyncio.get_running_loop()
        lines = asyncio.Queue()

        def read_stdin():  # a daemon thread: a blocked read never holds up the exit
            for raw in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, raw)
            loop.call_soon_threadsafe(lines.put_nowait, "")

        threading.Thread(target=read_stdin, daemon=True).start()
        while not done.is_set():
            line = await lines.get()
            if not line:
                break
            try:
                cmd = json.loads(line)
            except ValueError:
                log("bad command:", line.strip())
                continue
            if cmd.get("cmd") == "quit":
                break
            if cmd.get("cmd") == "send":
                text = cmd.get("text", "")
                sent_ms = time.time_ns() // 1_000_000
                try:
                    await room.local_participant.send_text(text, topic="lk.chat")
                    report.chat_sent += 1
                    emit("sent", text=text, ok=True, error=None, unix_ms=sent_ms)
                except Exception as exc:  # whatever the SDK raises, the test wants to know
                    emit("sent", text=text, ok=False, error=f"{type(exc).__name__}: {exc}", unix_ms=sent_ms)
        done.set()

    if args.commands:
        tasks.append(asyncio.create_task(obey_commands()))

    def conditions_met():
        wanted = []
        if args.until_frames is not None:
            wanted.append(report.video_frames >= args.until_frames)
        if args.until_audio_frames is not None:
            wanted.append(report.audio_frames >= args.until_audio_frames)
        if args.until_chat is not None:
            wanted.append(len(report.chat_received) >= args.until_chat)
        if args.until_data is not None:
            wanted.append(len(report.data_received) >= args.until_data)
        if not wanted:
            return False  # no --until condition: stay the whole --duration
        # Never leave before our own chat went out.
        wanted.append(report.chat_sent >= len(args.send_chat))
        return all(wanted)

    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline and not done.is_set():
        if conditions_met():
            log("all --until conditions met")
            break
        await asyncio.sleep(0.05)

    # The receiver's own view (libwebrtc's inbound-rtp): decoded vs dropped frames, NACKs
    # sent, freezes; tells a frame lost on the way from one the receiver gave up on.
    # For audio: packets lost, concealed samples and Opus FEC packets (NetEq's view).
    for tracks, into in ((video_tracks, report.video_inbound), (audio_tracks, report.audio_inbound)):
        for track in tracks:
            try:
                final = [
                    MessageToDict(st.inbound_rtp)
                    for st in await asyncio.wait_for(track.get_stats(), 3)
                    if st.HasField("inbound_rtp")
                ]
                before = sampled.get(id(track), [])
                if not final:
                    # An answer without inbound-rtp (seen for audio): the last sample stands.
                    into.extend(before)
                    continue
                if received(final) < received(before):
                    into.extend(dict(st, retired=True) for st in before)
                into.extend(final)
            except Exception as exc:
                log("stats:", exc)
                into.extend(sampled.get(id(track), []))

    # The figures go out before leaving: under load a viewer once printed nothing within the
    # test kit's 75 s for a 30 s watch, and a leave that hangs must not lose them.
    print_report(report)

    async def leave():
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await room.disconnect()

    # Bounded without waiting on cancellation (asyncio.wait, not wait_for): a CI run once
    # hung here for 15 s while the room still counted this viewer.
    leaving = asyncio.ensure_future(leave())
    finished, _ = await asyncio.wait([leaving], timeout=LEAVE_TIMEOUT_S)
    if not finished:
        log(f"leaving took over {LEAVE_TIMEOUT_S} s; exiting without it")
    elif leaving.exception() is not None:
        log("disconnect:", leaving.exception())


LEAVE_TIMEOUT_S = 6


def print_report(report):
    """The last line on stdout: no event line may follow it."""
    global EVENTS
    EVENTS = False
    print(json.dumps(report.to_json()), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="LiveKit ws(s):// URL")
    ap.add_argument("--token", required=True, help="access token (JWT)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds to stay at most")
    ap.add_argument("--connect-timeout", type=float, default=15.0)
    ap.add_argument("--quality", choices=sorted(QUALITIES), help="simulcast layer to request")
    ap.add_argument("--send-chat", action="append", default=[], help="chat text to send (repeatable)")
    ap.add_argument("--chat-delay", type=float, default=0.5, help="seconds after someone is present")
    ap.add_argument("--try-publish", action="store_true", help="try to publish a video track")
    ap.add_argument("--publish-timeout", type=float, default=12.0)
    ap.add_argument("--read-pattern", action="store_true", help="read the synthetic pattern's frame code")
    ap.add_argument(
        "--region",
        type=lambda s: tuple(float(v) for v in s.split(",")),
        help="with --read-pattern, also read the code in this region alone: x,y,w,h as fractions of the frame",
    )
    ap.add_argument("--psnr-ref", help="Y4M the publisher sends, frames stamped with their index: PSNR-Y of decoded frames")
    ap.add_argument("--psnr-every", type=int, default=3, help="measure every N-th frame at the source's size")
    ap.add_argument("--until-frames", type=int, help="stop once this many video frames decoded")
    ap.add_argument("--until-audio-frames", type=int, help="stop once this many audio frames received")
    ap.add_argument("--until-chat", type=int, help="stop once this many chat messages received")
    ap.add_argument("--commands", action="store_true", help="take commands on stdin, print events")
    ap.add_argument("--until-data", type=int, help="stop once this many data packets received (any topic)")
    args = ap.parse_args()
    global EVENTS
    EVENTS = args.commands

    # Whatever hangs, the process ends before the test kit's limit (duration + 45 s), with
    # every thread's stack on stderr to say where it hung.
    faulthandler.dump_traceback_later(args.duration + 35, exit=True)
    # Not asyncio.run: its teardown waits for every task and executor thread, which the
    # SDK's may never give back; the process exits right after run() instead.
    loop = asyncio.new_event_loop()
    loop.run_until_complete(run(args))  # prints the report
    sys.stdout.flush()
    sys.stderr.flush()
    # Skips interpreter finalisation, where the SDK's native runtime sometimes aborts
    # ("panic in a function that cannot unwind") after the report is out.
    os._exit(0)


if __name__ == "__main__":
    main()
