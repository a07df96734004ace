//! The synthetic test pattern and its machine-readable block code.
//!
//! # Pattern
//! Moving vertical colour bars (shifting 4 px per frame), a bouncing grey box, and an A/V
//! **flash**: during the first 100 ms of every media-clock second a white square (side `height/6`)
//! is drawn in the bottom-right corner; the synthetic audio source beeps during the same 100 ms
//! (see [`crate::source::SyntheticAudio`]), so a viewer can check A/V sync.
//!
//! # Block code (for the Rust reader [`read_pattern_code`] and the Python test viewer)
//! Everything is in the **luma (Y) plane** of the frame, whatever its resolution:
//! - block size `b = floor(width / 40)` luma pixels, square (`b × b`); minimum width 160.
//!   Widths that are multiples of 40 (320, 640, 1280, 1920) scale exactly between simulcast layers.
//! - the code area is the rectangle `x ∈ [0, 34·b)`, `y ∈ [0, 5·b)`, painted black (Y = 16,
//!   chroma 128); inside it 96 bit blocks in 3 rows of 32:
//!   bit `i` (0..96) is the block whose top-left pixel is `x = (1 + i % 32)·b`, `y = (1 + i / 32)·b`.
//!   A `1` bit is white (Y = 235), a `0` bit black (Y = 16).
//! - reading: average the luma over the inner half of each block
//!   (`x ∈ [bx + b/4, bx + 3b/4)`, `y ∈ [by + b/4, by + 3b/4)`, integer division) and compare
//!   with the threshold 128: `mean > 128` → 1.
//! - bit order: big-endian fields, most significant bit first:
//!   - bits 0..32: frame number (u32),
//!   - bits 32..80: capture timestamp in µs on the session media clock (48 bits),
//!   - bits 80..88: CRC-8 (polynomial 0x07, init 0x00, no reflection, no final xor, i.e.
//!     CRC-8/SMBUS) over the 10 bytes `frame_no (4 bytes BE) ‖ timestamp (6 bytes BE)`,
//!   - bits 88..96: the sync byte `0xA5` (`10100101`).
//!
//!   A read is valid only if the sync byte and the CRC match.

use crate::clock::MediaTime;
use crate::error::Result;
use crate::frame::VideoFrame;

/// Blocks across the frame width (block size = width / this).
pub const CODE_BLOCKS_PER_WIDTH: u32 = 40;
/// Bits per code row.
pub const CODE_COLUMNS: u32 = 32;
/// Code rows.
pub const CODE_ROWS: u32 = 3;
/// The sync byte in bits 88..96.
pub const CODE_SYNC: u8 = 0xA5;
/// Luma of a 1 bit.
pub const CODE_WHITE: u8 = 235;
/// Luma of a 0 bit and of the code area's background.
pub const CODE_BLACK: u8 = 16;
/// Threshold for reading.
pub const CODE_THRESHOLD: u32 = 128;
/// Length of the A/V flash / beep in each second, µs.
pub const FLASH_US: u64 = 100_000;

/// CRC-8/SMBUS (poly 0x07, init 0).
pub fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn code_bits(frame_no: u32, timestamp_us: u64) -> [bool; 96] {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&frame_no.to_be_bytes());
    bytes[4..10].copy_from_slice(&timestamp_us.to_be_bytes()[2..8]);
    bytes[10] = crc8(&bytes[..10]);
    bytes[11] = CODE_SYNC;
    let mut bits = [false; 96];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = bytes[i / 8] & (0x80 >> (i % 8)) != 0;
    }
    bits
}

/// Block size of the code for a frame width.
pub fn code_block_size(width: u32) -> u32 {
    width / CODE_BLOCKS_PER_WIDTH
}

