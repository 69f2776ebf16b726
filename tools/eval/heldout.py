#!/usr/bin/env python3
"""Held-out synthetic test images, written apart from tools/synth on purpose.

Nothing here comes from tools/synth (a test imports this file and checks): other shape
models, other optics, other cameras, so that a score here says how a network trained on
tools/synth generalises rather than how well it learnt its own generator.

  heldout-nuclei    superellipse nuclei (boxy to round), occluding one another in z
                    order, blurred by an Airy PSF, EMCCD camera (gamma-distributed EM
                    gain, excess noise), cos^4 vignetting
  heldout-tissue    a sheet of cells from a domain-warped Voronoi tessellation (curved
                    shared borders), membrane-plus-cytoplasm stain, defocus-disk PSF,
                    sCMOS camera (per-pixel offset/gain, column pattern noise)
  heldout-bacteria  curved rods along smoothed random walks, some dividing (constricted),
                    Airy PSF, sCMOS camera, high background
  heldout-cyto      metaball cells (a few Gaussian blobs each, thresholded) with a
                    dark nucleus, median diameters ~28-50 px, defocus disk, EMCCD at
                    very low light (the hardest family)

    python heldout.py OUT_DIR --family heldout-nuclei --n 8 --seed 0 [--size 256]

writes OUT_DIR/<family>_000.tif and <family>_000_masks.npy. make(family, seed, size)
returns (uint16 image (H, W), uint16 labels) and is a pure function of its arguments.
"""
import argparse
import os

import numpy as np
from scipy import ndimage, special

MIN_PIXELS = 15


# ---------------------------------------------------------------- shapes to labels
def stamp(labels, mask_fn, cy, cx, reach, value):
    """Occlusion, not competition: the later cell covers the earlier ones."""
    h, w = labels.shape
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, h)
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    m = mask_fn(yy - cy, xx - cx)
    labels[y0:y1, x0:x1][m] = value


def tidy(labels):
    """One connected piece per label (the biggest), none under MIN_PIXELS, 1..N."""
    out = np.zeros(labels.shape, np.uint16)
    k = 0
    for v in np.unique(labels[labels > 0]):
        comp, n = ndimage.label(labels == v)
        if n == 0:
            continue
        counts = np.bincount(comp.ravel())
        counts[0] = 0
        if counts.max() >= MIN_PIXELS:
            k += 1
            out[comp == counts.argmax()] = k
    return out


def superellipse(a, b, p, theta):
    c, s = np.cos(theta), np.sin(theta)
    return lambda dy, dx: (np.abs((dx * c + dy * s) / a) ** p
                           + np.abs((-dx * s + dy * c) / b) ** p) < 1


def warped_voronoi(rng, size, cell):
    """Voronoi of jittered-grid seeds on coordinates bent by a smooth displacement."""
    g = np.arange(cell / 2, size + cell, cell)
    sy, sx = [a.ravel() + rng.normal(0, cell / 4, a.size) for a in np.meshgrid(g, g)]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    amp = cell * rng.uniform(0.1, 0.3)
    for axis in (yy, xx):
        bend = ndimage.gaussian_filter(rng.normal(size=(size, size)), cell, mode="reflect")
        axis += amp * bend / (bend.std() + 1e-12)
    best = np.full((size, size), np.inf)
    lab = np.zeros((size, size), np.int32)
    for i, (y, x) in enumerate(zip(sy, sx), start=1):
        d = (yy - y) ** 2 + (xx - x) ** 2
        lab = np.where(d < best, i, lab)
        best = np.minimum(best, d)
    return lab


# ---------------------------------------------------------------- optics and cameras
def airy_kernel(radius_px):
    """Airy pattern (2 J1(v)/v)^2 with its first zero at radius_px."""
    r = int(np.ceil(radius_px * 2.5))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    v = np.hypot(yy, xx) * 3.8317 / radius_px + 1e-9
    k = (2 * special.j1(v) / v) ** 2
    return k / k.sum()


