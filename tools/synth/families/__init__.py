"""Training generator families for tools/synth/synth.py (see tools/synth/README.md).

Each module has make(rng, size, bits, channels) -> (image, labels): image uint8 or
uint16, (H, W) or (H, W, 2) as [main, nuclear]; labels uint16 (uint32 if needed),
0 background, each label one connected piece of at least render.MIN_AREA pixels.
"""
import numpy as np

from . import clumps, cyto, elongated, nuclei

FAMILIES = {"nuclei": nuclei, "cyto": cyto, "elongated": elongated, "clumps": clumps}


def make(name, rng, size, bits, channels):
    """One image of family `name`; 'mix' draws the family from rng (uniformly)."""
    if name == "mix":
        name = list(FAMILIES)[rng.integers(len(FAMILIES))]
    return FAMILIES[name].make(rng, size, bits, channels)
