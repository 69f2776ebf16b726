"""Dense clumps: cells packed edge to edge inside a tissue-like region, so that
neighbours share long straight or curved borders (epithelia, confluent cultures,
clustered nuclei).

Cells are the regions of a power diagram (Voronoi with per-seed weights, so cell sizes
vary and borders are not midway) cut by a blobby region mask. The stain is either
cytoplasmic (dark borders) or membrane (bright borders); sometimes a 1 px gap
separates neighbours, mostly not. Two channels: [cells, a nucleus in each cell]."""
import numpy as np
from scipy import ndimage

from . import render

DIAMETERS = (12, 50)


def power_diagram(shape, seeds, weights):
    """Index of the seed minimising |p - s|^2 - w at each pixel."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    best = np.full(shape, np.inf)
    owner = np.zeros(shape, np.int32)
    for i, ((sy, sx), w) in enumerate(zip(seeds, weights)):
        d = (yy - sy) ** 2 + (xx - sx) ** 2 - w
        take = d < best
        best[take] = d[take]
        owner[take] = i + 1
    return owner


def make(rng, size, bits, channels):
    shape = (size, size)
    diam = rng.uniform(*DIAMETERS)
    # the clump: a thresholded smooth field covering 30-90 % of the image
    field = render.smooth_field(rng, shape, rng.uniform(1.5, 3) * diam)
    region = field > np.quantile(field, 1 - rng.uniform(0.3, 0.9))
    radii = diam / 2 * rng.uniform(0.7, 1.3, 6000)
    n = int(size * size / (np.pi * (diam / 2) ** 2) * 1.3) + 1
    seeds = render.scatter(rng, shape, n, lambda i, k: 0.85 * (radii[i] + radii[k]) / 1.3,
                           tries=8)
    weights = (radii[:len(seeds)] ** 2) * rng.uniform(0, 0.6)
    labels = power_diagram(shape, seeds, weights) * region
    if rng.random() < 0.3:  # some preparations show a thin gap between cells
        edge = ndimage.maximum_filter(labels, 3) != ndimage.minimum_filter(labels, 3)
        labels = np.where(edge, 0, labels)
    labels = render.cleanup(labels)
    n = labels.max()
    # distance to the cell's border, normalised per cell: shading and nucleus placement
    border = ndimage.maximum_filter(labels, 3) != ndimage.minimum_filter(labels, 3)
    dist = ndimage.distance_transform_edt((labels > 0) & ~border)
    dmax = np.concatenate([[1.0], ndimage.maximum(dist, labels, np.arange(1, n + 1))])
    depth = dist / np.maximum(dmax[labels], 1e-6)  # 0 at the border, 1 at the centre
    inside = labels > 0
    bright = np.concatenate([[0.0], render.cell_brightness(rng, n, rng.choice([2.0, 10.0]))])
    level = bright[labels]
    texture = 1 + rng.uniform(0.05, 0.3) * render.smooth_field(rng, shape, diam / 8)
    if rng.random() < 0.5:  # cytoplasmic stain: dimmer toward shared borders, or seamless
        shade = 1 - render.union_rho(labels, diam / 2 * rng.uniform(0.2, 1.0)) \
            if render.seamless(rng) else depth
        main = level * (0.55 + 0.45 * np.sqrt(shade)) * render.thickness(rng, 1 - shade) \
            * texture * inside
    else:  # membrane stain: bright borders, dim interior
        main = level * (0.25 + 0.75 * np.exp(-dist / 1.5)) * texture * inside
    nucleus = inside & (depth > rng.uniform(0.45, 0.65))
    main = np.where(nucleus, main * rng.uniform(0.6, 1.0), main)
    nuclear = level * nucleus * (1 + 0.15 * render.smooth_field(rng, shape, 1.5))
    return render.finish(rng, [main, nuclear], labels, bits, channels)
