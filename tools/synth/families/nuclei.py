"""Nuclei: round to oval, bright, 8-40 px, chromatin texture and nucleoli; sometimes
overlapping (the upper nucleus hides part of the lower one).

Models DAPI/Hoechst-stained nuclei: smooth convex outlines, a bright rim-to-centre
profile, grainy chromatin, one to four nucleoli (darker, sometimes brighter spots),
a tenfold brightness range (mitotic vs. dim nuclei) at low to high density.
Two channels: [nuclei, a second nuclear stain with its own texture and noise]."""
import numpy as np

from . import render

DIAMETERS = (8, 40)


def make(rng, size, bits, channels):
    shape = (size, size)
    diam = rng.uniform(*DIAMETERS)
    radii = diam / 2 * rng.uniform(0.7, 1.3, 4000)
    density = rng.uniform(0.1, 0.5)
    n = int(density * size * size / (np.pi * (diam / 2) ** 2)) + 1
    occlude = rng.random() < 0.3  # nuclei on top of one another, partly hidden
    # below 1: touching; deep overlaps leave the lower nucleus a crescent
    gap = rng.uniform(0.35, 0.9) if occlude else rng.uniform(0.8, 1.05)
    centres = render.scatter(rng, shape, n, lambda i, k: gap * (radii[i] + radii[k]))
    painter = render.Painter(shape, occlude)
    bright = render.cell_brightness(rng, len(centres), rng.choice([2.0, 10.0]))
    level = np.zeros(shape)
    nucleoli = np.zeros(shape)
    for i, (cy, cx) in enumerate(centres):
        r = radii[i]
        got = painter.paint(cy, cx, 1.6 * r, render.radial_outline(
            rng, r, rng.uniform(1.0, 1.5), rng.uniform(0, 0.12)))
        if got is None:
            continue
        sl, win = got
        level[sl][win] = bright[i]
        yy, xx = np.mgrid[sl]
        for _ in range(rng.integers(0, 5) if r > 6 else 0):  # nucleoli
            oy, ox = rng.normal(0, 0.3 * r, 2)
            spot = np.exp(-((yy - cy - oy) ** 2 + (xx - cx - ox) ** 2) / (2 * (0.12 * r) ** 2))
            nucleoli[sl] += np.where(win, spot * rng.choice([-0.5, 0.4], p=[0.8, 0.2]), 0)
    inside = painter.labels > 0
    rho = np.where(inside, painter.rho, 1.0)
    if render.seamless(rng):
        rho = render.union_rho(painter.labels, diam / 2 * rng.uniform(0.2, 1.0))
    chromatin = 1 + rng.uniform(0.05, 0.25) * render.smooth_field(rng, shape, diam / 12)
    profile = 1 - rng.uniform(0.1, 0.4) * rho ** 4  # dimmer toward the edge
    depth = render.thickness(rng, rho)
    main = level * profile * depth * chromatin * (1 + nucleoli) * inside
    second = level * depth * (1 - 0.2 * rho ** 2) * (1 + 0.15 * render.smooth_field(rng, shape, diam / 8))
    return render.finish(rng, [main, second * inside], painter.labels, bits, channels)
