//! Image warps shared by training, XSeg and merge: DeepFaceLab's random transform and random
//! warp (core/imagelib/warp.py `gen_warp_params`), bilinear plane sampling, HSV shifts, convex
//! hulls and their fill, and a Gaussian blur, on `r × r` planes.

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use crate::geometry::Affine;

/// Ranges of DFL's random transform (`gen_warp_params`).
#[derive(Debug, Clone, Copy)]
pub struct TransformRanges {
    /// Rotation within ± this many degrees.
    pub rotation_deg: f64,
    /// Scale within 1 ± this.
    pub scale: f64,
    /// Shift within ± this fraction of the side, each axis.
    pub shift: f64,
    /// Mirror with this probability (None: never, and no draw is made).
    pub flip: Option<f64>,
}

/// A random face-pixel → output-pixel transform of an `r`-pixel square: rotation and scale
/// about the centre, then shift (DFL `getRotationMatrix2D`), then an optional mirror. Draws
/// angle, scale, x shift, y shift, flip, in that order.
pub fn random_transform(r: usize, rng: &mut impl Rng, ranges: TransformRanges) -> Affine {
    let rf = r as f64;
    let angle = rng
        .random_range(-ranges.rotation_deg..=ranges.rotation_deg)
        .to_radians();
    let scale = 1.0 + rng.random_range(-ranges.scale..=ranges.scale);
    let (tx, ty) = (
        rng.random_range(-ranges.shift..=ranges.shift) * rf,
        rng.random_range(-ranges.shift..=ranges.shift) * rf,
    );
    let flip = ranges.flip.is_some_and(|p| rng.random_bool(p));
    let c = rf / 2.0;
    let about_centre = Affine::similarity(scale, angle, 0.0, 0.0);
    let moved = about_centre.apply([c, c]);
    let to_out = Affine([
        [
            about_centre.0[0][0],
            about_centre.0[0][1],
            c - moved[0] + tx,
        ],
        [
            about_centre.0[1][0],
            about_centre.0[1][1],
            c - moved[1] + ty,
        ],
    ]);
    if flip {
        Affine([[-1.0, 0.0, rf - 1.0], [0.0, 1.0, 0.0]]).then_after(&to_out)
    } else {
        to_out
    }
}

/// DFL's random warp: a coarse grid (cell w/2, w/4 or w/8) whose inner points move by
/// N(0,1)·0.24·cell, interpolated smoothly over the image.
pub struct WarpGrid {
    cell: f64,
    points: usize,
    dx: Vec<f64>,
    dy: Vec<f64>,
}

impl WarpGrid {
    /// A random grid for an `r`-pixel square.
    pub fn random(r: usize, rng: &mut impl Rng) -> WarpGrid {
        let cell = (r >> rng.random_range(1..=3usize)).max(1);
        let points = r / cell + 1;
        let mut dx = vec![0.0; points * points];
        let mut dy = vec![0.0; points * points];
        for gy in 1..points.saturating_sub(1) {
            for gx in 1..points - 1 {
                let n1: f64 = StandardNormal.sample(rng);
                let n2: f64 = StandardNormal.sample(rng);
                dx[gy * points + gx] = n1 * cell as f64 * 0.24;
                dy[gy * points + gx] = n2 * cell as f64 * 0.24;
            }
        }
        WarpGrid {
            cell: cell as f64,
            points,
            dx,
            dy,
        }
    }

    /// The point moved by the grid's displacement at that point (bilinear between grid points).
    pub fn displace(&self, p: [f64; 2]) -> [f64; 2] {
        let last = (self.points - 1) as f64;
        let gx = (p[0] / self.cell).clamp(0.0, last);
        let gy = (p[1] / self.cell).clamp(0.0, last);
        let (x0, y0) = (
            (gx.floor() as usize).min(self.points - 2),
            (gy.floor() as usize).min(self.points - 2),
        );
        let (fx, fy) = (gx - x0 as f64, gy - y0 as f64);
        let at = |v: &[f64], x: usize, y: usize| v[y * self.points + x];
        let lerp = |v: &[f64]| {
            let top = at(v, x0, y0) * (1.0 - fx) + at(v, x0 + 1, y0) * fx;
            let bottom = at(v, x0, y0 + 1) * (1.0 - fx) + at(v, x0 + 1, y0 + 1) * fx;
            top * (1.0 - fy) + bottom * fy
        };
        [p[0] + lerp(&self.dx), p[1] + lerp(&self.dy)]
    }
}

