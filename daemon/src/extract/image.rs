//! Image sampling for the extractor: a half-size pyramid (so large downscales do not alias) and
//! bilinear affine warps into model tensors or RGB crops.
//!
//! Hand-written rather than `imageproc`: we need the crop→frame map of a rotated ROI sampled from
//! the right pyramid level straight into an NCHW `f32` tensor, which no crate offers in one pass.

use std::path::Path;

use super::geometry::Affine;
use crate::media::RgbFrame;

/// An RGB frame with successively halved copies.
pub struct Pyramid {
    levels: Vec<RgbFrame>,
}

fn halve(img: &RgbFrame) -> RgbFrame {
    let (w, h) = ((img.width / 2).max(1), (img.height / 2).max(1));
    let mut data = vec![0u8; w as usize * h as usize * 3];
    let sw = img.width as usize;
    for y in 0..h as usize {
        let (y0, y1) = (
            (2 * y).min(img.height as usize - 1),
            (2 * y + 1).min(img.height as usize - 1),
        );
        for x in 0..w as usize {
            let (x0, x1) = ((2 * x).min(sw - 1), (2 * x + 1).min(sw - 1));
            for c in 0..3 {
                let s = img.data[(y0 * sw + x0) * 3 + c] as u32
                    + img.data[(y0 * sw + x1) * 3 + c] as u32
                    + img.data[(y1 * sw + x0) * 3 + c] as u32
                    + img.data[(y1 * sw + x1) * 3 + c] as u32;
                data[(y * w as usize + x) * 3 + c] = ((s + 2) / 4) as u8;
            }
        }
    }
    RgbFrame {
        width: w,
        height: h,
        data,
    }
}

impl Pyramid {
    /// Builds levels down to ~64 px.
    pub fn new(img: RgbFrame) -> Self {
        let mut levels = vec![img];
        while let Some(last) = levels.last() {
            if last.width.min(last.height) < 128 {
                break;
            }
            let next = halve(last);
            levels.push(next);
        }
        Pyramid { levels }
    }

    /// The full-resolution frame.
    pub fn base(&self) -> &RgbFrame {
        &self.levels[0]
    }

    /// Samples the frame through `crop_to_frame` (crop pixel → frame pixel) into `size`×`size`,
    /// calling `put(index, r, g, b)` per pixel (values 0..255). Outside the frame is black.
    fn sample(
        &self,
        crop_to_frame: &Affine,
        size: usize,
        mut put: impl FnMut(usize, f32, f32, f32),
    ) {
        // Frame pixels per crop pixel decide the level: keep the step ≤ 2 source pixels.
        let step = crop_to_frame.scale();
        let mut level = 0;
        while level + 1 < self.levels.len() && step / f64::from(1u32 << (level + 1)) >= 1.0 {
            level += 1;
        }
        let img = &self.levels[level];
        let k = 1.0 / f64::from(1u32 << level);
        let m = crop_to_frame.0;
        let (w, h) = (img.width as i64, img.height as i64);
        let data = &img.data;
        let px = |x: i64, y: i64, c: usize| -> f32 {
            if x < 0 || y < 0 || x >= w || y >= h {
                0.0
            } else {
                data[((y * w + x) * 3) as usize + c] as f32
            }
        };
        // Level coordinates step linearly along a row: start + u · (dx, dy).
        let (dx, dy) = (m[0][0] * k, m[1][0] * k);
        for v in 0..size {
            let cv = v as f64 + 0.5;
            // Pixel centres at +0.5 on both sides.
            let mut x = (m[0][0] * 0.5 + m[0][1] * cv + m[0][2]) * k - 0.5;
            let mut y = (m[1][0] * 0.5 + m[1][1] * cv + m[1][2]) * k - 0.5;
            for u in 0..size {
                let (xf, yf) = (x.floor(), y.floor());
                let (x0, y0) = (xf as i64, yf as i64);
                let (fx, fy) = ((x - xf) as f32, (y - yf) as f32);
                let (w00, w01) = ((1.0 - fx) * (1.0 - fy), fx * (1.0 - fy));
                let (w10, w11) = ((1.0 - fx) * fy, fx * fy);
                let mut rgb = [0f32; 3];
                if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
                    // Inside: the four neighbours without per-sample bounds checks on x/y.
                    let i0 = ((y0 * w + x0) * 3) as usize;
                    let i1 = i0 + (w as usize) * 3;
                    let (a, b) = (&data[i0..i0 + 6], &data[i1..i1 + 6]);
                    for c in 0..3 {
                        rgb[c] = a[c] as f32 * w00
                            + a[3 + c] as f32 * w01
                            + b[c] as f32 * w10
                            + b[3 + c] as f32 * w11;
                    }
                } else {
                    for (c, out) in rgb.iter_mut().enumerate() {
                        *out = px(x0, y0, c) * w00
                            + px(x0 + 1, y0, c) * w01
                            + px(x0, y0 + 1, c) * w10
                            + px(x0 + 1, y0 + 1, c) * w11;
                    }
                }
                put(v * size + u, rgb[0], rgb[1], rgb[2]);
                x += dx;
                y += dy;
            }
        }
    }

    /// Warps into an NCHW `[1, 3, size, size]` tensor scaled to `[lo, hi]`.
    pub fn warp_tensor(
        &self,
        crop_to_frame: &Affine,
        size: usize,
        lo: f32,
        hi: f32,
        out: &mut Vec<f32>,
    ) {
        out.clear();
        out.resize(3 * size * size, 0.0);
        let plane = size * size;
        let k = (hi - lo) / 255.0;
        self.sample(crop_to_frame, size, |i, r, g, b| {
            out[i] = lo + r * k;
            out[plane + i] = lo + g * k;
            out[2 * plane + i] = lo + b * k;
        });
    }

    /// Warps into an NCHW `[1, 3, size, size]` tensor in BGR order, 0..255 minus `mean_bgr`
    /// (Caffe-style input, as S3FD expects).
    pub fn warp_tensor_bgr(
        &self,
        crop_to_frame: &Affine,
        size: usize,
        mean_bgr: [f32; 3],
        out: &mut Vec<f32>,
    ) {
        out.clear();
        out.resize(3 * size * size, 0.0);
        let plane = size * size;
        self.sample(crop_to_frame, size, |i, r, g, b| {
            out[i] = b - mean_bgr[0];
            out[plane + i] = g - mean_bgr[1];
            out[2 * plane + i] = r - mean_bgr[2];
        });
    }

    /// Warps into an 8-bit RGB crop.
    pub fn warp_rgb(&self, crop_to_frame: &Affine, size: usize) -> RgbFrame {
        let mut data = vec![0u8; size * size * 3];
        self.sample(crop_to_frame, size, |i, r, g, b| {
            data[i * 3] = r.round() as u8;
            data[i * 3 + 1] = g.round() as u8;
            data[i * 3 + 2] = b.round() as u8;
        });
        RgbFrame {
            width: size as u32,
            height: size as u32,
            data,
        }
    }
}