/// Paints the block code into a packed I420 buffer of `width × height`.
pub fn draw_pattern_code(
    buf: &mut [u8],
    width: u32,
    height: u32,
    frame_no: u32,
    timestamp_us: u64,
) {
    let b = code_block_size(width) as usize;
    let (w, h) = (width as usize, height as usize);
    if b < 4 || 5 * b > h {
        return;
    }
    let area_w = (CODE_COLUMNS as usize + 2) * b;
    let area_h = (CODE_ROWS as usize + 2) * b;
    for row in buf[..w * h].chunks_mut(w).take(area_h) {
        row[..area_w].fill(CODE_BLACK);
    }
    let bits = code_bits(frame_no, timestamp_us);
    for (i, &bit) in bits.iter().enumerate() {
        if !bit {
            continue;
        }
        let bx = (1 + i % CODE_COLUMNS as usize) * b;
        let by = (1 + i / CODE_COLUMNS as usize) * b;
        for y in by..by + b {
            buf[y * w + bx..y * w + bx + b].fill(CODE_WHITE);
        }
    }
    // neutral chroma under the code area
    let (cw, ch) = (w / 2, h / 2);
    let ylen = w * h;
    for plane in 0..2 {
        let base = ylen + plane * cw * ch;
        for y in 0..area_h / 2 {
            buf[base + y * cw..base + y * cw + area_w / 2].fill(128);
        }
    }
}

/// Reads the block code from a luma plane (`stride` bytes per row).
/// Returns `(frame_no, timestamp_us)` when the sync byte and the CRC match.
pub fn read_pattern_code_luma(
    y: &[u8],
    stride: usize,
    width: u32,
    height: u32,
) -> Option<(u32, u64)> {
    let b = code_block_size(width) as usize;
    if b < 4 || 5 * b > height as usize {
        return None;
    }
    let mut bytes = [0u8; 12];
    for i in 0..96 {
        let bx = (1 + i % CODE_COLUMNS as usize) * b;
        let by = (1 + i / CODE_COLUMNS as usize) * b;
        let (x0, x1, y0, y1) = (bx + b / 4, bx + 3 * b / 4, by + b / 4, by + 3 * b / 4);
        let mut sum = 0u32;
        for yy in y0..y1 {
            let row = y.get(yy * stride + x0..yy * stride + x1)?;
            sum += row.iter().map(|&p| p as u32).sum::<u32>();
        }
        let n = ((x1 - x0) * (y1 - y0)) as u32;
        if sum > CODE_THRESHOLD * n {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    if bytes[11] != CODE_SYNC || crc8(&bytes[..10]) != bytes[10] {
        return None;
    }
    let frame_no = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let mut ts = [0u8; 8];
    ts[2..].copy_from_slice(&bytes[4..10]);
    Some((frame_no, u64::from_be_bytes(ts)))
}

/// Reads the block code of an I420 frame; see the module docs for the layout.
pub fn read_pattern_code(frame: &VideoFrame) -> Option<(u32, u64)> {
    read_pattern_code_luma(frame.y(), frame.y_stride(), frame.width, frame.height)
}

/// True when the A/V flash is on at media time `t` (first 100 ms of each second).
pub fn flash_on(t: MediaTime) -> bool {
    t.as_micros() % 1_000_000 < FLASH_US
}

// BT.601 limited-range colour bars: white, yellow, cyan, green, magenta, red, blue, black.
const BARS: [(u8, u8, u8); 8] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
    (16, 128, 128),
];

/// Generates frame `frame_no` of the test pattern, stamped `pts` (also burned into the code).
pub fn generate_pattern(
    width: u32,
    height: u32,
    frame_no: u32,
    pts: MediaTime,
) -> Result<VideoFrame> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w / 2, h / 2);
    let mut buf = vec![0u8; w * h + 2 * cw * ch];
    // bars: one row, copied down
    let shift = (frame_no as usize * 4) % w.max(1);
    let bar_of = |x: usize| ((x + shift) % w) * 8 / w;
    let yrow: Vec<u8> = (0..w).map(|x| BARS[bar_of(x)].0).collect();
    let urow: Vec<u8> = (0..cw).map(|x| BARS[bar_of(2 * x)].1).collect();
    let vrow: Vec<u8> = (0..cw).map(|x| BARS[bar_of(2 * x)].2).collect();
    {
        let (yp, rest) = buf.split_at_mut(w * h);
        let (up, vp) = rest.split_at_mut(cw * ch);
        for row in yp.chunks_mut(w) {
            row.copy_from_slice(&yrow);
        }
        for row in up.chunks_mut(cw.max(1)) {
            row.copy_from_slice(&urow);
        }
        for row in vp.chunks_mut(cw.max(1)) {
            row.copy_from_slice(&vrow);
        }
    }
    // a bouncing grey box (even coordinates so chroma lines up)
    let side = (h / 4) & !1;
    let bounce = |n: usize, range: usize| {
        if range == 0 {
            return 0;
        }
        let p = n % (2 * range);
        if p < range { p } else { 2 * range - p }
    };
    let bxp = bounce(frame_no as usize * 6, w.saturating_sub(side)) & !1;
    let byp = bounce(frame_no as usize * 4, h.saturating_sub(side)) & !1;
    fill_rect(&mut buf, w, h, bxp, byp, side, side, (128, 128, 128));
    if flash_on(pts) {
        let s = (h / 6) & !1;
        fill_rect(&mut buf, w, h, w - s, h - s, s, s, (235, 128, 128));
    }
    draw_pattern_code(&mut buf, width, height, frame_no, pts.as_micros());
    VideoFrame::from_i420(width, height, buf, pts)
}

