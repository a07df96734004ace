//! Capture sources: one trait for video, one for audio. Each source runs on its own thread and
//! delivers [`SourceEvent`]s into a bounded drop-oldest queue, so capture never blocks.
//! Synthetic and file sources live here; the camera is in [`crate::camera`], the microphone in
//! [`crate::mic`].

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::audio::{AudioFramer, Resampler48k};
use crate::clock::{MediaClock, MediaTime};
use crate::error::{MediaError, Result};
use crate::frame::{AUDIO_RATE, AudioFrame, AudioSamples, VideoFrame, i420_len};
use crate::pattern::{flash_on, generate_pattern};
use crate::queue::{DropOldestQueue, drop_oldest};

/// What a running source delivers.
#[derive(Debug)]
pub enum SourceEvent<T> {
    /// a captured frame
    Frame(T),
    /// the device went away or failed; the source stops after this
    Error(MediaError),
    /// a finite source (file played once) reached its end
    Ended,
}

/// Default queue bound for video sources (frames).
pub const VIDEO_SOURCE_QUEUE: usize = 4;
/// Default queue bound for audio sources (frames of 10/20 ms).
pub const AUDIO_SOURCE_QUEUE: usize = 100;

/// The handle on a running source. Dropping it stops the source and joins its thread.
pub struct SourceHandle<T> {
    events: Receiver<SourceEvent<T>>,
    queue: DropOldestQueue<SourceEvent<T>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    name: String,
}

impl<T> std::fmt::Debug for SourceHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceHandle")
            .field("name", &self.name)
            .finish()
    }
}

impl<T> SourceHandle<T> {
    /// Events (frames, errors, end).
    pub fn events(&self) -> &Receiver<SourceEvent<T>> {
        &self.events
    }
    /// Frames dropped because the consumer fell behind (oldest first).
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }
    /// Events waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
    /// Source name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Stops the source and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }
    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<T> Drop for SourceHandle<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What a source thread gets: where to emit, and whether to stop.
pub struct SourceCtx<T> {
    queue: DropOldestQueue<SourceEvent<T>>,
    stop: Arc<AtomicBool>,
    /// the session clock
    pub clock: MediaClock,
}

impl<T> SourceCtx<T> {
    /// True once the handle asked the source to stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
    /// Emits a frame (dropping the oldest queued one if the consumer is behind).
    pub fn emit(&self, frame: T) {
        self.queue.push(SourceEvent::Frame(frame));
    }
    /// Emits an error event.
    pub fn error(&self, e: MediaError) {
        tracing::warn!(error = %e, "source error");
        self.queue.push(SourceEvent::Error(e));
    }
    /// Emits the end event.
    pub fn ended(&self) {
        self.queue.push(SourceEvent::Ended);
    }
    /// Sleeps until `t` on the clock, waking early when stopped. Returns false if stopped.
    pub fn wait_until(&self, t: MediaTime) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            let now = self.clock.now();
            if now >= t {
                return true;
            }
            let left = Duration::from_micros(t.as_micros() - now.as_micros());
            if self.clock.is_manual() {
                std::thread::sleep(Duration::from_micros(200));
            } else {
                std::thread::sleep(left.min(Duration::from_millis(20)));
            }
        }
    }
}

/// Runs `body` on a named thread as a source with a queue of `capacity`.
pub fn spawn_source<T: Send + 'static>(
    name: &str,
    clock: MediaClock,
    capacity: usize,
    body: impl FnOnce(&SourceCtx<T>) + Send + 'static,
) -> Result<SourceHandle<T>> {
    let (queue, events) = drop_oldest(capacity);
    let stop = Arc::new(AtomicBool::new(false));
    let ctx = SourceCtx {
        queue: queue.clone(),
        stop: stop.clone(),
        clock,
    };
    let thread = std::thread::Builder::new()
        .name(format!("src-{name}"))
        .spawn(move || body(&ctx))?;
    Ok(SourceHandle {
        events,
        queue,
        stop,
        thread: Some(thread),
        name: name.to_string(),
    })
}

/// A video source: started once, runs on its own thread.
pub trait VideoSource: Send {
    /// A human-readable name.
    fn name(&self) -> String;
    /// Starts capturing, stamping frames with `clock`.
    fn start(self: Box<Self>, clock: MediaClock) -> Result<SourceHandle<VideoFrame>>;
}

/// An audio source: started once, runs on its own thread; frames are 48 kHz, 10 or 20 ms.
pub trait AudioSource: Send {
    /// A human-readable name.
    fn name(&self) -> String;
    /// Starts capturing, stamping frames with `clock`.
    fn start(self: Box<Self>, clock: MediaClock) -> Result<SourceHandle<AudioFrame>>;
}

