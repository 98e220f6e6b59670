//! Mask planes and the merge mask: which mask the face is blended through (DFL's mask modes),
//! and DFL's post-processing of it in the face's own space — erode/dilate with an elliptic kernel, a
//! zeroed band so it fades to zero inside the predicted square, then a Gaussian blur.

pub use faceswap_options::MaskMode;

/// A single-channel image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width × height` values.
    pub data: Vec<f32>,
}

impl Plane {
    /// All `value`.
    pub fn filled(width: usize, height: usize, value: f32) -> Plane {
        Plane {
            width,
            height,
            data: vec![value; width * height],
        }
    }

    /// Bilinear sample at continuous coordinates (pixel centres at +0.5); zero outside.
    #[inline]
    pub fn sample(&self, x: f32, y: f32) -> f32 {
        let (x, y) = (x - 0.5, y - 0.5);
        let (xf, yf) = (x.floor(), y.floor());
        let (x0, y0) = (xf as isize, yf as isize);
        let (fx, fy) = (x - xf, y - yf);
        let (w, h) = (self.width as isize, self.height as isize);
        let at = |xx: isize, yy: isize| {
            if xx < 0 || yy < 0 || xx >= w || yy >= h {
                0.0
            } else {
                self.data[(yy * w + xx) as usize]
            }
        };
        let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
        let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// Resized to `size`×`size` by bilinear sampling (edge values held).
    pub fn resized(&self, size: usize) -> Plane {
        if self.width == size && self.height == size {
            return self.clone();
        }
        let (sx, sy) = (
            self.width as f32 / size as f32,
            self.height as f32 / size as f32,
        );
        let mut data = Vec::with_capacity(size * size);
        for y in 0..size {
            for x in 0..size {
                let fx = ((x as f32 + 0.5) * sx).clamp(0.5, self.width as f32 - 0.5);
                let fy = ((y as f32 + 0.5) * sy).clamp(0.5, self.height as f32 - 0.5);
                data.push(self.sample(fx, fy));
            }
        }
        Plane {
            width: size,
            height: size,
            data,
        }
    }
}

/// Half-widths of an elliptic (here circular) kernel of side `k`, per row offset, as OpenCV's
/// `getStructuringElement(MORPH_ELLIPSE, (k, k))` draws it.
fn ellipse_rows(k: usize) -> Vec<(isize, usize)> {
    let r = k / 2;
    let rf = r as f64;
    let mut rows = Vec::with_capacity(2 * r + 1);
    for dy in -(r as isize)..=(r as isize) {
        let t = dy as f64;
        let half = if r == 0 {
            0
        } else {
            (rf * (1.0 - (t / rf).powi(2)).max(0.0).sqrt()).round() as usize
        };
        rows.push((dy, half));
    }
    rows
}

/// Running min (erode) or max (dilate) along rows over `[x − half, x + half]`, van Herk /
/// Gil–Werman: O(1) per pixel whatever the width. Outside the plane counts as `pad`.
fn running_extreme(p: &Plane, half: usize, take_min: bool, pad: f32) -> Vec<f32> {
    let pick = |a: f32, b: f32| if take_min { a.min(b) } else { a.max(b) };
    let (w, h) = (p.width, p.height);
    let win = 2 * half + 1;
    let mut out = vec![0f32; w * h];
    let n = w + 2 * half;
    let blocks = n.div_ceil(win) * win;
    let mut padded = vec![pad; blocks];
    let mut fwd = vec![0f32; blocks];
    let mut bwd = vec![0f32; blocks];
    for y in 0..h {
        padded[half..half + w].copy_from_slice(&p.data[y * w..(y + 1) * w]);
        for b in (0..blocks).step_by(win) {
            fwd[b] = padded[b];
            for i in b + 1..b + win {
                fwd[i] = pick(fwd[i - 1], padded[i]);
            }
            bwd[b + win - 1] = padded[b + win - 1];
            for i in (b..b + win - 1).rev() {
                bwd[i] = pick(bwd[i + 1], padded[i]);
            }
        }
        for x in 0..w {
            // Window [x, x + win − 1] in padded coordinates.
            out[y * w + x] = pick(bwd[x], fwd[x + win - 1]);
        }
    }
    out
}

/// Grey erosion (`k > 0`) or dilation (`k < 0`) with an elliptic kernel of side |k|, zero outside.
pub fn erode_dilate(p: &Plane, k: i32) -> Plane {
    if k.unsigned_abs() < 2 {
        return p.clone();
    }
    let take_min = k > 0;
    let rows = ellipse_rows(k.unsigned_abs() as usize);
    let mut cache: Vec<(usize, Vec<f32>)> = Vec::new();
    let (w, h) = (p.width, p.height);
    let init = if take_min { f32::MAX } else { f32::MIN };
    let mut out = vec![init; w * h];
    for &(dy, half) in &rows {
        if !cache.iter().any(|(hh, _)| *hh == half) {
            cache.push((half, running_extreme(p, half, take_min, 0.0)));
        }
        let Some((_, line)) = cache.iter().find(|(hh, _)| *hh == half) else {
            continue;
        };
        for y in 0..h {
            let sy = y as isize + dy;
            let row = if sy < 0 || sy >= h as isize {
                None
            } else {
                Some(&line[sy as usize * w..(sy as usize + 1) * w])
            };
            let o = &mut out[y * w..(y + 1) * w];
            match row {
                Some(r) => {
                    for (a, b) in o.iter_mut().zip(r) {
                        *a = if take_min { a.min(*b) } else { a.max(*b) };
                    }
                }
                None => {
                    for a in o.iter_mut() {
                        *a = if take_min { a.min(0.0) } else { a.max(0.0) };
                    }
                }
            }
        }
        // Rows of one half-width are reused by the mirrored offset; memory stays bounded.
        if cache.len() > 8 {
            cache.remove(0);
        }
    }
    Plane {
        width: w,
        height: h,
        data: out,
    }
}

/// OpenCV's σ for a Gaussian kernel of side `k` given σ = 0.
pub fn opencv_sigma(k: usize) -> f32 {
    0.3 * ((k as f32 - 1.0) * 0.5 - 1.0) + 0.8
}

/// Separable Gaussian blur with a kernel of side `k` (odd) and OpenCV's σ; zero outside.
pub fn gaussian_blur(p: &Plane, k: usize) -> Plane {
    if k < 3 {
        return p.clone();
    }
    let half = (k / 2) as isize;
    let sigma = opencv_sigma(k);
    let kernel: Vec<f32> = (-half..=half)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|v| v / total).collect();
    let (w, h) = (p.width, p.height);
    // Rows: a zero-padded copy of each row, then a dot product per output pixel.
    let mut tmp = vec![0f32; w * h];
    let mut padded = vec![0f32; w + 2 * half as usize];
    for y in 0..h {
        padded[half as usize..half as usize + w].copy_from_slice(&p.data[y * w..(y + 1) * w]);
        for x in 0..w {
            tmp[y * w + x] = padded[x..x + k]
                .iter()
                .zip(&kernel)
                .map(|(a, b)| a * b)
                .sum();
        }
    }
    // Columns, accumulated row by row so memory is walked in order.
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        let o = &mut out[y * w..(y + 1) * w];
        for (j, kv) in kernel.iter().enumerate() {
            let sy = y as isize + j as isize - half;
            if sy < 0 || sy >= h as isize {
                continue;
            }
            let r = &tmp[sy as usize * w..(sy as usize + 1) * w];
            for (a, b) in o.iter_mut().zip(r) {
                *a += kv * b;
            }
        }
    }
    Plane {
        width: w,
        height: h,
        data: out,
    }
}

