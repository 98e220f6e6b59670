"""SAEHD-DF training step in PyTorch, for the Faceswap++ GPU check (installers/gpu-check.sh).

The same network, loss and optimiser as saehd_df_tf.py beside it (DFL's DeepFakeArchi 'df',
core/leras/archis/DeepFakeArchi.py): four 5x5 stride-2 convolutions, Dense(ae) and
Dense(lowest^2 * ae), an upscale (3x3 conv to 4x channels, LeakyReLU 0.1, depth-to-space), two
decoders of three upscales with residual blocks, 1x1 sigmoid outputs for the face and the mask;
per side 10*DSSIM + 10*MSE of the masked face plus 10*MSE of the mask (DFL Model_SAEHD); Adam
(lr 5e-5, eps 1e-7). In NCHW, as ours. Half precision is autocast with f32 master weights
(bf16; f16 adds a GradScaler), as ours.

Prints one line: `ms_per_step peak_bytes params` (peak_bytes: CUDA memory reserved by the
caching allocator, comparable with burn's reserved pool memory; on the CPU the peak RSS).

usage: python saehd_df_torch.py RES BATCH STEPS AE E D DMASK [--device cuda|cpu]
       [--precision f32|bf16|f16]
"""
import argparse
import resource
import time

import torch
from torch import nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
for name in ("res", "batch", "steps", "ae", "e", "d", "dm"):
    p.add_argument(name, type=int)
p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
p.add_argument("--precision", default="f32", choices=("f32", "bf16", "f16"))
args = p.parse_args()
res, batch, steps, ae, e, d, dm = (
    args.res, args.batch, args.steps, args.ae, args.e, args.d, args.dm
)
dev = torch.device(args.device)
lowest = res // 16


class Upscale(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 4, 3, padding=1)

    def forward(self, x):
        return F.pixel_shuffle(F.leaky_relu(self.conv(x), 0.1), 2)


class ResBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        y = F.leaky_relu(self.c1(x), 0.2)
        return F.leaky_relu(x + self.c2(y), 0.2)


class EncoderInter(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [3, e, e * 2, e * 4, e * 8]
        self.downs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 5, stride=2, padding=2) for i in range(4)
        )
        self.dense1 = nn.Linear(e * 8 * lowest * lowest, ae)
        self.dense2 = nn.Linear(ae, lowest * lowest * ae)
        self.up = Upscale(ae, ae)

    def forward(self, x):
        for conv in self.downs:
            x = F.leaky_relu(conv(x), 0.1)
        x = self.dense2(self.dense1(x.flatten(1)))
        return self.up(x.view(-1, ae, lowest, lowest))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        ups, res_blocks, mups = [], [], []
        last = ae
        for ch in (d * 8, d * 4, d * 2):
            ups.append(Upscale(last, ch))
            res_blocks.append(ResBlock(ch))
            last = ch
        last = ae
        for ch in (dm * 8, dm * 4, dm * 2):
            mups.append(Upscale(last, ch))
            last = ch
        self.ups, self.res, self.mups = (
            nn.ModuleList(ups), nn.ModuleList(res_blocks), nn.ModuleList(mups)
        )
        self.out = nn.Conv2d(d * 2, 3, 1)
        self.mout = nn.Conv2d(dm * 2, 1, 1)

    def forward(self, z):
        x = z
        for up, block in zip(self.ups, self.res):
            x = block(up(x))
        m = z
        for up in self.mups:
            m = up(m)
        return torch.sigmoid(self.out(x)), torch.sigmoid(self.mout(m))


def gaussian(size, sigma=1.5):
    c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(c[:, None] ** 2 + c[None, :] ** 2) / (2 * sigma * sigma))
    g /= g.sum()
    return g.float().expand(3, 1, size, size).contiguous().to(dev)


K = gaussian(max(3, int(res / 11.6)))


def dssim(a, b):
    def f(x):
        return F.conv2d(x, K.to(x.dtype), groups=3)

    mu_a, mu_b = f(a), f(b)
    c1, c2 = 0.01**2, 0.03**2
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    cs = (2 * f(a * b) - 2 * mu_a * mu_b + c2) / (f(a * a + b * b) - mu_a**2 - mu_b**2 + c2)
    return ((1 - (lum * cs).mean(dim=(2, 3))) / 2).mean(dim=1)


def side_loss(pred, pred_mask, target, mask):
    p_, t_ = pred * mask, target * mask
    loss = 10 * dssim(p_, t_) + 10 * ((p_ - t_) ** 2).mean(dim=(1, 2, 3))
    loss = loss + 10 * ((mask - pred_mask) ** 2).mean(dim=(1, 2, 3))
    return loss.mean()


torch.manual_seed(0)
enc, dec_a, dec_b = EncoderInter().to(dev), Decoder().to(dev), Decoder().to(dev)
params = [q for mod in (enc, dec_a, dec_b) for q in mod.parameters()]
opt = torch.optim.Adam(params, lr=5e-5, eps=1e-7)
half = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[args.precision]
scaler = torch.amp.GradScaler(dev.type, enabled=args.precision == "f16")

g = torch.Generator().manual_seed(0)
a = torch.rand((batch, 3, res, res), generator=g).to(dev)
b = torch.rand((batch, 3, res, res), generator=g).to(dev)
m = torch.ones((batch, 1, res, res), device=dev)


def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast(dev.type, dtype=half or torch.float32, enabled=half is not None):
        pa, pma = dec_a(enc(a))
        pb, pmb = dec_b(enc(b))
    # The loss in f32, as ours.
    loss = side_loss(pa.float(), pma.float(), a, m) + side_loss(pb.float(), pmb.float(), b, m)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss.item()


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


step()
step()
sync()
t = time.perf_counter()
for _ in range(steps):
    step()
sync()
ms = (time.perf_counter() - t) * 1e3 / steps
if dev.type == "cuda":
    peak = torch.cuda.max_memory_reserved(dev)
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(f"{ms:.1f} {peak} {sum(q.numel() for q in params)}")
