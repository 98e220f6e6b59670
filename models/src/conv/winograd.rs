//! 3×3 stride-1 correlations by Winograd's minimal filtering F(4×4, 3×3) (Lavin & Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2015): each 4×4 output tile is
//! `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d Bᵀᵀ)] A` over its 6×6 input patch `d`, so the channel sums become 36
//! GEMMs `M_p[Cout, N] = U_p[Cout, Cin] · V_p[Cin, N]` (N = tiles of the whole batch) with 4×
//! fewer multiplications than the direct 3×3 sum. SAEHD's decoder is almost all 3×3 stride-1
//! convolutions, whose forward and input gradient go through here (conv_layers bench).
//! Transform matrices: the interpolation points 0, ±1, ±2, ∞ from the paper's F(4×4, 3×3).

use rayon::prelude::*;

use super::{gemm_into, scratch};

/// Winograd positions per tile: the 6×6 transformed patch.
const POSITIONS: usize = 36;
/// Output pixels per tile side.
const TILE: usize = 4;
/// Input pixels per tile side: `TILE + 3 − 1`.
const PATCH: usize = 6;

/// Sizes of one correlation `y[B, Cout, Ho, Wo] = Σ_cin Σ_{i,j<3} x[b, cin, oy+i−pt, ox+j−pl]
/// · k[cout, cin, i, j]`, zero outside `x`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Correlation {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub ho: usize,
    pub wo: usize,
    pub pt: usize,
    pub pl: usize,
}

impl Correlation {
    fn tiles_y(&self) -> usize {
        self.ho.div_ceil(TILE)
    }

    fn tiles_x(&self) -> usize {
        self.wo.div_ceil(TILE)
    }

    /// Tiles of the whole batch: the GEMMs' `N`.
    fn tiles(&self) -> usize {
        self.batch * self.tiles_y() * self.tiles_x()
    }

