"""Cytoplasm: large (30-80 px), lobed and ruffled, smooth and blobby, or blobs fused
into shapes that are not star-convex; dim, with a nucleus inside; sometimes lying over
one another.

Models cytoplasm stains (phalloidin, CellMask, GFP): outlines with many harmonics
(lobes, ruffles), a granular texture (vesicles), a darker hole where the nucleus is,
weak contrast against the background. Two channels: [cytoplasm, nuclei] as Cellpose's
cyto models expect; the labels are the whole cells."""
import numpy as np

from . import render

DIAMETERS = (30, 80)


def make(rng, size, bits, channels):
    shape = (size, size)
    diam = rng.uniform(*DIAMETERS)
    radii = diam / 2 * rng.uniform(0.75, 1.25, 4000)
    density = rng.uniform(0.3, 0.7)
    n = int(density * size * size / (np.pi * (diam / 2) ** 2)) + 1
    occlude = rng.random() < 0.25  # cells lying over one another, the upper one whole
    gap = 0.55 if occlude else 0.75
    centres = render.scatter(rng, shape, n, lambda i, k: gap * (radii[i] + radii[k]))
    painter = render.Painter(shape, occlude)
    bright = render.cell_brightness(rng, len(centres), rng.choice([2.0, 4.0, 10.0]))
    level = np.zeros(shape)
    nuc = np.zeros(shape)  # nucleus intensity profile, 0 outside nuclei
    # ruffled (many harmonics: lobes), blobby (a few low ones: kidney, pear, triangle), or
    # fused blobs that are not star-convex (dumbbells, clovers: render.lobed_outline)
    kind = rng.choice(["ruffled", "blobby", "fused"], p=[0.35, 0.35, 0.3])
    irregular = rng.uniform(0.2, 0.6) if kind == "ruffled" else rng.uniform(0.3, 0.7)
    harmonics = range(2, 9) if kind == "ruffled" else range(1, 4)
    for i, (cy, cx) in enumerate(centres):
        r = radii[i]
        outline = render.lobed_outline(rng, r, int(rng.integers(2, 5)), rng.uniform(0.1, 0.3)) \
            if kind == "fused" else render.radial_outline(rng, r, rng.uniform(1.0, 1.8), irregular,
                                                          harmonics=harmonics)
        got = painter.paint(cy, cx, 2.0 * r, outline)
        if got is None:
            continue
        sl, win = got
        level[sl][win] = bright[i]
        yy, xx = np.mgrid[sl].astype(np.float64)
        oy, ox = rng.normal(0, 0.12 * r, 2)
        nrho = render.radial_outline(rng, r * rng.uniform(0.28, 0.45), rng.uniform(1, 1.4),
                                     0.08)(yy - cy - oy, xx - cx - ox)
        nuc[sl] = np.where(win & (nrho < 1), 1 - 0.3 * np.minimum(nrho, 1) ** 2, nuc[sl])
    inside = painter.labels > 0
    rho = np.where(inside, painter.rho, 1.0)
    if render.seamless(rng):
        rho = render.union_rho(painter.labels, diam / 2 * rng.uniform(0.1, 0.6))
    # vesicles: sparse bright specks, blurred a little
    specks = (rng.random(shape) < rng.uniform(0.002, 0.02)) * rng.uniform(0, 1.5, shape)
    from scipy import ndimage
    granules = ndimage.gaussian_filter(specks, rng.uniform(0.7, 1.5)) * 6
    texture = 1 + rng.uniform(0.1, 0.3) * render.smooth_field(rng, shape, diam / 10) + granules
    dim = rng.uniform(0.25, 0.7)  # cytoplasm is dimmer than a nuclear stain
    main = dim * level * (1 - 0.4 * rho ** 2) * render.thickness(rng, rho) \
        * np.clip(texture, 0.2, None) * inside
    main = np.where(nuc > 0, main * rng.uniform(0.4, 0.8), main)
    nuclear = level * nuc * (1 + 0.1 * render.smooth_field(rng, shape, 2.0))
    return render.finish(rng, [main, nuclear], painter.labels, bits, channels)