/// The moving test pattern with its block code ([`crate::pattern`]).
#[derive(Clone, Debug)]
pub struct SyntheticVideo {
    /// width (even, ≥ 160 for the code)
    pub width: u32,
    /// height (even)
    pub height: u32,
    /// frame rate
    pub fps: u32,
    /// stop after this many frames (then [`SourceEvent::Ended`]); `None` runs forever
    pub max_frames: Option<u32>,
    /// queue bound
    pub queue: usize,
}

impl SyntheticVideo {
    /// A pattern of `width × height` at `fps`, forever.
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        SyntheticVideo {
            width,
            height,
            fps,
            max_frames: None,
            queue: VIDEO_SOURCE_QUEUE,
        }
    }
}

impl VideoSource for SyntheticVideo {
    fn name(&self) -> String {
        format!("synthetic {}x{}@{}", self.width, self.height, self.fps)
    }
    fn start(self: Box<Self>, clock: MediaClock) -> Result<SourceHandle<VideoFrame>> {
        let s = *self;
        spawn_source("synthetic-video", clock, s.queue, move |ctx| {
            let start = ctx.clock.now();
            let period = 1_000_000 / s.fps.max(1) as u64;
            let mut n: u32 = 0;
            loop {
                if s.max_frames.is_some_and(|m| n >= m) {
                    ctx.ended();
                    return;
                }
                let pts = MediaTime(start.as_micros() + n as u64 * period);
                if !ctx.wait_until(pts) {
                    return;
                }
                match generate_pattern(s.width, s.height, n, pts) {
                    Ok(f) => ctx.emit(f),
                    Err(e) => {
                        ctx.error(e);
                        return;
                    }
                }
                n = n.wrapping_add(1);
            }
        })
    }
}

/// Amplitude of the synthetic tone (−20 dBFS).
pub const TONE_AMPLITUDE: f64 = 0.1;
/// Amplitude of the synthetic beep (−6 dBFS).
pub const BEEP_AMPLITUDE: f64 = 0.5;

/// A continuous tone with a beep during the first 100 ms of every media-clock second — the
/// same 100 ms in which the synthetic video flashes ([`crate::pattern::flash_on`]).
#[derive(Clone, Debug)]
pub struct SyntheticAudio {
    /// 1 or 2
    pub channels: u16,
    /// 10 or 20
    pub frame_ms: u32,
    /// tone frequency (440 Hz)
    pub tone_hz: f64,
    /// beep frequency (1000 Hz)
    pub beep_hz: f64,
    /// stop after this many frames; `None` runs forever
    pub max_frames: Option<u32>,
    /// queue bound
    pub queue: usize,
}

impl Default for SyntheticAudio {
    fn default() -> Self {
        SyntheticAudio {
            channels: 2,
            frame_ms: 20,
            tone_hz: 440.0,
            beep_hz: 1000.0,
            max_frames: None,
            queue: AUDIO_SOURCE_QUEUE,
        }
    }
}

impl SyntheticAudio {
    /// The samples (interleaved f32) of `frames` frames starting at media time `pts`.
    pub fn render(&self, pts: MediaTime, frames: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(frames * self.channels as usize);
        for k in 0..frames {
            let t_us = pts.as_micros() + k as u64 * 1_000_000 / AUDIO_RATE as u64;
            let t = t_us as f64 / 1e6;
            let mut s = TONE_AMPLITUDE * (2.0 * std::f64::consts::PI * self.tone_hz * t).sin();
            if flash_on(MediaTime(t_us)) {
                s += BEEP_AMPLITUDE * (2.0 * std::f64::consts::PI * self.beep_hz * t).sin();
            }
            for _ in 0..self.channels {
                out.push(s as f32);
            }
        }
        out
    }
}

impl AudioSource for SyntheticAudio {
    fn name(&self) -> String {
        format!("synthetic tone {} Hz + beeps", self.tone_hz)
    }
    fn start(self: Box<Self>, clock: MediaClock) -> Result<SourceHandle<AudioFrame>> {
        let s = *self;
        if !(s.channels == 1 || s.channels == 2) || !(s.frame_ms == 10 || s.frame_ms == 20) {
            return Err(MediaError::Geometry(format!(
                "synthetic audio: channels {} / frame {} ms",
                s.channels, s.frame_ms
            )));
        }
        spawn_source("synthetic-audio", clock, s.queue, move |ctx| {
            let start = ctx.clock.now();
            let frames = (AUDIO_RATE / 1000 * s.frame_ms) as usize;
            let dur = s.frame_ms as u64 * 1000;
            let mut n: u32 = 0;
            loop {
                if s.max_frames.is_some_and(|m| n >= m) {
                    ctx.ended();
                    return;
                }
                let pts = MediaTime(start.as_micros() + n as u64 * dur);
                // a frame is "captured" once its last sample has happened
                if !ctx.wait_until(MediaTime(pts.as_micros() + dur)) {
                    return;
                }
                ctx.emit(AudioFrame {
                    sample_rate: AUDIO_RATE,
                    channels: s.channels,
                    samples: AudioSamples::F32(s.render(pts, frames)),
                    pts,
                });
                n = n.wrapping_add(1);
            }
        })
    }
}