/// `plane` (`r × r`) resampled through `from_out` (output pixel → source pixel, pixel centres at
/// integers), bilinear, 0 outside.
pub fn transform_plane(plane: &[f32], r: usize, from_out: &Affine) -> Vec<f32> {
    let mut out = Vec::with_capacity(r * r);
    for y in 0..r {
        for x in 0..r {
            out.push(sample_plane(
                plane,
                r,
                from_out.apply([x as f64, y as f64]),
                false,
            ));
        }
    }
    out
}

/// Bilinear sample of an `r × r` plane at pixel-index coordinates: border replicated
/// (`replicate`) or 0 outside.
pub fn sample_plane(plane: &[f32], r: usize, p: [f64; 2], replicate: bool) -> f32 {
    let max = (r - 1) as f64;
    if !replicate && (p[0] < -1.0 || p[1] < -1.0 || p[0] > max + 1.0 || p[1] > max + 1.0) {
        return 0.0;
    }
    let (x0, y0) = (p[0].floor(), p[1].floor());
    let (fx, fy) = ((p[0] - x0) as f32, (p[1] - y0) as f32);
    let at = |x: f64, y: f64| {
        if replicate {
            plane[y.clamp(0.0, max) as usize * r + x.clamp(0.0, max) as usize]
        } else if x < 0.0 || y < 0.0 || x > max || y > max {
            0.0
        } else {
            plane[y as usize * r + x as usize]
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Bilinear RGB sample with border replicate, in [0, 1].
pub fn sample_rgb(rgb: &[u8], r: usize, p: [f64; 2]) -> [f32; 3] {
    let max = (r - 1) as f64;
    let (x, y) = (p[0].clamp(0.0, max), p[1].clamp(0.0, max));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(r - 1), (y0 + 1).min(r - 1));
    let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
    let px = |x: usize, y: usize, c: usize| rgb[(y * r + x) * 3 + c] as f32;
    let mut out = [0f32; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = px(x0, y0, c) * (1.0 - fx) + px(x1, y0, c) * fx;
        let bottom = px(x0, y1, c) * (1.0 - fx) + px(x1, y1, c) * fx;
        *o = (top * (1.0 - fy) + bottom * fy) / 255.0;
    }
    out
}

/// Shifts hue (turns), saturation and value, clamped.
pub fn shift_hsv(rgb: [f32; 3], (dh, ds, dv): (f64, f64, f64)) -> [f32; 3] {
    let [r, g, b] = rgb.map(|v| v as f64);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let mut h = if d == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    } / 6.0;
    let s = if max == 0.0 { 0.0 } else { d / max };
    h = (h + dh).rem_euclid(1.0);
    let (s, v) = ((s + ds).clamp(0.0, 1.0), (max + dv).clamp(0.0, 1.0));
    let c = v * s;
    let hp = h * 6.0;
    let x = c * (1.0 - (hp.rem_euclid(2.0) - 1.0).abs());
    let (r1, g1, b1) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [(r1 + m) as f32, (g1 + m) as f32, (b1 + m) as f32]
}

/// Convex hull (Andrew's monotone chain), counter-clockwise in image axes. Written here: a
/// dozen lines, not worth a geometry crate.
pub fn convex_hull(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut p: Vec<[f64; 2]> = points.to_vec();
    p.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut hull: Vec<[f64; 2]> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[f64; 2]>> = if pass == 0 {
            Box::new(p.iter())
        } else {
            Box::new(p.iter().rev())
        };
        for &q in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0
            {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}

/// Rasterises a convex polygon: 1 where the pixel centre is inside (or on an edge).
pub fn fill_convex(poly: &[[f64; 2]], r: usize) -> Vec<f32> {
    let mut out = vec![0f32; r * r];
    if poly.len() < 3 {
        return out;
    }
    let n = poly.len();
    for y in 0..r {
        for x in 0..r {
            let (px, py) = (x as f64, y as f64);
            let (mut pos, mut neg) = (false, false);
            for i in 0..n {
                let (a, b) = (poly[i], poly[(i + 1) % n]);
                let c = (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0]);
                pos |= c > 0.0;
                neg |= c < 0.0;
            }
            if !(pos && neg) {
                out[y * r + x] = 1.0;
            }
        }
    }
    out
}

/// Separable Gaussian blur with edge clamping (σ in pixels, kernel ±3σ).
pub fn gaussian_blur(plane: &[f32], r: usize, sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let clamp = |v: isize| v.clamp(0, r as isize - 1) as usize;
    let mut tmp = vec![0f32; r * r];
    for y in 0..r {
        for x in 0..r {
            tmp[y * r + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, w)| w * plane[y * r + clamp(x as isize + k as isize - radius)])
                .sum();
        }
    }
    let mut out = vec![0f32; r * r];
    for y in 0..r {
        for x in 0..r {
            out[y * r + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, w)| w * tmp[clamp(y as isize + k as isize - radius) * r + x])
                .sum();
        }
    }
    out
}