/// Crop→frame map that letterboxes the whole `width`×`height` frame into a `size` square.
pub fn letterbox(width: u32, height: u32, size: usize) -> Affine {
    let s = width.max(height) as f64 / size as f64;
    let (ox, oy) = (
        (width as f64 - size as f64 * s) / 2.0,
        (height as f64 - size as f64 * s) / 2.0,
    );
    Affine([[s, 0.0, ox], [0.0, s, oy]])
}

/// Crop→frame map of a square ROI: centre, side in frame pixels, rotation of the crop's x axis.
pub fn roi_map(center: [f64; 2], side: f64, angle: f64, size: usize) -> Affine {
    let s = side / size as f64;
    let (sin, cos) = angle.sin_cos();
    let half = size as f64 / 2.0;
    Affine([
        [s * cos, -s * sin, center[0] - s * (cos * half - sin * half)],
        [s * sin, s * cos, center[1] - s * (sin * half + cos * half)],
    ])
}

/// An image file decoded to RGB.
pub fn load_image(path: &Path) -> Result<RgbFrame, image::ImageError> {
    let img = image::ImageReader::open(path)?
        .with_guessed_format()?
        .decode()?
        .to_rgb8();
    Ok(RgbFrame {
        width: img.width(),
        height: img.height(),
        data: img.into_raw(),
    })
}

/// The frame turned by `quarter_turns` × 90° clockwise, and the map from the turned frame's
/// pixels back to the original's.
pub fn rotate(img: &RgbFrame, quarter_turns: u32) -> (RgbFrame, Affine) {
    let (w, h) = (img.width as usize, img.height as usize);
    let q = quarter_turns % 4;
    let (nw, nh) = if q % 2 == 1 { (h, w) } else { (w, h) };
    let mut data = vec![0u8; w * h * 3];
    for y in 0..nh {
        for x in 0..nw {
            let (sx, sy) = match q {
                0 => (x, y),
                1 => (y, h - 1 - x),
                2 => (w - 1 - x, h - 1 - y),
                _ => (w - 1 - y, x),
            };
            let (d, s) = ((y * nw + x) * 3, (sy * w + sx) * 3);
            data[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    // Continuous coordinates (pixel edges at integers): turned (x, y) → original.
    let (wf, hf) = (w as f64, h as f64);
    let back = match q {
        0 => Affine::IDENTITY,
        1 => Affine([[0.0, 1.0, 0.0], [-1.0, 0.0, hf]]),
        2 => Affine([[-1.0, 0.0, wf], [0.0, -1.0, hf]]),
        _ => Affine([[0.0, -1.0, wf], [1.0, 0.0, 0.0]]),
    };
    (
        RgbFrame {
            width: nw as u32,
            height: nh as u32,
            data,
        },
        back,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbFrame {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, 7]);
            }
        }
        RgbFrame {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn identity_warp_reproduces_pixels_and_rotation_maps_back() {
        let img = gradient(64, 48);
        let pyr = Pyramid::new(gradient(64, 48));
        let crop = pyr.warp_rgb(&Affine([[1.0, 0.0, 8.0], [0.0, 1.0, 4.0]]), 32);
        assert_eq!(
            &crop.data[..3],
            &img.data[(4 * 64 + 8) * 3..(4 * 64 + 8) * 3 + 3]
        );
        for q in 0..4 {
            let (turned, back) = rotate(&img, q);
            // Pixel centre (x+0.5, y+0.5) of the turned frame lands on the same colour.
            let (x, y) = (5usize, 9usize);
            let p = back.apply([x as f64 + 0.5, y as f64 + 0.5]);
            let (ox, oy) = (p[0].floor() as usize, p[1].floor() as usize);
            let t = (y * turned.width as usize + x) * 3;
            let o = (oy * 64 + ox) * 3;
            assert_eq!(&turned.data[t..t + 3], &img.data[o..o + 3], "turn {q}");
        }
    }

    #[test]
    fn roi_map_centres_and_rotates() {
        let m = roi_map([100.0, 50.0], 40.0, std::f64::consts::FRAC_PI_2, 192);
        let c = m.apply([96.0, 96.0]);
        assert!((c[0] - 100.0).abs() < 1e-9 && (c[1] - 50.0).abs() < 1e-9);
        let right = m.apply([192.0, 96.0]); // crop x axis points down the frame at 90°
        assert!(
            (right[0] - 100.0).abs() < 1e-9 && (right[1] - 70.0).abs() < 1e-9,
            "{right:?}"
        );
    }
}