/// Header of a Y4M file (only 4:2:0 8-bit is accepted).
#[derive(Clone, Debug, PartialEq)]
pub struct Y4mHeader {
    /// width
    pub width: u32,
    /// height
    pub height: u32,
    /// frame rate numerator
    pub fps_num: u32,
    /// frame rate denominator
    pub fps_den: u32,
}

/// Parses the Y4M stream header line (without the trailing newline).
pub fn parse_y4m_header(line: &str) -> std::result::Result<Y4mHeader, String> {
    let mut it = line.split(' ');
    if it.next() != Some("YUV4MPEG2") {
        return Err("not a YUV4MPEG2 file".into());
    }
    let (mut w, mut h, mut num, mut den) = (0, 0, 30, 1);
    for tok in it {
        let (k, v) = tok.split_at(tok.len().min(1));
        match k {
            "W" => w = v.parse().map_err(|_| format!("bad width {v}"))?,
            "H" => h = v.parse().map_err(|_| format!("bad height {v}"))?,
            "F" => {
                let (n, d) = v.split_once(':').ok_or_else(|| format!("bad rate {v}"))?;
                num = n.parse().map_err(|_| format!("bad rate {v}"))?;
                den = d.parse().map_err(|_| format!("bad rate {v}"))?;
            }
            "C" if !v.starts_with("420") => {
                return Err(format!("only 4:2:0 8-bit Y4M is supported, got C{v}"));
            }
            _ => {}
        }
    }
    if w == 0 || h == 0 || w % 2 != 0 || h % 2 != 0 || num == 0 || den == 0 {
        return Err(format!("unsupported geometry {w}x{h} at {num}/{den}"));
    }
    Ok(Y4mHeader {
        width: w,
        height: h,
        fps_num: num,
        fps_den: den,
    })
}

/// Y4M reader: frames as packed I420.
pub struct Y4mReader {
    reader: BufReader<File>,
    /// the stream header
    pub header: Y4mHeader,
    data_start: u64,
    path: PathBuf,
}

impl Y4mReader {
    /// Opens a file and reads its header.
    pub fn open(path: &Path) -> Result<Self> {
        let file_err = |m: String| MediaError::File {
            path: path.display().to_string(),
            message: m,
        };
        let f = File::open(path).map_err(|e| file_err(e.to_string()))?;
        let mut reader = BufReader::new(f);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| file_err(e.to_string()))?;
        let header = parse_y4m_header(line.trim_end()).map_err(file_err)?;
        let data_start = line.len() as u64;
        Ok(Y4mReader {
            reader,
            header,
            data_start,
            path: path.to_path_buf(),
        })
    }

    /// The next frame's pixels, or `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(None);
        }
        if !line.starts_with(b"FRAME") {
            return Err(MediaError::File {
                path: self.path.display().to_string(),
                message: "missing FRAME marker".into(),
            });
        }
        // Read into spare capacity: a zeroed 1.4 MB buffer per 720p frame only to be
        // overwritten cost the source thread a memset as large as the read.
        let len = i420_len(self.header.width, self.header.height);
        let mut buf = Vec::with_capacity(len);
        (&mut self.reader).take(len as u64).read_to_end(&mut buf)?;
        Ok((buf.len() == len).then_some(buf))
    }

    /// Back to the first frame.
    pub fn rewind(&mut self) -> Result<()> {
        self.reader.seek(SeekFrom::Start(self.data_start))?;
        Ok(())
    }
}

/// Writes frames as a Y4M file (used by tests and the benchmark).
pub fn write_y4m(path: &Path, frames: &[VideoFrame], fps: u32) -> Result<()> {
    use std::io::Write;
    let first = frames
        .first()
        .ok_or_else(|| MediaError::Geometry("no frames to write".into()))?;
    let mut w = std::io::BufWriter::new(File::create(path)?);
    writeln!(
        w,
        "YUV4MPEG2 W{} H{} F{}:1 Ip A1:1 C420mpeg2 XCOLORRANGE=LIMITED",
        first.width, first.height, fps
    )?;
    for f in frames {
        w.write_all(b"FRAME\n")?;
        w.write_all(f.data())?;
    }
    w.flush()?;
    Ok(())
}

/// A Y4M file played at its frame rate, once or looped.
#[derive(Clone, Debug)]
pub struct Y4mSource {
    /// the file
    pub path: PathBuf,
    /// start over at the end
    pub looped: bool,
    /// queue bound
    pub queue: usize,
}

