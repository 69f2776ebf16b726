#!/usr/bin/env python3
"""Deterministic synthetic microscopy images with ground-truth instance labels.

Each image holds star-convex cells (irregular ellipses) of varied size that
touch where they crowd, rendered with uneven illumination, optical blur,
Poisson (shot) noise and Gaussian read noise, stored as 8- or 16-bit
integers. With one channel an image is either cytoplasm-like (large,
textured, dimmer nucleus inside) or nuclei-like (small, round, bright);
with two channels it is [cytoplasm, nucleus] and the labels are the cells.

    python synth.py OUT_DIR --n 24 --size 256 --seed 0 [--channels 1|2] [--bits 8|16]
                    [--family star|nuclei|cyto|elongated|clumps|mix|nuclei:3,cyto:3,...]
                    [--seamless P]

writes OUT_DIR/img_000.tif (or .npy with --format npy) and
OUT_DIR/img_000_masks.npy (uint16, 0 = background, 1..N = cells).
Images are (H, W) for one channel and (H, W, 2) for two.
Same arguments, same bytes: everything draws from one seeded numpy Generator.

--family star (the default) is the generator below, unchanged (the embedded network's
training data and tools/parity's fixtures depend on its bytes); the other families live
in tools/synth/families/ (see tools/synth/README.md); mix draws one per image, equally,
and a list with weights (nuclei:3,cyto:3,clumps,elongated) draws by weight. With a
family other than star, --bits 0 draws 8 or 16 bits per image, and --seamless sets the
share of images whose touching cells show no seam (default 0.35).
"""
import argparse
import os
import sys

import numpy as np
from scipy import ndimage


def star_shape(rng, radius, irregular):
    """Random star-convex outline: radius(theta) of a rotated ellipse with wobble."""
    aspect = rng.uniform(1.0, 1.6)
    angle = rng.uniform(0, np.pi)
    ks = np.arange(2, 6)
    amps = rng.uniform(0, irregular, ks.size) / ks  # higher harmonics smaller
    phases = rng.uniform(0, 2 * np.pi, ks.size)
    return dict(radius=radius, aspect=aspect, angle=angle, ks=ks, amps=amps, phases=phases)


def normalized_radius(shape, dy, dx):
    """rho < 1 inside the outline, 1 on it; rho grows with distance outside."""
    c, s = np.cos(shape["angle"]), np.sin(shape["angle"])
    u = dx * c + dy * s
    v = (-dx * s + dy * c) * shape["aspect"]
    theta = np.arctan2(v, u)
    wobble = 1 + (shape["amps"][:, None] * np.cos(
        shape["ks"][:, None] * theta.ravel()[None] + shape["phases"][:, None])).sum(0)
    r = shape["radius"] * wobble.reshape(theta.shape)
    return np.hypot(u, v) / r


def place_cells(rng, size, mean_diam, irregular, density):
    """Centres by rejection sampling; a minimum distance below r_i + r_j lets cells touch."""
    n_target = int(density * size * size / (np.pi * (mean_diam / 2) ** 2))
    cells = []
    for _ in range(n_target * 20):
        if len(cells) >= n_target:
            break
        radius = mean_diam / 2 * rng.uniform(0.75, 1.25)
        # centres may lie just outside so that cells are cut by the border
        cy, cx = rng.uniform(-radius / 2, size + radius / 2, 2)
        if all(np.hypot(cy - o["cy"], cx - o["cx"]) > 0.8 * (radius + o["shape"]["radius"])
               for o in cells):
            cells.append(dict(cy=cy, cx=cx, shape=star_shape(rng, radius, irregular)))
    return cells


def rasterize(cells, size, rng):
    """Labels and each cell's rho map; a pixel goes to the cell with the smallest rho,
    so overlapping outlines meet along a shared boundary (touching neighbours)."""
    best = np.full((size, size), np.inf)
    labels = np.zeros((size, size), np.int32)
    rho_map = np.full((size, size), np.inf)
    nuc_rho = np.full((size, size), np.inf)
    for i, cell in enumerate(cells, start=1):
        r = cell["shape"]["radius"] * 1.6  # bounding box of the wobbly ellipse
        y0, y1 = max(int(cell["cy"] - r), 0), min(int(cell["cy"] + r) + 1, size)
        x0, x1 = max(int(cell["cx"] - r), 0), min(int(cell["cx"] + r) + 1, size)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        rho = normalized_radius(cell["shape"], yy - cell["cy"], xx - cell["cx"])
        win = (rho < 1) & (rho < best[y0:y1, x0:x1])
        best[y0:y1, x0:x1][win] = rho[win]
        labels[y0:y1, x0:x1][win] = i
        rho_map[y0:y1, x0:x1][win] = rho[win]
        # nucleus: a smaller ellipse, slightly off centre, inside the cell
        nuc = star_shape(rng, cell["shape"]["radius"] * rng.uniform(0.35, 0.5), 0.1)
        off = rng.normal(0, 0.1 * cell["shape"]["radius"], 2)
        nrho = normalized_radius(nuc, yy - cell["cy"] - off[0], xx - cell["cx"] - off[1])
        nuc_rho[y0:y1, x0:x1][win] = nrho[win]
    # drop slivers (border cuts, overgrown neighbours) and renumber 1..N
    ids, areas = np.unique(labels, return_counts=True)
    keep = ids[(ids > 0) & (areas >= 20)]
    lut = np.zeros(labels.max() + 1, np.int32)
    lut[keep] = np.arange(1, keep.size + 1)
    labels = lut[labels]
    rho_map[labels == 0] = np.inf
    return labels, rho_map, nuc_rho


