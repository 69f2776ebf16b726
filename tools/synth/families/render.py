"""Shared pieces of the training families: shapes to labels, optics, camera.

Every function draws only from the numpy Generator it is given, so an image is a
pure function of its seed. Families build a float "scene" (photons-relative
intensity, about 0..1 for a bright cell) and hand it to `camera`.
"""
import numpy as np
from scipy import ndimage

MIN_AREA = 15  # objects smaller than this (border cuts, overgrown seeds) are dropped


def smooth_field(rng, shape, sigma):
    """Zero-mean, unit-std smooth random field (textures, illumination, blur maps)."""
    f = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def cleanup(labels, min_area=MIN_AREA):
    """Keep each label's largest connected piece, drop small ones, renumber 1..N.

    Pixel-wise shape competition can cut a thin cell in two; Cellpose's flows assume one
    piece per label, so the smaller pieces become background."""
    out = np.zeros(labels.shape, np.int32)
    n = 0
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        pieces, k = ndimage.label(labels[sl] == i)
        if k == 0:
            continue
        sizes = np.bincount(pieces.ravel())[1:]
        if sizes.max() < min_area:
            continue
        n += 1
        out[sl][pieces == sizes.argmax() + 1] = n
    return out


def label_dtype(labels):
    return labels.astype(np.uint16 if labels.max() < 65536 else np.uint32)


def cell_brightness(rng, n, spread):
    """Per-cell brightness, log-uniform over `spread` (10 = a tenfold range), max 1."""
    return np.exp(rng.uniform(-np.log(spread), 0, n))


def thickness(rng, rho):
    """Projected thickness: a widefield image of a 3-D cell sums the stain along the
    light path, so the signal falls to 0 at the outline, as sqrt(1 - rho^2) for a
    sphere or a rod (rho: 0 at the centre, 1 on the outline). Per image: flat cells or
    an optical section (exponent 0) half the time, else an exponent in 0.15-0.6."""
    p = 0.0 if rng.random() < 0.5 else rng.uniform(0.15, 0.6)
    return (1 - np.clip(rho, 0, 1) ** 2) ** p


SEAMLESS = 0.35  # share of images whose cells meet without a seam; synth.py --seamless


def seamless(rng):
    """Whether this image's cells meet without a seam (see union_rho)."""
    return rng.random() < SEAMLESS


def union_rho(labels, width):
    """rho of the cells' union rather than of each cell: 0 at least `width` px inside
    a group of touching cells, toward 1 at its outer edge only. Shading by it leaves no
    dip or ridge where two cells touch, so they are told apart by their brightness and
    shape alone, as with a uniform stain filling confluent cells, cells lying over one
    another, or a blur wider than the seam. The other families' shading (each cell's
    own rho) always marks a shared border; networks trained only on that merge
    seamless neighbours."""
    dist = ndimage.distance_transform_edt(labels > 0)
    return np.where(labels > 0, 1 - np.clip(dist / max(width, 1.0), 0, 1), 1.0)


