"""Merging blocks: objects cut by a block border become one, and every id is used once.

Each block numbers its objects 1..n; block b's object k is ``offset[b] + k``
globally. Two neighbouring blocks both segmented the planes on either side
of their shared border (one as its core, the other as overlap), so each
border plane has two answers for the same pixels. An object of one block
and an object of the other are the same cell when they cover mostly the
same of those pixels (more than half of either one's). Those pairs form a
graph; its connected components are the final objects, numbered 1..M in
the order of their first block.

Cellpose's distributed_eval compares the two *core* faces instead (each
block's outermost plane, one pixel apart) after shrinking the labels in
the face by one pixel, so two different cells that touch right at the
border merge unless the shrinking separates them. Comparing the same
pixels twice needs no such guess.
"""

from typing import Dict, Sequence, Tuple

import numpy as np

Faces = Dict[str, list]

# More than this fraction of either object's border pixels in common: the same object.
_SHARED = 0.5


def block_faces(labels: np.ndarray, lut: np.ndarray, inner: Tuple[slice, ...]) -> Faces:
    """The planes a block's neighbours compare with: per spatial axis, its
    first and last core planes and the planes just outside its core (in its
    overlap; None at the image border), all restricted to the core's extent
    along the other axes and numbered as the block's kept objects (0: none)."""
    ndim = labels.ndim
    faces: Faces = {"first": [], "last": [], "before": [], "after": []}
    for axis in range(ndim):
        def plane(i: int) -> np.ndarray:
            region = list(inner)
            region[axis] = slice(i, i + 1)
            return np.ascontiguousarray(lut[labels[tuple(region)]]).squeeze(axis)

        lo, hi = inner[axis].start, inner[axis].stop
        faces["first"].append(plane(lo))
        faces["last"].append(plane(hi - 1))
        faces["before"].append(plane(lo - 1) if lo > 0 else None)
        faces["after"].append(plane(hi) if hi < labels.shape[axis] else None)
    return faces


def _pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[2, K]: pairs (object of a, object of b) that are the same object."""
    a, b = a.ravel().astype(np.int64), b.ravel().astype(np.int64)
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.empty((2, 0), np.int64)
    pairs, shared = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    ids_a, size_a = np.unique(a[a > 0], return_counts=True)
    ids_b, size_b = np.unique(b[b > 0], return_counts=True)
    of_a = size_a[np.searchsorted(ids_a, pairs[0])]
    of_b = size_b[np.searchsorted(ids_b, pairs[1])]
    same = (shared > _SHARED * of_a) | (shared > _SHARED * of_b)
    return pairs[:, same]


def relabeling(summaries: Sequence[dict]) -> Tuple[Dict[Tuple[int, ...], np.ndarray], int]:
    """Per block (by grid index), the table that turns its 1..n numbering
    into the final ids (entry 0 stays 0); and the number of final objects."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    by_index = {tuple(s["index"]): s for s in summaries}
    order = sorted(by_index)
    offset, total = {}, 0
    for index in order:
        offset[index] = total
        total += int(by_index[index]["count"])

    edges = [np.empty((2, 0), np.int64)]
    for index in order:
        mine = by_index[index]
        for axis in range(len(index)):
            next_index = tuple(i + (1 if a == axis else 0) for a, i in enumerate(index))
            theirs = by_index.get(next_index)
            if theirs is None or not mine["count"] or not theirs["count"]:
                continue
            # The border lies between my last core plane and their first one;
            # each of us also segmented the other's plane, as overlap.
            mine_view = [mine["faces"]["last"][axis], mine["faces"]["after"][axis]]
            their_view = [theirs["faces"]["before"][axis], theirs["faces"]["first"][axis]]
            if mine_view[1] is None or their_view[0] is None:
                raise ValueError("blocks without overlap cannot be merged")  # segment_zarr refuses overlap 0
            pairs = _pairs(np.concatenate([v.ravel() for v in mine_view]),
                           np.concatenate([v.ravel() for v in their_view]))
            edges.append(pairs + np.array([[offset[index]], [offset[next_index]]]))

    ends = np.concatenate(edges, axis=1)
    graph = coo_matrix((np.ones(ends.shape[1], np.int8), (ends[0], ends[1])), shape=(total + 1, total + 1))
    _, component = connected_components(graph, directed=False)
    # Final ids 1..M in the order of each object's first (lowest) global id.
    _, first, dense = np.unique(component[1:], return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(1, len(first) + 1)
    final = np.zeros(total + 1, np.uint32)
    final[1:] = rank[dense.ravel()]
    tables = {}
    for index in order:
        n = int(by_index[index]["count"])
        table = np.zeros(n + 1, np.uint32)
        table[1:] = final[offset[index] + 1:offset[index] + n + 1]
        tables[index] = table
    return tables, len(first)