def smooth_field(rng, size, sigma):
    """Zero-mean, unit-std smooth random field (texture, illumination)."""
    f = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def render(rng, labels, rho, nuc_rho, kind, size):
    """Noise-free intensity images (float, about 0..1) of cytoplasm and nuclei."""
    inside = labels > 0
    n = labels.max()
    brightness = np.concatenate([[0.0], rng.uniform(0.45, 1.0, n)])[labels]
    rho = np.where(inside, rho, 1.0)
    nucleus = inside & (nuc_rho < 1)
    if kind == "nuclei":
        texture = 1 + 0.08 * smooth_field(rng, size, 1.5)
        cyto = brightness * (1 - 0.25 * rho ** 4) * texture * inside
    else:
        texture = 1 + 0.2 * smooth_field(rng, size, 2.0)
        cyto = brightness * (1 - 0.45 * rho ** 2) * texture * inside
        cyto = np.where(nucleus, 0.65 * cyto, cyto)  # stained cytoplasm, darker nucleus
    nuc_img = np.where(nucleus, brightness * (1 - 0.3 * np.minimum(nuc_rho, 1) ** 2), 0.0)
    return cyto, nuc_img


def degrade(rng, clean, illum, bits):
    """Microscope and camera: illumination, blur, shot noise, read noise, quantisation."""
    img = (clean + rng.uniform(0.02, 0.08)) * illum  # background + uneven field
    img = ndimage.gaussian_filter(img, rng.uniform(0.7, 1.6))
    photons = rng.uniform(40, 400)  # photons at intensity 1: sets the SNR
    counts = rng.poisson(img * photons).astype(np.float64)
    read_sd = rng.uniform(1, 4)  # read noise, in photons
    counts += rng.normal(0, read_sd, img.shape)
    if bits == 8:
        gain = 200 / (photons * 1.3)
        out = np.clip(np.round(counts * gain), 0, 255).astype(np.uint8)
    else:
        gain = rng.uniform(2000, 30000) / photons  # intensity 1 -> 2k..30k ADU
        offset = 100 + 4 * read_sd * gain  # camera bias keeps noise above zero
        out = np.clip(np.round(counts * gain + offset), 0, 65535).astype(np.uint16)
    return out


def make_image(rng, size, channels, bits):
    kind = "cyto" if channels == 2 or rng.random() < 0.5 else "nuclei"
    if kind == "nuclei":
        cells = place_cells(rng, size, rng.uniform(24, 38), irregular=0.15, density=0.35)
    else:
        cells = place_cells(rng, size, rng.uniform(28, 44), irregular=0.5, density=0.55)
    labels, rho, nuc_rho = rasterize(cells, size, rng)
    cyto, nuc = render(rng, labels, rho, nuc_rho, kind, size)
    # uneven illumination: smooth multiplicative field between about 0.6 and 1.2
    yy, xx = np.mgrid[0:size, 0:size] / size
    gy, gx = rng.uniform(-0.3, 0.3, 2)
    illum = 0.9 + gy * (yy - 0.5) + gx * (xx - 0.5) + 0.08 * smooth_field(rng, size, size / 6)
    chans = [cyto] if channels == 1 else [cyto, nuc]
    img = np.stack([degrade(rng, c, illum, bits) for c in chans], axis=-1)
    return (img[..., 0] if channels == 1 else img), labels.astype(np.uint16)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels", type=int, choices=[1, 2], default=1)
    p.add_argument("--bits", type=int, choices=[0, 8, 16], default=16)
    p.add_argument("--family", default="star",
                   help="star (default), nuclei, cyto, elongated, clumps, mix, or a weighted "
                        "list such as nuclei:3,cyto:3,clumps,elongated")
    p.add_argument("--seamless", type=float, default=None,
                   help="share of images (0-1) whose touching cells meet without a seam "
                        "(families only; default 0.35)")
    p.add_argument("--format", choices=["tif", "npy"], default="tif")
    a = p.parse_args()
    if a.family != "star":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import families
        try:
            families.parse(a.family)
        except ValueError as e:
            p.error(f"--family {a.family}: {e}")
        if a.seamless is not None:
            if not 0 <= a.seamless <= 1:
                p.error(f"--seamless {a.seamless}: give a share between 0 and 1")
            families.render.SEAMLESS = a.seamless
    elif a.bits == 0:
        p.error("--bits 0 (mixed) needs a --family other than star")
    elif a.seamless is not None:
        p.error("--seamless needs a --family other than star")
    os.makedirs(a.out_dir, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    for i in range(a.n):
        if a.family == "star":
            img, masks = make_image(rng, a.size, a.channels, a.bits)
        else:
            bits = a.bits or int(rng.choice([8, 16]))
            img, masks = families.make(a.family, rng, a.size, bits, a.channels)
        stem = os.path.join(a.out_dir, f"img_{i:03d}")
        if a.format == "tif":
            import tifffile
            tifffile.imwrite(stem + ".tif", img, photometric="minisblack")
        else:
            np.save(stem + ".npy", img)
        np.save(stem + "_masks.npy", masks)
    print(f"wrote {a.n} images to {a.out_dir}")


if __name__ == "__main__":
    main()