/// DFL's processing of the working mask in the face's space (`merger/MergeMasked.py`): drop
/// values under 1/255, erode (`erode > 0`) or dilate (`< 0`) with an ellipse of that side, zero
/// a band of `blur / 2` along the square's edges so the blurred mask reaches zero inside the
/// predicted area, blur with an odd kernel of about `blur`, clip to [0, 1].
pub fn process(mask: &Plane, erode: i32, blur: u32) -> Plane {
    let mut m = mask.clone();
    for v in m.data.iter_mut() {
        if *v < 1.0 / 255.0 {
            *v = 0.0;
        }
    }
    m = erode_dilate(&m, erode);
    let band = (blur / 2) as usize;
    if band > 0 {
        let (w, h) = (m.width, m.height);
        for y in 0..h {
            for x in 0..w {
                if x < band || y < band || x + band >= w || y + band >= h {
                    m.data[y * w + x] = 0.0;
                }
            }
        }
    }
    if blur > 0 {
        let k = (blur + (1 - blur % 2)) as usize;
        m = gaussian_blur(&m, k);
    }
    for v in m.data.iter_mut() {
        *v = v.clamp(0.0, 1.0);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(size: usize, lo: usize, hi: usize) -> Plane {
        let mut p = Plane::filled(size, size, 0.0);
        for y in lo..hi {
            for x in lo..hi {
                p.data[y * size + x] = 1.0;
            }
        }
        p
    }

    /// Plain O(N·k²) morphology, the definition.
    fn naive(p: &Plane, k: i32) -> Plane {
        let rows = ellipse_rows(k.unsigned_abs() as usize);
        let mut out = p.clone();
        for y in 0..p.height as isize {
            for x in 0..p.width as isize {
                let mut v = if k > 0 { f32::MAX } else { f32::MIN };
                for &(dy, half) in &rows {
                    for dx in -(half as isize)..=(half as isize) {
                        let (sx, sy) = (x + dx, y + dy);
                        let s = if sx < 0
                            || sy < 0
                            || sx >= p.width as isize
                            || sy >= p.height as isize
                        {
                            0.0
                        } else {
                            p.data[(sy as usize) * p.width + sx as usize]
                        };
                        v = if k > 0 { v.min(s) } else { v.max(s) };
                    }
                }
                out.data[(y as usize) * p.width + x as usize] = v;
            }
        }
        out
    }

    #[test]
    fn morphology_matches_the_definition() {
        let mut p = square(40, 10, 30);
        for (i, v) in p.data.iter_mut().enumerate() {
            *v *= 0.5 + 0.5 * ((i * 7919) % 13) as f32 / 13.0;
        }
        for k in [3, 5, 8, 11, -3, -7, -12] {
            assert_eq!(erode_dilate(&p, k), naive(&p, k), "kernel {k}");
        }
    }

    #[test]
    fn erode_shrinks_dilate_grows_blur_fades_to_zero_at_the_edge() {
        let p = square(64, 16, 48);
        let area = |p: &Plane| p.data.iter().filter(|v| **v > 0.5).count();
        assert!(area(&erode_dilate(&p, 9)) < area(&p));
        assert!(area(&erode_dilate(&p, -9)) > area(&p));
        let full = Plane::filled(64, 64, 1.0);
        let m = process(&full, 0, 16);
        assert!(m.data[0] < 1e-3, "edge {}", m.data[0]);
        assert!(m.data[32 * 64 + 32] > 0.99);
        // Fades monotonically from the edge inwards.
        let row: Vec<f32> = (0..32).map(|x| m.data[32 * 64 + x]).collect();
        assert!(row.windows(2).all(|w| w[1] >= w[0] - 1e-6), "{row:?}");
    }

    #[test]
    fn blur_keeps_mass_and_mask_modes_parse() {
        let p = square(64, 20, 44);
        let b = gaussian_blur(&p, 9);
        let (s0, s1): (f32, f32) = (p.data.iter().sum(), b.data.iter().sum());
        assert!((s0 - s1).abs() < 1e-2 * s0);
        assert_eq!(
            "prd*dst".parse::<MaskMode>().ok(),
            Some(MaskMode::LearnedPrdTimesDst)
        );
        assert_eq!("XSeg-dst".parse::<MaskMode>().ok(), Some(MaskMode::XsegDst));
        assert!(
            "xseg-dst"
                .parse::<MaskMode>()
                .ok()
                .is_some_and(|m| m.needs_xseg())
        );
        assert_eq!("bogus".parse::<MaskMode>().ok(), None);
    }
}