    /// `y` `[B, Cout, Ho, Wo]` from `x` `[B, Cin, H, W]` and a kernel from [`kernel_forward`]
    /// or [`kernel_input_grad`].
    pub fn run(&self, x: &[f32], kernel: &[f32], y: &mut [f32]) {
        let n = self.tiles();
        // V [Cin, 36, N]
        let mut v = scratch::take(self.cin * POSITIONS * n);
        self.transform_input(x, &mut v);
        // M [Cout, 36, N]; the GEMMs overwrite it (they never read the destination).
        let mut m = scratch::take(self.cout * POSITIONS * n);
        let m_at = SendPtr(m.as_mut_ptr());
        let (cin, cout) = (self.cin, self.cout);
        (0..POSITIONS).into_par_iter().for_each(|p| {
            let m_at = &m_at;
            // M_p [Cout, N] = U_p [Cout, Cin] · V_p [Cin, N]
            // SAFETY: position p writes only M[:, p, :] (rows of n floats, row stride 36·n),
            // disjoint from every other position's; U_p reads rows of cin floats at row stride
            // 36·cin inside kernel;
            // V_p reads rows of n floats at row stride 36·n inside v.
            unsafe {
                gemm_into(
                    (cout, n, cin),
                    (m_at.0.add(p * n), 1, (POSITIONS * n) as isize),
                    (kernel.as_ptr().add(p * cin), 1, (POSITIONS * cin) as isize),
                    (v.as_ptr().add(p * n), 1, (POSITIONS * n) as isize),
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
        self.transform_output(&m, y);
        scratch::give(v);
        scratch::give(m);
    }

    /// Every 6×6 input patch (zero outside the image) as `Bᵀ d B`, into `v` `[Cin, 36, N]`.
    /// One row of tiles at a time, vectorised across the row: `Bᵀ` over the patch rows on whole
    /// padded image rows, then `B` within each tile on the rows split by tile column phase.
    fn transform_input(&self, x: &[f32], v: &mut [f32]) {
        let (ty_n, tx_n, n) = (self.tiles_y(), self.tiles_x(), self.tiles());
        let hw = self.h * self.w;
        // Padded row length: every tile's 6 columns, plus the phases' one spare tile.
        let wp = TILE * (tx_n + 1);
        v.par_chunks_mut(POSITIONS * n)
            .enumerate()
            .for_each(|(c, vc)| {
                let mut rows = vec![0f32; PATCH * wp];
                let mut t = vec![0f32; PATCH * wp];
                let mut phases = vec![0f32; TILE * (tx_n + 1)];
                for b in 0..self.batch {
                    let plane = &x[(b * self.cin + c) * hw..][..hw];
                    for ty in 0..ty_n {
                        // rows [6, wp]: input rows ty·4 − pt … +5, columns from −pl, 0 outside
                        for (r, dst) in rows.chunks_exact_mut(wp).enumerate() {
                            dst.fill(0.0);
                            let Some(y) =
                                (ty * TILE + r).checked_sub(self.pt).filter(|&y| y < self.h)
                            else {
                                continue;
                            };
                            let src = &plane[y * self.w..(y + 1) * self.w];
                            let len = self.w.min(wp - self.pl);
                            dst[self.pl..self.pl + len].copy_from_slice(&src[..len]);
                        }
                        // t [6, wp] = Bᵀ · rows
                        let r: [&[f32]; PATCH] =
                            std::array::from_fn(|i| &rows[i * wp..(i + 1) * wp]);
                        for (i, out) in t.chunks_exact_mut(wp).enumerate() {
                            combine_input(i, r, out);
                        }
                        // Within each tile: columns 4·tx + j of each row of t, j < 6, by B.
                        let at = (b * ty_n + ty) * tx_n;
                        for (i, row) in t.chunks_exact(wp).enumerate() {
                            // phases[k][tx] = row[4·tx + k]
                            for (tx, four) in row.chunks_exact(TILE).enumerate() {
                                for (k, value) in four.iter().enumerate() {
                                    phases[k * (tx_n + 1) + tx] = *value;
                                }
                            }
                            let ph =
                                |k: usize, shift: usize| &phases[k * (tx_n + 1) + shift..][..tx_n];
                            let cols: [&[f32]; PATCH] =
                                [ph(0, 0), ph(1, 0), ph(2, 0), ph(3, 0), ph(0, 1), ph(1, 1)];
                            for j in 0..PATCH {
                                let p = i * PATCH + j;
                                combine_input(j, cols, &mut vc[p * n + at..][..tx_n]);
                            }
                        }
                    }
                }
            });
    }

    /// Every tile's `Aᵀ m A` from `m` `[Cout, 36, N]`, into `y` `[B, Cout, Ho, Wo]`, one row of
    /// tiles at a time, vectorised across the row.
    fn transform_output(&self, m: &[f32], y: &mut [f32]) {
        let (ty_n, tx_n, n) = (self.tiles_y(), self.tiles_x(), self.tiles());
        y.par_chunks_mut(self.ho * self.wo)
            .enumerate()
            .for_each(|(plane_index, plane)| {
                let (b, co) = (plane_index / self.cout, plane_index % self.cout);
                let mc = &m[co * POSITIONS * n..(co + 1) * POSITIONS * n];
                // t [6 rows, 4 columns, tx_n], then o [4, 4, tx_n]
                let mut t = vec![0f32; PATCH * TILE * tx_n];
                let mut o = vec![0f32; TILE * TILE * tx_n];
                for ty in 0..ty_n {
                    let at = (b * ty_n + ty) * tx_n;
                    // Aᵀ over the 6 columns of each patch row.
                    for r in 0..PATCH {
                        let cols: [&[f32]; PATCH] =
                            std::array::from_fn(|j| &mc[(r * PATCH + j) * n + at..][..tx_n]);
                        for k in 0..TILE {
                            combine_output(k, cols, &mut t[(r * TILE + k) * tx_n..][..tx_n]);
                        }
                    }
                    // Aᵀ over the 6 patch rows, per output column.
                    for k in 0..TILE {
                        let rows: [&[f32]; PATCH] =
                            std::array::from_fn(|r| &t[(r * TILE + k) * tx_n..][..tx_n]);
                        for i in 0..TILE {
                            combine_output(i, rows, &mut o[(i * TILE + k) * tx_n..][..tx_n]);
                        }
                    }
                    let y0 = ty * TILE;
                    for i in 0..TILE.min(self.ho - y0) {
                        let dst = &mut plane[(y0 + i) * self.wo..][..self.wo];
                        for k in 0..TILE {
                            let src = &o[(i * TILE + k) * tx_n..][..tx_n];
                            for (d, s) in dst.iter_mut().skip(k).step_by(TILE).zip(src) {
                                *d = *s;
                            }
                        }
                    }
                }
            });
    }

    /// `dW` `[Cout, Cin, 3, 3]` of this correlation given `dy` `[B, Cout, Ho, Wo]`: the
    /// gradient of `Aᵀ [(G g Gᵀ) ⊙ V] A` is `Gᵀ [(A dY Aᵀ) ⊙ V] G`, so per position
    /// `dU_p[Cout, Cin] = (A dY Aᵀ)_p [Cout, N] · V_pᵀ [N, Cin]`, summed over the batch's tiles.
    pub fn kernel_grad(&self, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let n = self.tiles();
        let (cin, cout) = (self.cin, self.cout);
        // V [Cin, 36, N]
        let mut v = scratch::take(cin * POSITIONS * n);
        self.transform_input(x, &mut v);
        // E [Cout, 36, N] = A dY Aᵀ per tile
        let mut e = scratch::take(cout * POSITIONS * n);
        self.transform_output_grad(dy, &mut e);
        // dU [Cout, 36, Cin]; the GEMMs overwrite it.
        let mut du = scratch::take(cout * POSITIONS * cin);
        let du_at = SendPtr(du.as_mut_ptr());
        (0..POSITIONS).into_par_iter().for_each(|p| {
            let du_at = &du_at;
            // dU_p [Cout, Cin] = E_p [Cout, N] · V_pᵀ [N, Cin]
            // SAFETY: position p writes only dU[:, p, :] (rows of cin floats, row stride
            // 36·cin), disjoint from every other position's; E_p reads rows of n floats at row
            // stride 36·n inside e; V_pᵀ reads v's rows of n floats (row stride 36·n) as columns.
            unsafe {
                gemm_into(
                    (cout, cin, n),
                    (du_at.0.add(p * cin), 1, (POSITIONS * cin) as isize),
                    (e.as_ptr().add(p * n), 1, (POSITIONS * n) as isize),
                    (v.as_ptr().add(p * n), (POSITIONS * n) as isize, 1),
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
        // dW[o, i] = Gᵀ dU[o, :, i] G
        let mut dw = vec![0f32; cout * cin * 9];
        dw.par_chunks_mut(cin * 9).enumerate().for_each(|(o, dwo)| {
            let duo = &du[o * POSITIONS * cin..(o + 1) * POSITIONS * cin];
            for (i, g) in dwo.chunks_exact_mut(9).enumerate() {
                let u: [f32; POSITIONS] = std::array::from_fn(|p| duo[p * cin + i]);
                g.copy_from_slice(&kernel_tile_grad(&u));
            }
        });
        scratch::give(v);
        scratch::give(e);
        scratch::give(du);
        dw
    }

    /// Every 4×4 tile of `dy` (zero past the output) as `A dY Aᵀ`, into `e` `[Cout, 36, N]`.
    fn transform_output_grad(&self, dy: &[f32], e: &mut [f32]) {
        let (ty_n, tx_n, n) = (self.tiles_y(), self.tiles_x(), self.tiles());
        let plane_len = self.ho * self.wo;
        let wp = TILE * tx_n;
        e.par_chunks_mut(POSITIONS * n)
            .enumerate()
            .for_each(|(co, ec)| {
                let mut rows = vec![0f32; TILE * wp];
                let mut t = vec![0f32; PATCH * wp];
                let mut phases = vec![0f32; TILE * tx_n];
                for b in 0..self.batch {
                    let plane = &dy[(b * self.cout + co) * plane_len..][..plane_len];
                    for ty in 0..ty_n {
                        for (r, dst) in rows.chunks_exact_mut(wp).enumerate() {
                            let y = ty * TILE + r;
                            if y < self.ho {
                                dst[..self.wo].copy_from_slice(&plane[y * self.wo..][..self.wo]);
                                dst[self.wo..].fill(0.0);
                            } else {
                                dst.fill(0.0);
                            }
                        }
                        // t [6, wp] = A · rows
                        let r: [&[f32]; TILE] =
                            std::array::from_fn(|i| &rows[i * wp..(i + 1) * wp]);
                        for (i, out) in t.chunks_exact_mut(wp).enumerate() {
                            combine_grad(i, r, out);
                        }
                        let at = (b * ty_n + ty) * tx_n;
                        for (i, row) in t.chunks_exact(wp).enumerate() {
                            for (tx, four) in row.chunks_exact(TILE).enumerate() {
                                for (k, value) in four.iter().enumerate() {
                                    phases[k * tx_n + tx] = *value;
                                }
                            }
                            let cols: [&[f32]; TILE] =
                                std::array::from_fn(|k| &phases[k * tx_n..(k + 1) * tx_n]);
                            for j in 0..PATCH {
                                let p = i * PATCH + j;
                                combine_grad(j, cols, &mut ec[p * n + at..][..tx_n]);
                            }
                        }
                    }
                }
            });
    }
}

/// Row `i` of `Bᵀ` applied across slices: `out[x] = Σ_r Bᵀ[i][r] · d[r][x]`.
#[inline(always)]
fn combine_input(i: usize, d: [&[f32]; PATCH], out: &mut [f32]) {
    let len = out.len();
    let d: [&[f32]; PATCH] = std::array::from_fn(|r| &d[r][..len]);
    match i {
        0 => {
            for x in 0..len {
                out[x] = 4.0 * d[0][x] - 5.0 * d[2][x] + d[4][x];
            }
        }
        1 => {
            for x in 0..len {
                out[x] = -4.0 * (d[1][x] + d[2][x]) + d[3][x] + d[4][x];
            }
        }
        2 => {
            for x in 0..len {
                out[x] = 4.0 * (d[1][x] - d[2][x]) - d[3][x] + d[4][x];
            }
        }
        3 => {
            for x in 0..len {
                out[x] = 2.0 * (d[3][x] - d[1][x]) - d[2][x] + d[4][x];
            }
        }
        4 => {
            for x in 0..len {
                out[x] = 2.0 * (d[1][x] - d[3][x]) - d[2][x] + d[4][x];
            }
        }
        _ => {
            for x in 0..len {
                out[x] = 4.0 * d[1][x] - 5.0 * d[3][x] + d[5][x];
            }
        }
    }
}

/// Row `i` of `Aᵀ` applied across slices: `out[x] = Σ_r Aᵀ[i][r] · m[r][x]`.
#[inline(always)]
fn combine_output(i: usize, m: [&[f32]; PATCH], out: &mut [f32]) {
    let len = out.len();
    let m: [&[f32]; PATCH] = std::array::from_fn(|r| &m[r][..len]);
    match i {
        0 => {
            for x in 0..len {
                out[x] = m[0][x] + m[1][x] + m[2][x] + m[3][x] + m[4][x];
            }
        }
        1 => {
            for x in 0..len {
                out[x] = m[1][x] - m[2][x] + 2.0 * (m[3][x] - m[4][x]);
            }
        }
        2 => {
            for x in 0..len {
                out[x] = m[1][x] + m[2][x] + 4.0 * (m[3][x] + m[4][x]);
            }
        }
        _ => {
            for x in 0..len {
                out[x] = m[1][x] - m[2][x] + 8.0 * (m[3][x] - m[4][x]) + m[5][x];
            }
        }
    }
}

/// A raw pointer the 36 position tasks share; each writes its own disjoint positions.
struct SendPtr(*mut f32);
// SAFETY: the tasks holding it write disjoint elements (see `Correlation::run`).
unsafe impl Sync for SendPtr {}
// SAFETY: as above.
unsafe impl Send for SendPtr {}

/// `G g` on one column of 3: the kernel transform's rows.
#[inline(always)]
fn kernel_rows(g: [f32; 3]) -> [f32; PATCH] {
    const SIXTH: f32 = 1.0 / 6.0;
    const TWELFTH: f32 = 1.0 / 12.0;
    const TWENTY_FOURTH: f32 = 1.0 / 24.0;
    [
        0.25 * g[0],
        -SIXTH * (g[0] + g[1] + g[2]),
        -SIXTH * (g[0] - g[1] + g[2]),
        TWENTY_FOURTH * g[0] + TWELFTH * g[1] + SIXTH * g[2],
        TWENTY_FOURTH * g[0] - TWELFTH * g[1] + SIXTH * g[2],
        g[2],
    ]
}

/// `G g Gᵀ` of one 3×3 kernel (row-major in and out).
#[inline(always)]
fn kernel_tile(g: [f32; 9]) -> [f32; POSITIONS] {
    let t: [[f32; PATCH]; 3] =
        std::array::from_fn(|col| kernel_rows([g[col], g[3 + col], g[6 + col]]));
    let rows: [[f32; PATCH]; PATCH] =
        std::array::from_fn(|r| kernel_rows([t[0][r], t[1][r], t[2][r]]));
    std::array::from_fn(|p| rows[p / PATCH][p % PATCH])
}

/// `U` `[Cout, 36, Cin]` from `kernel(o, i)`, the 3×3 kernel `[9]` from input channel `i` to
/// output channel `o`; output channels across the cores.
fn transform_kernel(
    cout: usize,
    cin: usize,
    kernel: impl Fn(usize, usize) -> [f32; 9] + Sync,
) -> Vec<f32> {
    // Every element is written below.
    let mut u = scratch::take(cout * POSITIONS * cin);
    u.par_chunks_mut(POSITIONS * cin)
        .enumerate()
        .for_each(|(o, uo)| {
            for i in 0..cin {
                for (p, value) in kernel_tile(kernel(o, i)).into_iter().enumerate() {
                    uo[p * cin + i] = value;
                }
            }
        });
    u
}

/// `U` `[Co, 36, Ci]` for the forward correlation with `w` `[Co, Ci, 3, 3]`.
pub(super) fn kernel_forward(w: &[f32], co: usize, ci: usize) -> Vec<f32> {
    transform_kernel(co, ci, |o, i| {
        std::array::from_fn(|k| w[(o * ci + i) * 9 + k])
    })
}

/// `U` `[Ci, 36, Co]` for the input gradient: the correlation of `dY` with `w` `[Co, Ci, 3, 3]`
/// turned 180° and its channel axes swapped.
pub(super) fn kernel_input_grad(w: &[f32], co: usize, ci: usize) -> Vec<f32> {
    transform_kernel(ci, co, |i, o| {
        std::array::from_fn(|k| w[(o * ci + i) * 9 + 8 - k])
    })
}

/// Row `r` of `A` (6×4) applied across slices: `out[x] = Σ_k Aᵀ[k][r] · q[k][x]`.
#[inline(always)]
fn combine_grad(r: usize, q: [&[f32]; TILE], out: &mut [f32]) {
    let len = out.len();
    let q: [&[f32]; TILE] = std::array::from_fn(|k| &q[k][..len]);
    match r {
        0 => out.copy_from_slice(q[0]),
        1 => {
            for x in 0..len {
                out[x] = q[0][x] + q[1][x] + q[2][x] + q[3][x];
            }
        }
        2 => {
            for x in 0..len {
                out[x] = q[0][x] - q[1][x] + q[2][x] - q[3][x];
            }
        }
        3 => {
            for x in 0..len {
                out[x] = q[0][x] + 2.0 * q[1][x] + 4.0 * q[2][x] + 8.0 * q[3][x];
            }
        }
        4 => {
            for x in 0..len {
                out[x] = q[0][x] - 2.0 * q[1][x] + 4.0 * q[2][x] - 8.0 * q[3][x];
            }
        }
        _ => out.copy_from_slice(q[3]),
    }
}

/// `Gᵀ u` on one column of 6: the kernel gradient's rows (the adjoint of [`kernel_rows`]).
#[inline(always)]
fn kernel_grad_rows(u: [f32; PATCH]) -> [f32; 3] {
    const SIXTH: f32 = 1.0 / 6.0;
    const TWELFTH: f32 = 1.0 / 12.0;
    const TWENTY_FOURTH: f32 = 1.0 / 24.0;
    [
        0.25 * u[0] - SIXTH * (u[1] + u[2]) + TWENTY_FOURTH * (u[3] + u[4]),
        SIXTH * (u[2] - u[1]) + TWELFTH * (u[3] - u[4]),
        SIXTH * (u[3] + u[4] - u[1] - u[2]) + u[5],
    ]
}

/// `Gᵀ u G` of one 6×6 tile: the 3×3 kernel gradient (row-major in and out).
#[inline(always)]
fn kernel_tile_grad(u: &[f32; POSITIONS]) -> [f32; 9] {
    let t: [[f32; 3]; PATCH] =
        std::array::from_fn(|col| kernel_grad_rows(std::array::from_fn(|r| u[r * PATCH + col])));
    let rows: [[f32; 3]; 3] =
        std::array::from_fn(|i| kernel_grad_rows(std::array::from_fn(|col| t[col][i])));
    std::array::from_fn(|k| rows[k / 3][k % 3])
}
