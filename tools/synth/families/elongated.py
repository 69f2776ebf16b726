"""Elongated cells: bacteria-like rods (capsules, 5-14 px wide) and spindle cells
(pointed ellipses, e.g. fibroblasts/myoblasts, up to 80 px long).

Colonies are often aligned (a shared orientation with jitter) and touch end to end
and side by side; in some images rods cross over one another, and a quarter of the
longer rods are dividing (constricted at the middle, still one cell). Rods may bend slightly. Two channels: [membrane/cytoplasm, DNA
(nucleoid for rods, an oval nucleus for spindles)]."""
import numpy as np

from . import render


def capsule(rng, half_len, width, angle, bend, pinch=0.0):
    """rho = distance to a (slightly bent) centre line over the half-width; a dividing
    cell (pinch > 0) narrows by that fraction at its middle and is still one cell."""
    c, s = np.cos(angle), np.sin(angle)

    def rho(dy, dx):
        u = dx * c + dy * s
        v = -dx * s + dy * c - bend * (u ** 2 - half_len ** 2) / max(half_len, 1)
        along = np.clip(u, -half_len, half_len)
        half_width = width / 2 * (1 - pinch * np.exp(-(along / (0.25 * width)) ** 2))
        return np.hypot(u - along, v) / half_width
    return rho


def spindle(rng, half_len, width, angle):
    """Lens-shaped: the allowed half-width shrinks to 0 at both tips."""
    c, s = np.cos(angle), np.sin(angle)
    power = rng.uniform(1.0, 2.0)  # 1: sharp tips, 2: rounder

    def rho(dy, dx):
        u = (dx * c + dy * s) / half_len
        v = (-dx * s + dy * c) / (width / 2)
        room = np.clip(1 - np.abs(u) ** power, 1e-6, None)
        return np.where(np.abs(u) < 1, np.abs(v) / room, 2.0)
    return rho


def make(rng, size, bits, channels):
    shape = (size, size)
    rods = rng.random() < 0.5
    if rods:
        width = rng.uniform(5, 14)
        length = width * rng.uniform(2, 5)
    else:
        width = rng.uniform(8, 20)
        length = width * rng.uniform(3, 6)
    length = min(length, 80)
    density = rng.uniform(0.2, 0.6)
    n = int(density * size * size / (width * length)) + 1
    base = rng.uniform(0, np.pi)
    spread = rng.choice([0.2, 0.6, np.pi])  # aligned colony .. random
    centres = render.scatter(rng, shape, n, lambda i, k: 0.9 * width, tries=10)
    painter = render.Painter(shape, occlude=rng.random() < 0.3)  # rods crossing over others
    bright = render.cell_brightness(rng, len(centres), rng.choice([2.0, 10.0]))
    level = np.zeros(shape)
    dna = np.zeros(shape)
    for i, (cy, cx) in enumerate(centres):
        half = length / 2 * rng.uniform(0.7, 1.3)
        w = width * rng.uniform(0.85, 1.15)
        angle = base + rng.normal(0, spread)
        dividing = rods and half > w and rng.random() < 0.25
        fn = capsule(rng, half, w, angle, rng.normal(0, 0.08),
                     rng.uniform(0.2, 0.5) if dividing else 0.0) if rods else \
            spindle(rng, half, w, angle)
        got = painter.paint(cy, cx, half + w, fn)
        if got is None:
            continue
        sl, win = got
        level[sl][win] = bright[i]
        yy, xx = np.mgrid[sl].astype(np.float64)
        core = capsule(rng, half * (0.5 if rods else 0.25), w * 0.5, angle, 0)(yy - cy, xx - cx)
        dna[sl] = np.where(win & (core < 1), bright[i], dna[sl])
    inside = painter.labels > 0
    rho = np.where(inside, painter.rho, 1.0)
    if render.seamless(rng):
        rho = render.union_rho(painter.labels, width / 2 * rng.uniform(0.3, 1.0))
    if rods:  # membrane-ish: brighter toward the outline
        profile = 0.7 + 0.3 * rho ** 2
    else:
        profile = 1 - 0.5 * rho ** 2
    texture = 1 + 0.1 * render.smooth_field(rng, shape, width / 4)
    main = level * profile * render.thickness(rng, rho) * texture * inside
    return render.finish(rng, [main, dna], painter.labels, bits, channels,
                         blur=(0.4, 1.8))