impl Y4mSource {
    /// A source for `path`.
    pub fn new(path: impl Into<PathBuf>, looped: bool) -> Self {
        Y4mSource {
            path: path.into(),
            looped,
            queue: VIDEO_SOURCE_QUEUE,
        }
    }
}

impl VideoSource for Y4mSource {
    fn name(&self) -> String {
        format!("file {}", self.path.display())
    }
    fn start(self: Box<Self>, clock: MediaClock) -> Result<SourceHandle<VideoFrame>> {
        let mut reader = Y4mReader::open(&self.path)?;
        let looped = self.looped;
        spawn_source("y4m", clock, self.queue, move |ctx| {
            let h = reader.header.clone();
            let start = ctx.clock.now();
            let mut n: u64 = 0;
            let mut empty_loop = true;
            loop {
                let pts = MediaTime(
                    start.as_micros() + n * 1_000_000 * h.fps_den as u64 / h.fps_num as u64,
                );
                if !ctx.wait_until(pts) {
                    return;
                }
                match reader.next_frame() {
                    Ok(Some(buf)) => {
                        empty_loop = false;
                        match VideoFrame::from_i420(h.width, h.height, buf, pts) {
                            Ok(f) => ctx.emit(f),
                            Err(e) => return ctx.error(e),
                        }
                        n += 1;
                    }
                    Ok(None) if looped && !empty_loop => {
                        empty_loop = true;
                        if let Err(e) = reader.rewind() {
                            return ctx.error(e);
                        }
                    }
                    Ok(None) => return ctx.ended(),
                    Err(e) => return ctx.error(e),
                }
            }
        })
    }
}

/// A WAV file (PCM 16-bit or float, 1 or 2 channels, any rate — resampled to 48 kHz), played in
/// real time as 20 ms frames, once or looped.
#[derive(Clone, Debug)]
pub struct WavSource {
    /// the file
    pub path: PathBuf,
    /// start over at the end
    pub looped: bool,
    /// queue bound
    pub queue: usize,
}

impl WavSource {
    /// A source for `path`.
    pub fn new(path: impl Into<PathBuf>, looped: bool) -> Self {
        WavSource {
            path: path.into(),
            looped,
            queue: AUDIO_SOURCE_QUEUE,
        }
    }
}

/// Reads a whole WAV file as interleaved f32, with its rate and channels.
pub fn read_wav(path: &Path) -> Result<(Vec<f32>, u32, u16)> {
    let file_err = |m: String| MediaError::File {
        path: path.display().to_string(),
        message: m,
    };
    let mut r = hound::WavReader::open(path).map_err(|e| file_err(e.to_string()))?;
    let spec = r.spec();
    if !(spec.channels == 1 || spec.channels == 2) {
        return Err(file_err(format!(
            "{} channels (1 or 2 supported)",
            spec.channels
        )));
    }
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => r
            .samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| file_err(e.to_string()))?,
        (hound::SampleFormat::Int, 16) => r
            .samples::<i16>()
            .map(|s| s.map(|v| v as f32 / 32768.0))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| file_err(e.to_string()))?,
        (hound::SampleFormat::Int, bits @ (24 | 32)) => {
            let scale = (1u64 << (bits - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| file_err(e.to_string()))?
        }
        (f, b) => return Err(file_err(format!("unsupported sample format {f:?} {b} bit"))),
    };
    Ok((samples, spec.sample_rate, spec.channels))
}

impl AudioSource for WavSource {
    fn name(&self) -> String {
        format!("file {}", self.path.display())
    }
    fn start(self: Box<Self>, clock: MediaClock) -> Result<SourceHandle<AudioFrame>> {
        let (samples, rate, channels) = read_wav(&self.path)?;
        let mut resampler = Resampler48k::new(rate, channels)?;
        let mut pcm48 = resampler.process(&samples)?;
        pcm48.extend(resampler.flush()?);
        let looped = self.looped;
        spawn_source("wav", clock, self.queue, move |ctx| {
            let per = 960 * channels as usize;
            if pcm48.len() < per {
                return ctx.ended();
            }
            let start = ctx.clock.now();
            let mut framer = AudioFramer::new(channels, 960);
            let mut n: u64 = 0;
            let mut pos = 0usize;
            loop {
                let pts = MediaTime(start.as_micros() + n * 20_000);
                if !ctx.wait_until(MediaTime(pts.as_micros() + 20_000)) {
                    return;
                }
                if pos >= pcm48.len() {
                    if looped {
                        pos = 0;
                    } else {
                        return ctx.ended();
                    }
                }
                let end = (pos + per).min(pcm48.len());
                for f in framer.push(&pcm48[pos..end], pts) {
                    ctx.emit(f);
                }
                pos = end;
                n += 1;
            }
        })
    }
}
