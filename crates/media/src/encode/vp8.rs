//! VP8 via the system libvpx (`env-libvpx-sys`): real-time CBR encoders (one layer, or every
//! simulcast layer in one multi-resolution encoder) and a decoder.
//!
//! The real-time settings follow what libwebrtc does with the same library (speed by
//! resolution, threads by resolution and core count, static threshold, denoiser on the
//! top layers, one token partition, a cap on key-frame size); see [`Vp8Simulcast`].

use std::ffi::{CStr, c_int, c_uint, c_ulong};
use std::mem::MaybeUninit;
use std::ptr;

use bytes::Bytes;
use vpx_sys as vpx;

use super::{
    ContentHint, EncodedVideo, VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig, fit,
};
use crate::clock::MediaTime;
use crate::error::{MediaError, Result, dec_err, enc_err};
use crate::frame::VideoFrame;

/// libvpx speed for VP8 real-time at CIF and above (`VP8E_SET_CPUUSED`). Negative: a fixed
/// speed of 6 (libvpx would otherwise retune the speed from its own timing, which makes the
/// cost jump around under load; frame rate is adapted above the encoder instead).
pub const VP8_CPU_USED: c_int = -6;

/// Speed for layers smaller than CIF (352×288): cheap enough to afford better quality.
pub const VP8_CPU_USED_SMALL: c_int = -4;

/// `VP8E_SET_NOISE_SENSITIVITY` 4: libvpx's adaptive temporal denoiser (YUV, stronger on
/// noisy input), used on the top layers only, as libwebrtc does on x86.
const VP8_DENOISER_ADAPTIVE: c_int = 4;

/// The speed for one layer of `width × height`.
pub fn vp8_cpu_used(width: u32, height: u32) -> c_int {
    if (width as u64) * (height as u64) < 352 * 288 {
        VP8_CPU_USED_SMALL
    } else {
        VP8_CPU_USED
    }
}

/// Encoder threads for a (top) layer of `width × height` on a machine with `cores` cores:
/// one up to VGA or below 3 cores (threads cost more than they bring on a busy 2-core
/// machine), 2 for HD with 3+ cores, 3 above 1280×960 or with 6+ cores, 8 for 1080p on
/// big machines. Lower simulcast layers always get one.
pub fn encoder_threads(width: u32, height: u32, cores: usize) -> u32 {
    let px = (width as u64) * (height as u64);
    if px >= 1920 * 1080 && cores > 8 {
        8
    } else if px > 1280 * 960 && cores >= 6 {
        3
    } else if px > 640 * 480 && cores >= 3 {
        if cores >= 6 { 3 } else { 2 }
    } else {
        1
    }
}

/// A libvpx image that borrows `f`'s I420 planes (no copy).
///
/// # Safety
/// The image points into `f`: it must not be used after `f` is dropped or moved.
unsafe fn wrap_i420(f: &VideoFrame) -> Result<vpx::vpx_image_t> {
    // SAFETY: vpx_image_t is a plain C struct, valid zeroed; vpx_img_wrap fills it in.
    unsafe {
        let mut img: vpx::vpx_image_t = MaybeUninit::zeroed().assume_init();
        let wrapped = vpx::vpx_img_wrap(
            &mut img,
            vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
            f.width,
            f.height,
            1,
            f.data().as_ptr().cast_mut(),
        );
        if wrapped.is_null() {
            return Err(enc_err("vp8", "vpx_img_wrap failed"));
        }
        img.planes[0] = f.y().as_ptr().cast_mut();
        img.planes[1] = f.u().as_ptr().cast_mut();
        img.planes[2] = f.v().as_ptr().cast_mut();
        img.stride[0] = f.y_stride() as c_int;
        img.stride[1] = f.uv_stride() as c_int;
        img.stride[2] = f.uv_stride() as c_int;
        Ok(img)
    }
}

/// Cores this process may use.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn vpx_msg(ctx: *mut vpx::vpx_codec_ctx_t, err: vpx::vpx_codec_err_t) -> String {
    // SAFETY: vpx_codec_error returns a static or context-owned NUL-terminated string.
    unsafe {
        let p = vpx::vpx_codec_error(ctx);
        if p.is_null() {
            format!("{err:?}")
        } else {
            format!("{err:?}: {}", CStr::from_ptr(p).to_string_lossy())
        }
    }
}

