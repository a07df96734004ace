//! VP8 via the system libvpx (`env-libvpx-sys`): real-time CBR encoder and a decoder.

use std::ffi::{CStr, c_int, c_uint, c_ulong};
use std::mem::MaybeUninit;
use std::ptr;

use bytes::Bytes;
use vpx_sys as vpx;

use super::{EncodedVideo, VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig, fit};
use crate::clock::MediaTime;
use crate::error::{MediaError, Result, dec_err, enc_err};
use crate::frame::VideoFrame;

/// libvpx speed for VP8 real-time (`VP8E_SET_CPUUSED`; higher is faster, lower quality).
pub const VP8_CPU_USED: c_int = 6;

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
            enc_cfg.g_threads = std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1) as c_uint;
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
                VP8_CPU_USED as c_int,
            );
            if err != vpx::VPX_CODEC_OK {
                return Err(enc_err("vp8", format!("cpu-used: {err:?}")));
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
            let mut img: vpx::vpx_image_t = MaybeUninit::zeroed().assume_init();
            let wrapped = vpx::vpx_img_wrap(
                &mut img,
                vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
                input.width,
                input.height,
                1,
                input.data().as_ptr().cast_mut(),
            );
            if wrapped.is_null() {
                return Err(enc_err("vp8", "vpx_img_wrap failed"));
            }
            img.planes[0] = input.y().as_ptr().cast_mut();
            img.planes[1] = input.u().as_ptr().cast_mut();
            img.planes[2] = input.v().as_ptr().cast_mut();
            img.stride[0] = input.y_stride() as c_int;
            img.stride[1] = input.uv_stride() as c_int;
            img.stride[2] = input.uv_stride() as c_int;
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