def illumination(rng, shape):
    """Uneven field: a tilt, a vignette-like falloff and slow blotches, about 0.5..1.2."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    gy, gx = rng.uniform(-0.4, 0.4, 2)
    cy, cx = rng.uniform(0.2, 0.8, 2)
    falloff = rng.uniform(0, 0.6) * ((yy - cy) ** 2 + (xx - cx) ** 2)
    field = 0.95 + gy * (yy - 0.5) + gx * (xx - 0.5) - falloff
    field += 0.08 * smooth_field(rng, shape, max(h, w) / 5)
    return np.clip(field, 0.3, 1.5)


def background(rng, shape):
    """Additive background: an offset plus slowly varying autofluorescence haze."""
    level = rng.uniform(0.0, 0.12)
    haze = rng.uniform(0, 0.05) * np.abs(smooth_field(rng, shape, max(shape) / 8))
    return level + haze


def varying_blur(rng, img, sigma_min, sigma_max):
    """Defocus that changes across the field (a tilted or uneven sample): blend of a few
    Gaussian blurs weighted by a smooth map, so one corner may be sharp and another soft."""
    levels = np.linspace(sigma_min, sigma_max, 4)
    stack = np.stack([ndimage.gaussian_filter(img, s) if s > 0.05 else img for s in levels])
    t = smooth_field(rng, img.shape, max(img.shape) / 3)
    t = (t - t.min()) / (np.ptp(t) + 1e-12) * (len(levels) - 1)
    lo = np.floor(t).astype(int).clip(0, len(levels) - 2)
    frac = t - lo
    pick = lambda k: np.take_along_axis(stack, k[None], 0)[0]
    return pick(lo) * (1 - frac) + pick(lo + 1) * frac


def photo_electrons(rng, scene, photons):
    """Shot noise: a Poisson count of photo-electrons at `photons` per unit intensity."""
    return rng.poisson(np.clip(scene, 0, None) * photons)


def camera(rng, scene, bits, photons=None, read_sd=None):
    """A CCD: Poisson shot noise at `photons` per unit intensity (sets the SNR), Gaussian
    read noise, gain, bias and quantisation to 8 or 16 bits."""
    photons = rng.choice([15.0, 50.0, 150.0, 500.0]) * rng.uniform(0.8, 1.25) \
        if photons is None else photons
    read_sd = rng.uniform(0.5, 5.0) if read_sd is None else read_sd
    counts = photo_electrons(rng, scene, photons).astype(np.float64)
    counts += rng.normal(0, read_sd, scene.shape)
    return digitise(rng, counts, bits, photons, read_sd)


def emccd(rng, scene, bits, photons):
    """An electron-multiplying CCD at low light: each photo-electron is multiplied by a
    random stochastic gain (an exponential per electron, so n electrons give a
    Gamma(n) sum: the excess noise that makes EMCCD images look grainy), plus rare
    clock-induced single-electron events and a little read noise after the gain."""
    electrons = photo_electrons(rng, scene, photons)
    electrons += rng.random(scene.shape) < rng.uniform(0.0, 0.01)  # clock-induced charge
    em_gain = rng.uniform(30, 300)
    out = np.zeros(scene.shape)
    hit = electrons > 0
    out[hit] = rng.gamma(electrons[hit], em_gain)
    out += rng.normal(0, rng.uniform(10, 60), scene.shape)  # read noise, in EM-gained units
    return digitise(rng, out / em_gain, bits, photons, 0.5)


def scmos(rng, scene, bits, photons):
    """A scientific CMOS: every pixel has its own offset, gain and read noise (a few
    pixels noisy), and each column its own offset (faint vertical stripes)."""
    h, w = scene.shape
    counts = photo_electrons(rng, scene, photons).astype(np.float64)
    counts *= 1 + rng.normal(0, 0.015, scene.shape)
    read = rng.lognormal(np.log(rng.uniform(0.8, 2.0)), 0.5, scene.shape)
    counts += rng.normal(0, 1, scene.shape) * read
    counts += rng.normal(0, rng.uniform(0.1, 0.8), (1, w))
    return digitise(rng, counts, bits, photons, float(np.median(read)))


def digitise(rng, counts, bits, photons, read_sd):
    """Gain, bias and quantisation: 8-bit with auto-exposure, or 16-bit with a camera bias."""
    if bits == 8:
        top = np.percentile(counts, 99.9) + 1e-6  # auto-exposure: rarely clipped
        gain = rng.uniform(150, 250) / top
        return np.clip(np.round(counts * gain + rng.uniform(0, 10)), 0, 255).astype(np.uint8)
    gain = rng.uniform(2000, 30000) / photons
    offset = 100 + 4 * read_sd * gain  # camera bias keeps noise above zero
    return np.clip(np.round(counts * gain + offset), 0, 65535).astype(np.uint16)


def defocus_disk(img, radius):
    """A uniform disk PSF (a defocused widefield image): flat-topped, hard-edged blur."""
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    k = (np.hypot(yy, xx) <= radius + 0.5).astype(float)
    return ndimage.convolve(img, k / k.sum(), mode="reflect")


def finish(rng, layers, labels, bits, channels, blur=(0.6, 2.5)):
    """Common optics and camera for a family's noise-free layers.

    layers: [main] or [main, nuclear] float images; one illumination field, one blur map
    and one camera for all channels (same optics), independent noise per channel.
    Cameras: half CCD (15-500 photons per unit intensity), a quarter EMCCD at low light
    (3-40), a quarter sCMOS (10-300); a third of images are defocused by a disk PSF on
    top of the Gaussian blur."""
    shape = labels.shape
    clean = cleanup(labels)
    dropped = (labels > 0) & (clean == 0)  # slivers: not drawn, so no unlabelled bright bits
    layers = [np.where(dropped, 0.0, layer) for layer in layers]
    illum = illumination(rng, shape)
    kind = rng.choice(["ccd", "emccd", "scmos"], p=[0.5, 0.25, 0.25])
    if kind == "ccd":
        photons = rng.choice([15.0, 50.0, 150.0, 500.0]) * rng.uniform(0.8, 1.25)
    elif kind == "emccd":
        photons = float(np.exp(rng.uniform(np.log(3), np.log(40))))
    else:
        photons = float(np.exp(rng.uniform(np.log(10), np.log(300))))
    read_sd = rng.uniform(0.5, 5.0)
    lo = rng.uniform(blur[0], (blur[0] + blur[1]) / 2)
    hi = rng.uniform(lo, blur[1])
    disk = rng.uniform(0.8, 2.5) if rng.random() < 1 / 3 else 0.0
    blur_seed = int(rng.integers(2 ** 31))
    out = []
    for layer in layers[:channels]:
        scene = (layer + background(rng, shape)) * illum
        scene = varying_blur(np.random.default_rng(blur_seed), scene, lo, hi)
        if disk:
            scene = defocus_disk(scene, disk)
        if kind == "ccd":
            out.append(camera(rng, scene, bits, photons, read_sd))
        elif kind == "emccd":
            out.append(emccd(rng, scene, bits, photons))
        else:
            out.append(scmos(rng, scene, bits, photons))
    img = np.stack(out, axis=-1)
    return (img[..., 0] if channels == 1 else img), label_dtype(clean)


class Painter:
    """Rasterises shapes given as rho(dy, dx) maps (rho < 1 inside, 1 on the outline).

    Where outlines overlap a pixel goes to the shape with the smaller rho, so crowded
    cells meet along a shared border instead of one covering the other; with `occlude`
    the later shape covers the earlier ones instead (cells above others in a widefield
    image, or a squash preparation)."""

    def __init__(self, shape, occlude=False):
        self.occlude = occlude
        self.labels = np.zeros(shape, np.int32)
        self.best = np.full(shape, np.inf)
        self.rho = np.full(shape, np.inf)  # the owner's rho, for radial shading
        self.n = 0

    def paint(self, cy, cx, reach, rho_fn):
        """rho_fn(dy, dx) -> rho over a window of half-size `reach` around (cy, cx);
        returns (window slices, the pixels won) or None when outside the image."""
        h, w = self.labels.shape
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, h)
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, w)
        if y0 >= y1 or x0 >= x1:
            return None
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        rho = rho_fn(yy - cy, xx - cx)
        sl = (slice(y0, y1), slice(x0, x1))
        win = (rho < 1) & ((rho < self.best[sl]) | self.occlude)
        if not win.any():
            return None
        self.n += 1
        self.best[sl][win] = rho[win]
        self.rho[sl][win] = rho[win]
        self.labels[sl][win] = self.n
        return sl, win


def radial_outline(rng, radius, aspect, irregular, harmonics=range(2, 6)):
    """rho function of a rotated ellipse whose radius wobbles with a few harmonics."""
    angle = rng.uniform(0, np.pi)
    ks = np.array(list(harmonics), float)
    amps = rng.uniform(0, irregular, ks.size) / np.sqrt(ks)
    phases = rng.uniform(0, 2 * np.pi, ks.size)
    c, s = np.cos(angle), np.sin(angle)

    def rho(dy, dx):
        u = dx * c + dy * s
        v = (-dx * s + dy * c) * aspect
        theta = np.arctan2(v, u)[..., None]
        wobble = 1 + (amps * np.cos(ks * theta + phases)).sum(-1)
        return np.hypot(u, v) / (radius * np.maximum(wobble, 0.3))
    return rho


def lobed_outline(rng, radius, lobes, irregular=0.2, sharpness=10.0):
    """rho function of a cell made of `lobes` blobs fused with smooth necks (a dumbbell,
    a kidney, a clover): not star-convex, as spread or dividing cells often are. The first
    lobe sits on the centre, the others around it, each overlapping it by a little; rho
    is a soft minimum of the lobes' own rho (sharpness: larger gives narrower necks)."""
    a0 = radius * rng.uniform(0.45, 0.65)
    parts = [(0.0, 0.0, radial_outline(rng, a0, rng.uniform(1.0, 1.3), irregular, harmonics=range(2, 4)))]
    for _ in range(lobes - 1):
        a = radius * rng.uniform(0.35, 0.6)
        angle, reach = rng.uniform(0, 2 * np.pi), (a0 + a) * rng.uniform(0.7, 0.9)
        parts.append((reach * np.sin(angle), reach * np.cos(angle),
                      radial_outline(rng, a, rng.uniform(1.0, 1.3), irregular, harmonics=range(2, 4))))

    def rho(dy, dx):
        each = np.stack([fn(dy - oy, dx - ox) for oy, ox, fn in parts])
        return -np.log(np.exp(-sharpness * each).sum(0)) / sharpness
    return rho


def scatter(rng, shape, n, min_dist_fn, tries=30):
    """Up to n centres by rejection sampling; min_dist_fn(i, j) for radii indexes.
    Centres may fall a little outside so that cells are cut by the border."""
    h, w = shape
    pts = []
    for _ in range(n * tries):
        if len(pts) >= n:
            break
        p = rng.uniform([-8, -8], [h + 8, w + 8])
        if all(np.hypot(*(p - q)) > min_dist_fn(len(pts), k) for k, q in enumerate(pts)):
            pts.append(p)
    return np.array(pts).reshape(-1, 2)