/// VP8 encoder (libvpx, real-time deadline, CBR, no lag, error resilient).
pub struct Vp8Encoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
    enc_cfg: Box<vpx::vpx_codec_enc_cfg_t>,
    cfg: VideoEncoderConfig,
}

// SAFETY: the libvpx context is only touched through `&mut self`; libvpx allows a context to
// move between threads as long as it is not used concurrently.
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    /// Creates an encoder for `cfg`.
    pub fn new(cfg: VideoEncoderConfig) -> Result<Self> {
        // SAFETY: plain C structs that libvpx fills in; zeroed is their documented initial state.
        unsafe {
            let iface = vpx::vpx_codec_vp8_cx();
            let mut enc_cfg: Box<vpx::vpx_codec_enc_cfg_t> =
                Box::new(MaybeUninit::zeroed().assume_init());
            let err = vpx::vpx_codec_enc_config_default(iface, &mut *enc_cfg, 0);
            if err != vpx::VPX_CODEC_OK {
                return Err(enc_err("vp8", format!("config default: {err:?}")));
            }
            enc_cfg.g_w = cfg.width;
            enc_cfg.g_h = cfg.height;
            // timestamps in microseconds of the media clock
            enc_cfg.g_timebase.num = 1;
            enc_cfg.g_timebase.den = 1_000_000;
            enc_cfg.rc_target_bitrate = (cfg.bitrate_bps / 1000).max(1);
            enc_cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
            enc_cfg.g_lag_in_frames = 0;
            enc_cfg.g_error_resilient = 1;
            enc_cfg.g_threads = encoder_threads(cfg.width, cfg.height, available_cores());
            enc_cfg.rc_min_quantizer = 2;
            enc_cfg.rc_max_quantizer = 56;
            enc_cfg.rc_undershoot_pct = 100;
            enc_cfg.rc_overshoot_pct = 15;
            enc_cfg.rc_buf_sz = 1000;
            enc_cfg.rc_buf_initial_sz = 500;
            enc_cfg.rc_buf_optimal_sz = 600;
            enc_cfg.rc_dropframe_thresh = 0;
            if cfg.keyframe_interval > 0 {
                enc_cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_AUTO;
                enc_cfg.kf_max_dist = cfg.keyframe_interval;
            } else {
                enc_cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_DISABLED;
            }
            let mut ctx: Box<vpx::vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            let err = vpx::vpx_codec_enc_init_ver(
                &mut *ctx,
                iface,
                &*enc_cfg,
                0,
                vpx::VPX_ENCODER_ABI_VERSION as c_int,
            );
            if err != vpx::VPX_CODEC_OK {
                return Err(enc_err("vp8", format!("init: {}", vpx_msg(&mut *ctx, err))));
            }
            let mut enc = Vp8Encoder { ctx, enc_cfg, cfg };
            let err = vpx::vpx_codec_control_(
                &mut *enc.ctx,
                vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int,
                vp8_cpu_used(cfg.width, cfg.height),
            );
            if err != vpx::VPX_CODEC_OK {
                return Err(enc_err("vp8", format!("cpu-used: {err:?}")));
            }
            if cfg.content == ContentHint::Detail {
                use vpx::vp8e_enc_control_id as id;
                for (ctl, value) in [
                    (id::VP8E_SET_STATIC_THRESHOLD, 100),
                    (id::VP8E_SET_SCREEN_CONTENT_MODE, 2),
                ] {
                    let err = vpx::vpx_codec_control_(&mut *enc.ctx, ctl as c_int, value);
                    if err != vpx::VPX_CODEC_OK {
                        return Err(enc_err("vp8", format!("control {ctl:?}={value}: {err:?}")));
                    }
                }
            }
            Ok(enc)
        }
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new`.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

impl VideoEncoder for Vp8Encoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::Vp8
    }

    fn encode(&mut self, frame: &VideoFrame, force_keyframe: bool) -> Result<Option<EncodedVideo>> {
        let input = fit(frame, &self.cfg)?;
        // SAFETY: the image only borrows `input`'s planes for the duration of vpx_codec_encode,
        // which copies what it needs (lag_in_frames = 0); packets are copied out before the
        // next call on the context.
        unsafe {
            let img = wrap_i420(&input)?;
            let flags = if force_keyframe {
                vpx::VPX_EFLAG_FORCE_KF as vpx::vpx_enc_frame_flags_t
            } else {
                0
            };
            let duration = (1_000_000.0 / self.cfg.fps.max(1.0)) as c_ulong;
            let err = vpx::vpx_codec_encode(
                &mut *self.ctx,
                &img,
                input.pts.as_micros() as i64,
                duration,
                flags,
                vpx::VPX_DL_REALTIME as c_ulong,
            );
            if err != vpx::VPX_CODEC_OK {
                return Err(enc_err("vp8", vpx_msg(&mut *self.ctx, err)));
            }
            let mut iter: vpx::vpx_codec_iter_t = ptr::null();
            let mut out: Option<EncodedVideo> = None;
            loop {
                let pkt = vpx::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter);
                if pkt.is_null() {
                    break;
                }
                if (*pkt).kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let f = (*pkt).data.frame;
                let bytes = std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize);
                let key = f.flags & vpx::VPX_FRAME_IS_KEY != 0;
                match &mut out {
                    // one frame per encode call with lag 0; concatenate just in case
                    Some(o) => {
                        let mut v = o.data.to_vec();
                        v.extend_from_slice(bytes);
                        o.data = Bytes::from(v);
                        o.keyframe |= key;
                    }
                    None => {
                        out = Some(EncodedVideo {
                            data: Bytes::copy_from_slice(bytes),
                            keyframe: key,
                            pts: input.pts,
                            width: input.width,
                            height: input.height,
                        })
                    }
                }
            }
            Ok(out)
        }
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        self.enc_cfg.rc_target_bitrate = (bps / 1000).max(1);
        // SAFETY: context initialised; cfg is a valid struct owned by self.
        let err = unsafe { vpx::vpx_codec_enc_config_set(&mut *self.ctx, &*self.enc_cfg) };
        if err != vpx::VPX_CODEC_OK {
            return Err(enc_err(
                "vp8",
                format!("set bitrate: {}", vpx_msg(&mut *self.ctx, err)),
            ));
        }
        self.cfg.bitrate_bps = bps;
        Ok(())
    }

    fn config(&self) -> VideoEncoderConfig {
        self.cfg
    }
}

/// Greatest common divisor (for the down-sampling factors between layers).
fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// A real-time CBR configuration of one layer, as libwebrtc sets libvpx up for camera
/// video (no lag, one pass, rate control buffers of 0.5/0.6/1 s, undershoot allowed,
/// 15 % overshoot, quantizer 2–56, no internal resizing). Frame dropping stays off so every
/// layer carries every frame the session chose to encode (the SFU judges a layer by its
/// packet flow); error resilience stays off as libwebrtc has it without temporal layers.
///
/// # Safety
/// `cfg` must come from `vpx_codec_enc_config_default`.
unsafe fn realtime_config(
    cfg: &mut vpx::vpx_codec_enc_cfg_t,
    width: u32,
    height: u32,
    bitrate_bps: u32,
    keyframe_interval: u32,
    threads: u32,
) {
    cfg.g_w = width;
    cfg.g_h = height;
    cfg.g_timebase.num = 1;
    cfg.g_timebase.den = 1_000_000;
    cfg.g_lag_in_frames = 0;
    cfg.g_pass = vpx::vpx_enc_pass::VPX_RC_ONE_PASS;
    cfg.g_error_resilient = 0;
    cfg.g_threads = threads as c_uint;
    cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
    cfg.rc_target_bitrate = (bitrate_bps / 1000).max(1);
    cfg.rc_resize_allowed = 0;
    cfg.rc_dropframe_thresh = 0;
    cfg.rc_min_quantizer = 2;
    cfg.rc_max_quantizer = 56;
    cfg.rc_undershoot_pct = 100;
    cfg.rc_overshoot_pct = 15;
    cfg.rc_buf_initial_sz = 500;
    cfg.rc_buf_optimal_sz = 600;
    cfg.rc_buf_sz = 1000;
    if keyframe_interval > 0 {
        cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_AUTO;
        cfg.kf_max_dist = keyframe_interval;
    } else {
        cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_DISABLED;
    }
}

/// Every simulcast layer of one source in one libvpx multi-resolution encoder
/// (`vpx_codec_enc_init_multi`): one `vpx_codec_encode` call encodes all layers, the
/// lowest first, and each higher layer starts its motion search from the lower layer's
/// modes and motion vectors instead of from scratch (libvpx built with
/// `--enable-multi-res-encoding`, as Debian's is; without it the layers are still encoded
/// in one call, just without the shared analysis). With one layer it is a plain encoder.
///
/// Layers are given low → high; internally libvpx wants the highest first. A layer is
/// paused by giving it a 0 target bitrate, which libvpx documents as "skip this stream".
pub struct Vp8Simulcast {
    /// highest resolution first; never moved after init (libvpx keeps pointers to `cfgs`)
    ctxs: Box<[vpx::vpx_codec_ctx_t]>,
    cfgs: Box<[vpx::vpx_codec_enc_cfg_t]>,
    /// (width, height) per context, highest first
    sizes: Vec<(u32, u32)>,
    /// wanted bitrate in kbps per context (also while paused)
    kbps: Vec<u32>,
    active: Vec<bool>,
    fps: f32,
}

// SAFETY: the contexts are only used through `&mut self`; libvpx contexts may move between
// threads when not used concurrently.
unsafe impl Send for Vp8Simulcast {}

impl Vp8Simulcast {
    /// Creates the encoder for `layers` (low → high: `(width, height, bitrate_bps)`), all
    /// encoded from one source at about `fps`. Each layer must be at most as large as the
    /// next one.
    pub fn new(
        layers: &[(u32, u32, u32)],
        fps: f32,
        keyframe_interval: u32,
        content: ContentHint,
    ) -> Result<Self> {
        if layers.is_empty() {
            return Err(enc_err("vp8", "no layers"));
        }
        let n = layers.len();
        let high_first: Vec<(u32, u32, u32)> = layers.iter().rev().copied().collect();
        for w in high_first.windows(2) {
            if w[1].0 > w[0].0 || w[1].1 > w[0].1 || w[1].0 == 0 || w[1].1 == 0 {
                return Err(enc_err(
                    "vp8",
                    format!("simulcast layers must shrink: {layers:?}"),
                ));
            }
        }
        let cores = available_cores();
        // SAFETY: zeroed libvpx structs are their documented initial state; the contexts,
        // configurations and factors are contiguous arrays of `n`, as init_multi wants.
        unsafe {
            let iface = vpx::vpx_codec_vp8_cx();
            let mut cfgs: Box<[vpx::vpx_codec_enc_cfg_t]> = (0..n)
                .map(|_| MaybeUninit::zeroed().assume_init())
                .collect();
            let mut ctxs: Box<[vpx::vpx_codec_ctx_t]> = (0..n)
                .map(|_| MaybeUninit::zeroed().assume_init())
                .collect();
            let mut dsf: Vec<vpx::vpx_rational_t> = Vec::with_capacity(n);
            for (i, &(w, h, bps)) in high_first.iter().enumerate() {
                let err = vpx::vpx_codec_enc_config_default(iface, &mut cfgs[i], 0);
                if err != vpx::VPX_CODEC_OK {
                    return Err(enc_err("vp8", format!("config default: {err:?}")));
                }
                let threads = if i == 0 {
                    encoder_threads(w, h, cores)
                } else {
                    1
                };
                realtime_config(&mut cfgs[i], w, h, bps, keyframe_interval, threads);
                // factor between this layer and the next smaller one (1/1 for the last)
                let next = high_first.get(i + 1).map_or(w, |l| l.0);
                let g = gcd(w, next);
                dsf.push(vpx::vpx_rational_t {
                    num: (w / g) as c_int,
                    den: (next / g) as c_int,
                });
            }
            let err = if n == 1 {
                vpx::vpx_codec_enc_init_ver(
                    &mut ctxs[0],
                    iface,
                    &cfgs[0],
                    0,
                    vpx::VPX_ENCODER_ABI_VERSION as c_int,
                )
            } else {
                vpx::vpx_codec_enc_init_multi_ver(
                    ctxs.as_mut_ptr(),
                    iface,
                    cfgs.as_mut_ptr(),
                    n as c_int,
                    0,
                    dsf.as_mut_ptr(),
                    vpx::VPX_ENCODER_ABI_VERSION as c_int,
                )
            };
            if err != vpx::VPX_CODEC_OK {
                return Err(enc_err(
                    "vp8",
                    format!("init ({n} layers): {}", vpx_msg(&mut ctxs[0], err)),
                ));
            }
            let mut enc = Vp8Simulcast {
                ctxs,
                sizes: high_first.iter().map(|l| (l.0, l.1)).collect(),
                kbps: cfgs.iter().map(|c| c.rc_target_bitrate).collect(),
                cfgs,
                active: vec![true; n],
                fps: fps.max(1.0),
            };
            let max_intra_pct = ((600.0 * 0.5 * enc.fps / 10.0) as c_int).max(300);
            for i in 0..n {
                let (w, h) = enc.sizes[i];
                // Screen content: no denoiser (it smears text), a high static threshold
                // (unchanged blocks are skipped, most of a screen is), and libvpx's screen
                // mode with its stricter rate control, as libwebrtc sets for screen sharing.
                let screen = content == ContentHint::Detail;
                let denoise = if screen {
                    0
                } else if i == 0 || (i == 1 && n > 2) {
                    VP8_DENOISER_ADAPTIVE
                } else {
                    0
                };
                use vpx::vp8e_enc_control_id as id;
                for (ctl, value) in [
                    (id::VP8E_SET_CPUUSED, vp8_cpu_used(w, h)),
                    (id::VP8E_SET_NOISE_SENSITIVITY, denoise),
                    (id::VP8E_SET_STATIC_THRESHOLD, if screen { 100 } else { 1 }),
                    (id::VP8E_SET_SCREEN_CONTENT_MODE, if screen { 2 } else { 0 }),
                    (
                        id::VP8E_SET_TOKEN_PARTITIONS,
                        vpx::vp8e_token_partitions::VP8_ONE_TOKENPARTITION as c_int,
                    ),
                    (id::VP8E_SET_MAX_INTRA_BITRATE_PCT, max_intra_pct),
                ] {
                    let err = vpx::vpx_codec_control_(&mut enc.ctxs[i], ctl as c_int, value);
                    if err != vpx::VPX_CODEC_OK {
                        return Err(enc_err("vp8", format!("control {ctl:?}={value}: {err:?}")));
                    }
                }
            }
            Ok(enc)
        }
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.ctxs.len()
    }

    /// Always false (an encoder has at least one layer).
    pub fn is_empty(&self) -> bool {
        self.ctxs.is_empty()
    }

    /// Context index of layer `layer` (0 = lowest).
    fn ctx_index(&self, layer: usize) -> Option<usize> {
        (layer < self.len()).then(|| self.len() - 1 - layer)
    }

    fn apply_rate(&mut self, i: usize) -> Result<()> {
        self.cfgs[i].rc_target_bitrate = if self.active[i] {
            self.kbps[i].max(1)
        } else {
            0
        };
        // SAFETY: context initialised; the configuration lives in self.
        let err = unsafe { vpx::vpx_codec_enc_config_set(&mut self.ctxs[i], &self.cfgs[i]) };
        if err != vpx::VPX_CODEC_OK {
            return Err(enc_err(
                "vp8",
                format!("set rate: {}", vpx_msg(&mut self.ctxs[i], err)),
            ));
        }
        Ok(())
    }

    /// Sets the target bitrate of layer `layer` (0 = lowest); kept while it is paused.
    pub fn set_bitrate(&mut self, layer: usize, bps: u32) -> Result<()> {
        let Some(i) = self.ctx_index(layer) else {
            return Err(enc_err("vp8", format!("no layer {layer}")));
        };
        let kbps = (bps / 1000).max(1);
        if self.kbps[i] == kbps {
            return Ok(());
        }
        self.kbps[i] = kbps;
        self.apply_rate(i)
    }

    /// Pauses or resumes layer `layer` (0 = lowest). A paused layer costs nothing; the
    /// caller asks for a key frame when it resumes.
    pub fn set_active(&mut self, layer: usize, on: bool) -> Result<()> {
        let Some(i) = self.ctx_index(layer) else {
            return Err(enc_err("vp8", format!("no layer {layer}")));
        };
        if self.active[i] == on {
            return Ok(());
        }
        self.active[i] = on;
        self.apply_rate(i)
    }

    /// The frame rate the rate control plans for (the session lowers it under CPU load).
    pub fn set_frame_rate(&mut self, fps: f32) {
        self.fps = fps.max(1.0);
    }

    /// The quantiser (libvpx's internal 0–127 scale) of layer `layer`'s (low → high) last
    /// frame; `None` when libvpx cannot say.
    pub fn last_qp(&mut self, layer: usize) -> Option<u32> {
        let n = self.ctxs.len();
        let i = n.checked_sub(layer + 1)?;
        let mut qp: c_int = -1;
        // SAFETY: the context is initialised; VP8E_GET_LAST_QUANTIZER writes one int
        // through the pointer, which lives for the call.
        let err = unsafe {
            vpx::vpx_codec_control_(
                &mut self.ctxs[i],
                vpx::vp8e_enc_control_id::VP8E_GET_LAST_QUANTIZER as c_int,
                &raw mut qp,
            )
        };
        (err == vpx::VPX_CODEC_OK && qp >= 0).then_some(qp as u32)
    }

    /// Encodes one picture per layer (`frames` low → high, each at its layer's size, all
    /// with the same capture time). `keyframe[i]` forces a key frame on layer `i`. Returns
    /// the compressed frame of every active layer that produced one, low → high.
    pub fn encode(
        &mut self,
        frames: &[VideoFrame],
        keyframe: &[bool],
    ) -> Result<Vec<Option<EncodedVideo>>> {
        let n = self.len();
        if frames.len() != n {
            return Err(enc_err(
                "vp8",
                format!("{} pictures for {n} layers", frames.len()),
            ));
        }
        let pts = frames[0].pts;
        // SAFETY: each image borrows its frame's planes for the duration of
        // vpx_codec_encode, which copies what it needs (no lag); packets are copied out
        // before the next call. The image array is contiguous, highest first, like the
        // contexts.
        unsafe {
            let mut imgs: Vec<vpx::vpx_image_t> = Vec::with_capacity(n);
            for i in 0..n {
                let f = &frames[n - 1 - i];
                if (f.width, f.height) != self.sizes[i] {
                    return Err(enc_err(
                        "vp8",
                        format!(
                            "layer picture {}x{} for a {}x{} layer",
                            f.width, f.height, self.sizes[i].0, self.sizes[i].1
                        ),
                    ));
                }
                let img = wrap_i420(f)?;
                imgs.push(img);
                let key = keyframe.get(n - 1 - i).copied().unwrap_or(false);
                if key && self.active[i] {
                    let err = vpx::vpx_codec_control_(
                        &mut self.ctxs[i],
                        vpx::vp8e_enc_control_id::VP8E_SET_FRAME_FLAGS as c_int,
                        vpx::VPX_EFLAG_FORCE_KF as c_int,
                    );
                    if err != vpx::VPX_CODEC_OK {
                        return Err(enc_err("vp8", format!("force key frame: {err:?}")));
                    }
                }
            }
            let duration = (1_000_000.0 / self.fps) as c_ulong;
            let err = vpx::vpx_codec_encode(
                self.ctxs.as_mut_ptr(),
                imgs.as_ptr(),
                pts.as_micros() as i64,
                duration,
                0,
                vpx::VPX_DL_REALTIME as c_ulong,
            );
            if err != vpx::VPX_CODEC_OK {
                return Err(enc_err("vp8", vpx_msg(self.ctxs.as_mut_ptr(), err)));
            }
            let mut out: Vec<Option<EncodedVideo>> = vec![None; n];
            for i in 0..n {
                let mut iter: vpx::vpx_codec_iter_t = ptr::null();
                let mut data: Vec<u8> = Vec::new();
                let mut key = false;
                loop {
                    let pkt = vpx::vpx_codec_get_cx_data(&mut self.ctxs[i], &mut iter);
                    if pkt.is_null() {
                        break;
                    }
                    if (*pkt).kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                        continue;
                    }
                    let f = (*pkt).data.frame;
                    data.extend_from_slice(std::slice::from_raw_parts(
                        f.buf as *const u8,
                        f.sz as usize,
                    ));
                    key |= f.flags & vpx::VPX_FRAME_IS_KEY != 0;
                }
                if !data.is_empty() && self.active[i] {
                    let (w, h) = self.sizes[i];
                    out[n - 1 - i] = Some(EncodedVideo {
                        data: Bytes::from(data),
                        keyframe: key,
                        pts,
                        width: w,
                        height: h,
                    });
                }
            }
            Ok(out)
        }
    }
}

impl Drop for Vp8Simulcast {
    fn drop(&mut self) {
        // SAFETY: every context was initialised in `new`; the lowest layer goes first and
        // the top one (which owns the shared analysis memory) last.
        unsafe {
            for ctx in self.ctxs.iter_mut().rev() {
                vpx::vpx_codec_destroy(ctx);
            }
        }
    }
}

/// VP8 decoder (libvpx) to I420.
pub struct Vp8Decoder {
    ctx: Box<vpx::vpx_codec_ctx_t>,
}

// SAFETY: see the encoder.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    /// Creates a decoder.
    pub fn new() -> Result<Self> {
        // SAFETY: zeroed context/config are the documented initial state.
        unsafe {
            let mut ctx: Box<vpx::vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            let cfg = vpx::vpx_codec_dec_cfg_t {
                threads: 1,
                w: 0,
                h: 0,
            };
            let err = vpx::vpx_codec_dec_init_ver(
                &mut *ctx,
                vpx::vpx_codec_vp8_dx(),
                &cfg,
                0,
                vpx::VPX_DECODER_ABI_VERSION as c_int,
            );
            if err != vpx::VPX_CODEC_OK {
                return Err(dec_err("vp8", format!("init: {err:?}")));
            }
            Ok(Vp8Decoder { ctx })
        }
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`.
        unsafe {
            vpx::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

impl VideoDecoder for Vp8Decoder {
    fn decode(&mut self, data: &[u8], pts: MediaTime) -> Result<Option<VideoFrame>> {
        // SAFETY: data outlives the call; returned images belong to the context and are copied
        // before the next call.
        unsafe {
            let err = vpx::vpx_codec_decode(
                &mut *self.ctx,
                data.as_ptr(),
                data.len() as c_uint,
                ptr::null_mut(),
                0,
            );
            if err != vpx::VPX_CODEC_OK {
                return Err(dec_err("vp8", vpx_msg(&mut *self.ctx, err)));
            }
            let mut iter: vpx::vpx_codec_iter_t = ptr::null();
            let mut last = None;
            loop {
                let img = vpx::vpx_codec_get_frame(&mut *self.ctx, &mut iter);
                if img.is_null() {
                    break;
                }
                let img = &*img;
                if img.fmt != vpx::vpx_img_fmt::VPX_IMG_FMT_I420 {
                    return Err(MediaError::Decoder {
                        codec: "vp8",
                        message: format!("unexpected image format {:?}", img.fmt),
                    });
                }
                let (w, h) = (img.d_w as usize, img.d_h as usize);
                if w == 0
                    || h == 0
                    || img.planes[0].is_null()
                    || img.planes[1].is_null()
                    || img.planes[2].is_null()
                {
                    continue;
                }
                let (ys, cs) = (img.stride[0] as usize, img.stride[1] as usize);
                let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                let y = std::slice::from_raw_parts(img.planes[0], ys * (h - 1) + w);
                let u = std::slice::from_raw_parts(img.planes[1], cs * (ch - 1) + cw);
                let v = std::slice::from_raw_parts(
                    img.planes[2],
                    img.stride[2] as usize * (ch - 1) + cw,
                );
                last = Some(VideoFrame::from_planes(
                    w as u32,
                    h as u32,
                    y,
                    ys,
                    u,
                    cs,
                    v,
                    img.stride[2] as usize,
                    pts,
                )?);
            }
            Ok(last)
        }
    }
}
