"""Training generator families for tools/synth/synth.py (see tools/synth/README.md).

Each module has make(rng, size, bits, channels) -> (image, labels): image uint8 or
uint16, (H, W) or (H, W, 2) as [main, nuclear]; labels uint16 (uint32 if needed),
0 background, each label one connected piece of at least render.MIN_AREA pixels.
"""
import numpy as np

from . import clumps, cyto, elongated, nuclei, render  # noqa: F401 (render: synth.py --seamless)

FAMILIES = {"nuclei": nuclei, "cyto": cyto, "elongated": elongated, "clumps": clumps}


def parse(spec):
    """A family spec as (names, weights): one name, 'mix' (every family, equally), or a
    weighted mix 'nuclei:3,cyto:3,clumps,elongated' (weight 1 where none is given).
    ValueError names what is wrong."""
    if spec == "mix":
        return list(FAMILIES), [1.0] * len(FAMILIES)
    names, weights = [], []
    for part in spec.split(","):
        name, _, w = part.partition(":")
        if name not in FAMILIES:
            raise ValueError(f"unknown family {name!r} (one of {', '.join(FAMILIES)} or mix)")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise ValueError(f"family {name!r}: weight {w!r} is not a number") from None
        if not weight > 0:
            raise ValueError(f"family {name!r}: weight {w!r} must be above 0")
        names.append(name)
        weights.append(weight)
    return names, weights


def make(spec, rng, size, bits, channels):
    """One image of the family spec (see parse); a mix draws the family from rng."""
    names, weights = parse(spec)
    if spec == "mix":  # as before weighted mixes existed: the same bytes for old recipes
        name = names[rng.integers(len(names))]
    elif len(names) == 1:
        name = names[0]
    else:
        name = names[rng.choice(len(names), p=np.asarray(weights) / sum(weights))]
    return FAMILIES[name].make(rng, size, bits, channels)