def disk_kernel(radius_px):
    r = int(np.ceil(radius_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    k = (np.hypot(yy, xx) <= radius_px + 0.5).astype(float)
    return k / k.sum()


def vignette(size, strength):
    yy, xx = (np.mgrid[0:size, 0:size] - size / 2) / size
    return np.cos(np.arctan(strength * np.hypot(yy, xx) * 2)) ** 4


def emccd(rng, photons, em_gain):
    """Poisson electrons, then the EM register: gamma(n, gain) (excess noise ~ sqrt 2)."""
    e = rng.poisson(photons).astype(np.float64)
    amplified = np.where(e > 0, rng.gamma(np.maximum(e, 1), em_gain), 0.0)
    adu = amplified / rng.uniform(8, 15) + 500 + rng.normal(0, 3, photons.shape)
    return np.clip(adu, 0, 65535).astype(np.uint16)


def scmos(rng, photons):
    """Per-pixel offset, gain and read noise, plus a column pattern."""
    h, w = photons.shape
    e = rng.poisson(photons).astype(np.float64)
    offset = 100 + rng.normal(0, 2, (h, w)) + rng.normal(0, 3, (1, w))
    gain = rng.uniform(1.5, 3) * (1 + rng.normal(0, 0.02, (h, w)))
    read = np.sqrt(rng.lognormal(np.log(2), 0.6, (h, w)))
    return np.clip(e * gain + offset + rng.normal(0, 1, (h, w)) * read * gain,
                   0, 65535).astype(np.uint16)


# ---------------------------------------------------------------- families
def nuclei(rng, size):
    labels = np.zeros((size, size), np.int32)
    diam = rng.uniform(12, 36)
    n = int(rng.uniform(0.2, 0.5) * size * size / (diam * diam * 0.8))
    for i in range(1, n + 1):
        a = diam / 2 * rng.uniform(0.8, 1.3)
        b = a * rng.uniform(0.6, 1.0)
        cy, cx = rng.uniform(0, size, 2)
        stamp(labels, superellipse(a, b, rng.uniform(2, 3.5), rng.uniform(0, np.pi)),
              cy, cx, a + 2, i)
    labels = tidy(labels)
    gain = np.concatenate([[0], rng.lognormal(0, 0.5, labels.max())])[labels]
    speckle = ndimage.uniform_filter(rng.random((size, size)), 3)
    scene = gain * (0.7 + 0.6 * speckle) + 0.05
    scene = ndimage.convolve(scene, airy_kernel(rng.uniform(1.5, 3)), mode="reflect")
    scene *= vignette(size, rng.uniform(0.5, 1.2))
    return emccd(rng, scene * rng.uniform(5, 40), rng.uniform(50, 300)), labels


def tissue(rng, size):
    cell = rng.uniform(20, 45)
    lab = warped_voronoi(rng, size, cell)
    sheet = ndimage.gaussian_filter(rng.normal(size=(size, size)), cell)
    sheet = sheet > np.quantile(sheet, rng.uniform(0.05, 0.5))  # the sheet has holes
    labels = tidy(np.where(sheet, lab, 0))
    edge = ndimage.morphological_gradient(labels, size=3) > 0
    inner = np.concatenate([[0], rng.uniform(0.15, 0.5, labels.max())])[labels]
    scene = np.where(edge & (labels > 0), 1.0, inner) + 0.03
    scene = ndimage.convolve(scene, disk_kernel(rng.uniform(0.5, 2.5)), mode="reflect")
    return scmos(rng, scene * rng.uniform(20, 200)), labels


def random_walk_rod(rng, length, width, cy, cx):
    n = max(int(length / 2), 3)
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.08, n))
    pts = np.cumsum(np.stack([np.sin(heading), np.cos(heading)], 1) * 2, 0)
    pts += np.array([cy, cx]) - pts.mean(0)
    pinch = rng.random() < 0.3  # a dividing cell, constricted in the middle
    def mask(dy, dx):
        p = np.stack([dy + cy, dx + cx], -1)[..., None, :]
        d = np.linalg.norm(p - pts, axis=-1)
        j = d.argmin(-1)
        half = width / 2 * (1 - 0.45 * pinch * np.exp(-((j - n / 2) / 1.2) ** 2))
        return d.min(-1) < half
    return mask


def bacteria(rng, size):
    labels = np.zeros((size, size), np.int32)
    width = rng.uniform(6, 12)
    n = int(rng.uniform(0.15, 0.4) * size * size / (width * width * 4))
    for i in range(1, n + 1):
        length = width * rng.uniform(2, 6)
        cy, cx = rng.uniform(0, size, 2)
        stamp(labels, random_walk_rod(rng, length, width, cy, cx), cy, cx, length, i)
    labels = tidy(labels)
    dist = ndimage.distance_transform_edt(labels > 0)
    gain = np.concatenate([[0], rng.uniform(0.3, 1.0, labels.max())])[labels]
    scene = gain * np.minimum(dist / 3, 1) + rng.uniform(0.1, 0.3)
    scene = ndimage.convolve(scene, airy_kernel(rng.uniform(1.2, 2.5)), mode="reflect")
    return scmos(rng, scene * rng.uniform(30, 300)), labels


def cyto(rng, size):
    labels = np.zeros((size, size), np.int32)
    nucleus = np.zeros((size, size), bool)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    diam = rng.uniform(30, 70)
    n = int(rng.uniform(0.3, 0.6) * size * size / (diam * diam * 0.8)) + 1
    for i in range(1, n + 1):
        cy, cx = rng.uniform(0, size, 2)
        field = np.zeros((size, size))
        for _ in range(rng.integers(2, 6)):  # metaballs
            oy, ox = rng.normal(0, diam / 4, 2)
            s = diam / 4 * rng.uniform(0.6, 1.2)
            field += np.exp(-((yy - cy - oy) ** 2 + (xx - cx - ox) ** 2) / (2 * s * s))
        m = field > 0.5
        labels[m] = i
        nucleus[m] = False
        nucleus |= m & (np.hypot(yy - cy, xx - cx) < diam * 0.15)
    labels = tidy(labels)
    nucleus &= labels > 0
    gain = np.concatenate([[0], rng.uniform(0.2, 0.8, labels.max())])[labels]
    scene = np.where(nucleus, 0.4 * gain, gain) + 0.05
    scene = ndimage.convolve(scene, disk_kernel(rng.uniform(1, 3)), mode="reflect")
    scene *= vignette(size, rng.uniform(0.3, 1.0))
    return emccd(rng, scene * rng.uniform(3, 15), rng.uniform(100, 300)), labels


FAMILIES = {"heldout-nuclei": nuclei, "heldout-tissue": tissue,
            "heldout-bacteria": bacteria, "heldout-cyto": cyto}


def make(family, seed, size=256):
    """One image; the seed and the family name pick it (a family gets its own stream)."""
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)])
    return FAMILIES[family](rng, size)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--family", choices=list(FAMILIES), required=True)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256)
    a = p.parse_args()
    import tifffile
    os.makedirs(a.out_dir, exist_ok=True)
    for i in range(a.n):
        img, labels = make(a.family, a.seed + i, a.size)
        stem = os.path.join(a.out_dir, f"{a.family}_{i:03d}")
        tifffile.imwrite(stem + ".tif", img, photometric="minisblack")
        np.save(stem + "_masks.npy", labels)
    print(f"wrote {a.n} images to {a.out_dir}")


if __name__ == "__main__":
    main()
