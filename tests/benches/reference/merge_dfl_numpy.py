"""DeepFaceLab's merge of one face (merger/MergeMasked.py, mode overlay, mask
learned-prd*learned-dst, colour transfer mkl-m, erode + blur), written with NumPy only, for the
Faceswap++ merge bench. OpenCV calls become NumPy: bilinear warpAffine (DFL uses bicubic),
elliptic erosion as per-row sliding minima, separable Gaussian blur; mkl follows
core/imagelib/color_transfer.py.

usage: python merge_dfl_numpy.py DIR FRAMES
DIR holds frame.u8 (H W 3), pred.f32 (R R 3), prd_mask.f32 and dst_mask.f32 (R R) and
params.txt: "H W R erode blur" then the 2x3 frame->crop matrix at R (6 numbers).
Prints one line: `ms_per_frame checksum`.
"""
import math
import sys
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

d, frames = sys.argv[1], int(sys.argv[2])
vals = open(f"{d}/params.txt").read().split()
H, W, R, ERODE, BLUR = (int(v) for v in vals[:5])
MAT = np.array([float(v) for v in vals[5:11]], dtype=np.float64).reshape(2, 3)
frame_u8 = np.fromfile(f"{d}/frame.u8", dtype=np.uint8).reshape(H, W, 3)
pred = np.fromfile(f"{d}/pred.f32", dtype=np.float32).reshape(R, R, 3)
prd_mask = np.fromfile(f"{d}/prd_mask.f32", dtype=np.float32).reshape(R, R)
dst_mask = np.fromfile(f"{d}/dst_mask.f32", dtype=np.float32).reshape(R, R)


def invert(m):
    a = np.vstack([m, [0, 0, 1]])
    return np.linalg.inv(a)[:2]


def warp_affine(img, m, w, h, inverse_map=False):
    """cv2.warpAffine, bilinear, constant 0 border. m maps src->dst unless inverse_map."""
    mi = m if inverse_map else invert(m)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    sx = mi[0, 0] * xs + mi[0, 1] * ys + mi[0, 2]
    sy = mi[1, 0] * xs + mi[1, 1] * ys + mi[1, 2]
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = sx - x0, sy - y0
    sh, sw = img.shape[:2]
    out = np.zeros((h, w) + img.shape[2:], dtype=np.float32)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xx, yy = x0 + dx, y0 + dy
            ok = (xx >= 0) & (yy >= 0) & (xx < sw) & (yy < sh)
            v = img[np.clip(yy, 0, sh - 1), np.clip(xx, 0, sw - 1)]
            wgt = (wx * wy * ok).astype(np.float32)
            out += v * (wgt[..., None] if img.ndim == 3 else wgt)
    return out


def erode_ellipse(m, k):
    r = k // 2
    out = np.full_like(m, np.inf)
    p = np.pad(m, r)
    for dy in range(-r, r + 1):
        half = int(round(r * math.sqrt(max(0.0, 1 - (dy / r) ** 2)))) if r else 0
        rows = p[r + dy : r + dy + m.shape[0]]
        win = sliding_window_view(rows, 2 * half + 1, axis=1)[:, r - half : r - half + m.shape[1]]
        out = np.minimum(out, win.min(axis=-1))
    return out


def gaussian_blur(m, k):
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    x = np.arange(k) - k // 2
    ker = np.exp(-(x * x) / (2 * sigma * sigma)).astype(np.float32)
    ker /= ker.sum()
    p = np.pad(m, ((0, 0), (k // 2, k // 2)))
    m = sliding_window_view(p, k, axis=1) @ ker
    p = np.pad(m, ((k // 2, k // 2), (0, 0)))
    return sliding_window_view(p, k, axis=0) @ ker


def color_transfer_mkl(x0, x1):
    eps = np.finfo(float).eps
    h, w, c = x0.shape
    x0 = x0.reshape((h * w, c))
    x1 = x1.reshape((h * w, c))
    a = np.cov(x0.T)
    b = np.cov(x1.T)
    da2, ua = np.linalg.eig(a)
    da = np.diag(np.sqrt(da2.clip(eps, None)))
    cc = da @ ua.T @ b @ ua @ da
    dc2, uc = np.linalg.eig(cc)
    dc = np.diag(np.sqrt(dc2.clip(eps, None)))
    da_inv = np.diag(1.0 / np.diag(da))
    t = ua @ da_inv @ uc @ dc @ uc.T @ da_inv @ ua.T
    result = (x0 - x0.mean(0)) @ t + x1.mean(0)
    return np.clip(result.reshape((h, w, c)).astype(np.float32), 0, 1)


def merge_one():
    img = frame_u8.astype(np.float32) / 255.0
    sub = 4 * R
    face_mat = MAT
    scale = np.array([[4.0, 0, 0], [0, 4.0, 0]])
    sub_mat = scale @ np.vstack([MAT, [0, 0, 1]])
    dst_face = np.clip(warp_affine(img, face_mat, R, R), 0, 1)
    wrk = prd_mask * dst_mask
    wrk[wrk < 1 / 255] = 0
    wrk = warp_affine(wrk, np.array([[4.0, 0, 0], [0, 4.0, 0]]), sub, sub)
    wrk = np.pad(wrk, R)
    if ERODE > 0:
        wrk = erode_ellipse(wrk, ERODE)
    clip = R + BLUR // 2
    wrk[:clip, :] = 0
    wrk[-clip:, :] = 0
    wrk[:, :clip] = 0
    wrk[:, -clip:] = 0
    if BLUR > 0:
        wrk = gaussian_blur(wrk, BLUR + (1 - BLUR % 2))
    wrk = np.clip(wrk[R:-R, R:-R], 0, 1)
    mask = np.clip(warp_affine(wrk, sub_mat, W, H, inverse_map=True), 0, 1)[..., None]
    mask[mask < 1 / 255] = 0
    area = warp_affine(wrk, np.array([[0.25, 0, 0], [0, 0.25, 0]]), R, R)[..., None]
    area = (area > 0).astype(np.float32)
    face = color_transfer_mkl(pred * area, dst_face * area)
    out = np.clip(warp_affine(face, face_mat, W, H, inverse_map=True), 0, 1)
    out = img * (1 - mask) + out * mask
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


merge_one()  # warm-up
t = time.perf_counter()
for _ in range(frames):
    res = merge_one()
dt = time.perf_counter() - t
print(f"{dt / frames * 1000:.1f} {int(res.sum())}")
