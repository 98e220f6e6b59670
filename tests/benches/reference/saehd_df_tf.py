"""SAEHD-DF training step in TensorFlow (what DeepFaceLab runs), for the Faceswap++ bench.

The same architecture as DFL's DeepFakeArchi 'df' (core/leras/archis/DeepFakeArchi.py),
written with Keras layers in NHWC; the same loss (10*DSSIM + 10*MSE per side, plus the
learned mask's 10*MSE, DFL Model_SAEHD) and Adam; batch of each side per step. Prints one
line: `ms_per_step peak_rss_kb params`.

usage: python saehd_df_tf.py RES BATCH STEPS AE E D DMASK
"""
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

res, batch, steps, ae, e, d, dm = (int(v) for v in sys.argv[1:8])
L = tf.keras.layers
lowest = res // 16


def down(ch):
    return [L.Conv2D(ch, 5, strides=2, padding="same"), L.LeakyReLU(0.1)]


def upscale(x, ch):
    x = L.Conv2D(ch * 4, 3, padding="same")(x)
    x = L.LeakyReLU(0.1)(x)
    return L.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(x)


def resblock(x, ch):
    y = L.Conv2D(ch, 3, padding="same")(x)
    y = L.LeakyReLU(0.2)(y)
    y = L.Conv2D(ch, 3, padding="same")(y)
    return L.LeakyReLU(0.2)(x + y)


def encoder_inter():
    inp = tf.keras.Input((res, res, 3))
    x = inp
    for ch in (e, e * 2, e * 4, e * 8):
        for layer in down(ch):
            x = layer(x)
    x = L.Flatten()(x)
    x = L.Dense(ae)(x)
    x = L.Dense(lowest * lowest * ae)(x)
    x = L.Reshape((lowest, lowest, ae))(x)
    return tf.keras.Model(inp, upscale(x, ae))


def decoder():
    z = tf.keras.Input((lowest * 2, lowest * 2, ae))
    x = z
    for ch in (d * 8, d * 4, d * 2):
        x = upscale(x, ch)
        x = resblock(x, ch)
    img = L.Conv2D(3, 1, activation="sigmoid")(x)
    m = z
    for ch in (dm * 8, dm * 4, dm * 2):
        m = upscale(m, ch)
    mask = L.Conv2D(1, 1, activation="sigmoid")(m)
    return tf.keras.Model(z, [img, mask])


def gaussian(size, sigma=1.5):
    c = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(c[:, None] ** 2 + c[None, :] ** 2) / (2 * sigma * sigma))
    g /= g.sum()
    return tf.constant(np.tile(g[:, :, None, None], (1, 1, 3, 1)), tf.float32)


K = gaussian(max(3, int(res / 11.6)))


def dssim(a, b):
    f = lambda x: tf.nn.depthwise_conv2d(x, K, [1, 1, 1, 1], "VALID")  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    c1, c2 = 0.01**2, 0.03**2
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    cs = (2 * f(a * b) - 2 * mu_a * mu_b + c2) / (f(a * a + b * b) - mu_a**2 - mu_b**2 + c2)
    return tf.reduce_mean((1 - tf.reduce_mean(lum * cs, axis=[1, 2])) / 2, axis=1)


enc, dec_a, dec_b = encoder_inter(), decoder(), decoder()
variables = enc.trainable_variables + dec_a.trainable_variables + dec_b.trainable_variables
opt = tf.keras.optimizers.Adam(5e-5, epsilon=1e-7)


def side_loss(pred, pred_mask, target, mask):
    p, t = pred * mask, target * mask
    loss = 10 * dssim(p, t) + 10 * tf.reduce_mean(tf.square(p - t), axis=[1, 2, 3])
    loss += 10 * tf.reduce_mean(tf.square(mask - pred_mask), axis=[1, 2, 3])
    return tf.reduce_mean(loss)


@tf.function
def step(a, b, ma, mb):
    with tf.GradientTape() as tape:
        pa, pma = dec_a(enc(a))
        pb, pmb = dec_b(enc(b))
        loss = side_loss(pa, pma, a, ma) + side_loss(pb, pmb, b, mb)
    grads = tape.gradient(loss, variables)
    opt.apply_gradients(zip(grads, variables))
    return loss


rng = np.random.default_rng(0)
a = tf.constant(rng.random((batch, res, res, 3), dtype=np.float32))
b = tf.constant(rng.random((batch, res, res, 3), dtype=np.float32))
m = tf.ones((batch, res, res, 1))
step(a, b, m, m).numpy()  # trace + first step
t = time.perf_counter()
for _ in range(steps):
    step(a, b, m, m).numpy()
ms = (time.perf_counter() - t) * 1e3 / steps
params = int(sum(np.prod(v.shape) for v in variables))
print(f"{ms:.1f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} {params}")