#[allow(clippy::too_many_arguments)]
fn fill_rect(
    buf: &mut [u8],
    w: usize,
    h: usize,
    x: usize,
    y: usize,
    rw: usize,
    rh: usize,
    c: (u8, u8, u8),
) {
    let (cw, ch) = (w / 2, h / 2);
    let x1 = (x + rw).min(w);
    let y1 = (y + rh).min(h);
    for yy in y..y1 {
        buf[yy * w + x..yy * w + x1].fill(c.0);
    }
    for (plane, val) in [(0usize, c.1), (1, c.2)] {
        let base = w * h + plane * cw * ch;
        for yy in y / 2..y1 / 2 {
            buf[base + yy * cw + x / 2..base + yy * cw + x1 / 2].fill(val);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::scale_i420;

    #[test]
    fn crc8_reference() {
        // CRC-8/SMBUS check value
        assert_eq!(crc8(b"123456789"), 0xF4);
    }

    #[test]
    fn code_round_trips_raw_and_scaled() {
        for (w, h) in [(1280, 720), (640, 360), (320, 180), (1920, 1080)] {
            let f = generate_pattern(w, h, 123_456, MediaTime(987_654_321)).unwrap();
            assert_eq!(
                read_pattern_code(&f),
                Some((123_456, 987_654_321)),
                "{w}x{h}"
            );
        }
        let f = generate_pattern(1280, 720, 0xDEAD_BEEF, MediaTime((1 << 48) - 1)).unwrap();
        for (w, h) in [(640, 360), (320, 180)] {
            let s = scale_i420(&f, w, h).unwrap();
            assert_eq!(
                read_pattern_code(&s),
                Some((0xDEAD_BEEF, (1 << 48) - 1)),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn corrupted_code_is_rejected() {
        let f = generate_pattern(640, 360, 7, MediaTime(1000)).unwrap();
        let mut buf = f.data().to_vec();
        // flip bit 0 (top-left block of the code): the CRC no longer matches
        let b = code_block_size(640) as usize;
        for y in b..2 * b {
            buf[y * 640 + b..y * 640 + 2 * b].fill(CODE_WHITE);
        }
        let g = VideoFrame::from_i420(640, 360, buf, MediaTime(0)).unwrap();
        assert_eq!(read_pattern_code(&g), None);
        assert_eq!(
            read_pattern_code(&VideoFrame::solid(640, 360, 16, 128, 128, MediaTime(0)).unwrap()),
            None
        );
    }

    #[test]
    fn flash_follows_the_clock() {
        assert!(flash_on(MediaTime(2_050_000)));
        assert!(!flash_on(MediaTime(2_150_000)));
        let on = generate_pattern(320, 180, 0, MediaTime(0)).unwrap();
        let off = generate_pattern(320, 180, 0, MediaTime(500_000)).unwrap();
        let px = (179 * 320 + 319) as usize;
        assert_eq!(on.y()[px], 235);
        assert_ne!(off.y()[px], 235);
    }
}
