"""segment_zarr: a large image, cut into overlapping blocks, segmented on a Dask cluster."""

import hashlib
import inspect
import math
import os
import shutil
import tempfile
import uuid
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import dask.array as da
import numpy as np
import zarr
from distributed import Client as DaskClient
from distributed import get_client, progress as dask_progress

from ..client import Client
from ..errors import BadInput
from ._grid import Block, grid_shape, make_blocks, per_axis
from ._merge import block_faces, relabeling
from ._plugin import Producers, producers_on_this_worker

__all__ = ["segment_zarr"]

# What Client.segment takes, besides the image and what segment_zarr sets itself.
_OPTIONS = set(inspect.signature(Client.submit).parameters) - {"self", "image", "channel_axis", "z_axis", "progress"}
# Cellpose's distributed_eval: twice the diameter of context around every block.
_OVERLAP_DIAMETERS = 2.0
# How long one block may take in its producer unless the caller says (Client.segment's timeout).
_BLOCK_TIMEOUT_S = 3600.0
# The diameter a network without a size model is run at (Cellpose's diam_mean): the overlap without a diameter.
_DEFAULT_DIAMETER = 30.0


def _open_input(source: Any):
    if isinstance(source, (str, os.PathLike)):
        try:
            return zarr.open_array(os.fspath(source), mode="r")
        except Exception as e:  # zarr's errors differ between versions; say what was asked
            raise BadInput(f"cannot open {os.fspath(source)!r} as a zarr array: {e}") from None
    if isinstance(source, np.ndarray):
        return da.from_array(source, chunks=source.shape)
    if isinstance(source, (zarr.Array, da.Array)):
        return source
    raise BadInput(f"input must be a zarr array or its path, a dask array or a numpy array, not {type(source).__name__}")


def _read(source: Any, crop: Tuple[slice, ...], channel_axis: Optional[int]) -> np.ndarray:
    region = list(crop)
    if channel_axis is not None:
        region.insert(channel_axis, slice(None))
    return np.asarray(source[tuple(region)])


def _segment_block(block: Block, image: Any, plugin: str, channel_axis: Optional[int], nspatial: int,
                   sink: Any, options: Dict[str, Any]) -> dict:
    """On a worker: read (or take) the block's pixels, segment them with
    this worker's producer, keep the core's objects numbered 1..n, store
    them, and return what the merge needs (counts and border planes)."""
    result = _segment_pixels(block, image, plugin, channel_axis, nspatial, options)
    labels = result.masks
    crop_shape = tuple(s.stop - s.start for s in block.crop)
    if labels.shape != crop_shape:
        raise BadInput(f"block {block.index}: masks of shape {labels.shape} for a crop of {crop_shape}")
    core = labels[block.inner]
    kept = np.unique(core)
    kept = kept[kept > 0]
    lut = np.zeros(int(labels.max()) + 1, np.uint32)
    lut[kept] = np.arange(1, len(kept) + 1, dtype=np.uint32)
    local = lut[core]
    stored = _store(sink, block, local)
    return {"index": block.index, "count": len(kept), "faces": block_faces(labels, lut, block.inner),
            "stored": stored, "diameter": result.diameter}


def _store(sink: Any, block: Block, local: np.ndarray) -> Optional[np.ndarray]:
    if sink is None:
        return local  # kept on the worker, as a future
    sink[block.core] = local
    return None


def _relabel_into(block: Block, sink: Any, table: np.ndarray, output: Any) -> int:
    """On a worker: the block's stored labels, renumbered, into the output."""
    output[block.core] = table[np.asarray(sink[block.core])]
    return int(table.max(initial=0))


def _relabel(summary: dict, table: np.ndarray) -> np.ndarray:
    return table[summary["stored"]]


def _estimate_diameter(client: DaskClient, image: Any, block: Block, plugin: str, channel_axis: Optional[int],
                       nspatial: int, options: Dict[str, Any]) -> float:
    """The size model's diameter for the middle block, used for every block
    (so that all blocks are segmented at one scale and their borders agree)."""
    return client.submit(_diameter_of_block, block, _input_for(client, image, block, channel_axis), plugin,
                         channel_axis, nspatial, options, key=f"cpipc-diameter-{uuid.uuid4().hex}").result()


def _diameter_of_block(block: Block, image: Any, plugin: str, channel_axis: Optional[int], nspatial: int,
                       options: Dict[str, Any]) -> float:
    return float(_segment_pixels(block, image, plugin, channel_axis, nspatial, options).diameter)


def _segment_pixels(block: Block, image: Any, plugin: str, channel_axis: Optional[int], nspatial: int,
                    options: Dict[str, Any]):
    """On a worker: the block's pixels (read from storage, or already computed), through this worker's producer."""
    pixels = _read(image, block.crop, channel_axis) if not isinstance(image, np.ndarray) else image
    return producers_on_this_worker(plugin).segment(pixels, **_axes(channel_axis, nspatial), **options)


def _axes(channel_axis: Optional[int], nspatial: int) -> Dict[str, int]:
    axes = {} if channel_axis is None else {"channel_axis": channel_axis}
    if nspatial == 3:
        axes["z_axis"] = 0 if channel_axis != 0 else 1
    return axes


def _input_for(client: DaskClient, image: Any, block: Block, channel_axis: Optional[int]) -> Any:
    """What a block task gets: a zarr array it reads its crop from (workers
    read storage; pixels never pass the scheduler), or for a dask array the
    crop computed on the cluster as a future."""
    if isinstance(image, da.Array):
        region = list(block.crop)
        if channel_axis is not None:
            region.insert(channel_axis, slice(None))
        return client.compute(image[tuple(region)])
    return image


def _default_overlap(diameter: float, nspatial: int, anisotropy: Optional[float]) -> Tuple[int, ...]:
    """Twice the diameter of context on every side; in Z, in planes: a cell of
    ``diameter`` px spans diameter / anisotropy planes (anisotropy: Z step / pixel size)."""
    xy = math.ceil(_OVERLAP_DIAMETERS * diameter)
    if nspatial == 2:
        return (xy, xy)
    return (max(1, math.ceil(_OVERLAP_DIAMETERS * diameter / float(anisotropy or 1.0))), xy, xy)


def _plugin_name(model: Optional[str], device: str, args: Sequence[str]) -> str:
    key = repr((os.fspath(model) if model else None, device, list(args))).encode()
    return "cpipc-producers-" + hashlib.sha1(key).hexdigest()[:12]


def _zarr_path(array: Any) -> Optional[str]:
    """The directory a zarr array lives in, when its store is a local directory."""
    store = getattr(array, "store", None)
    for attr in ("root", "path", "dir_path"):
        root = getattr(store, attr, None)
        if root is not None and os.path.isdir(os.fspath(root)):
            return os.fspath(root)
    return None


def segment_zarr(input: Any, output: Any = None, blocksize: Union[int, Sequence[int]] = 1024, overlap: Any = None,
                 client: Optional[DaskClient] = None, model: Optional[str] = None, diameter: Optional[float] = None,
                 channels: Sequence[int] = (0, 0), foreground_mask: Any = None, *, channel_axis: Optional[int] = None,
                 device: str = "auto", serve_args: Sequence[str] = (), temp_dir: Optional[str] = None,
                 keep_producers: bool = False, progress: bool = False, binary: Optional[str] = None,
                 **cellpose_options) -> Any:
    """Segments an image larger than memory, block by block, on a Dask cluster.

    ``input``: a zarr array or its path, or a dask (or numpy) array:
    ``[Y, X]`` or ``[Y, X, C]`` (``channel_axis`` says where C is, default
    last); with ``do_3d=True`` or ``stitch_threshold`` a z-stack ``[Z, Y, X]``
    or ``[Z, Y, X, C]``, cut into blocks in Z too (``blocksize`` and
    ``overlap`` then take three values, or one for all axes).
    ``output``: a path (a uint32 zarr array is created there, chunked by
    ``blocksize``) or a zarr array of the image's spatial shape whose chunks
    divide ``blocksize``; None returns a dask array of the labels, held in
    the workers' memory. ``overlap``: px of context on every side of a
    block (default twice the diameter, as Cellpose's distributed_eval; in
    Z twice the diameter / ``anisotropy`` planes).
    ``diameter``: None estimates it once, on the middle block, with the
    model's size model. ``foreground_mask``: a boolean array over the same
    field of view at any resolution: blocks without foreground are skipped
    (their labels stay 0). ``cellpose_options``: ``cpipc.Client.segment``'s
    (flow_threshold, cellprob_threshold, min_size, normalize, ...;
    ``timeout``: seconds one block may take, default 3600).
    ``client``: the Dask client (default: the current one). Every worker
    runs one ``cpipc serve --model MODEL --device DEVICE SERVE_ARGS``
    (see :class:`cpipc.dask.Producers`), stopped at the end unless
    ``keep_producers``. ``progress=True`` shows Dask's progress bar; the
    dashboard shows the blocks as ``cpipc-block`` tasks.

    Returns the output zarr array, or the dask array. Labels are uint32,
    1..M, one id per object; objects cut by block borders are merged.
    """
    unknown = set(cellpose_options) - _OPTIONS
    if unknown:
        raise BadInput(f"segment_zarr: unknown option(s) {sorted(unknown)}; it takes {sorted(_OPTIONS)}")
    image = _open_input(input)
    # 3-D (do_3d, or 2-D planes stitched in Z): blocks are cut in Z too, and merged
    # across Z borders as across Y and X ones.
    nspatial = 3 if cellpose_options.get("do_3d") or cellpose_options.get("stitch_threshold") else 2
    want = "Z, Y, X" if nspatial == 3 else "Y, X"
    if image.ndim == nspatial:
        channel_axis = None
    elif image.ndim == nspatial + 1:
        channel_axis = image.ndim - 1 if channel_axis is None else int(channel_axis) % image.ndim
    else:
        hint = "" if nspatial == 3 or image.ndim != 4 else " (a z-stack needs do_3d=True or stitch_threshold)"
        raise BadInput(f"input of shape {tuple(image.shape)}: expected [{want}] or [{want}, C]{hint}")
    shape = tuple(int(s) for i, s in enumerate(image.shape) if i != channel_axis)
    blocksize = per_axis(blocksize, nspatial, "blocksize")
    blocksize = tuple(min(b, s) for b, s in zip(blocksize, shape))
    if min(blocksize) < 1:
        raise BadInput(f"blocksize must be at least 1 px, not {blocksize}")
    if foreground_mask is not None and np.ndim(foreground_mask) != nspatial:
        raise BadInput(f"foreground_mask must have {nspatial} axes (the image's spatial ones), "
                       f"not shape {np.shape(foreground_mask)}")
    if diameter is not None and not (math.isfinite(float(diameter)) and float(diameter) >= 0):
        raise BadInput(f"diameter must be a finite number >= 0, not {diameter!r}")

    if overlap is not None:
        overlap = per_axis(overlap, nspatial, "overlap")
        if min(overlap) < 1:
            raise BadInput(f"overlap must be at least 1 px (blocks are merged where they overlap), not {overlap}")

    if client is None:
        try:
            client = get_client()
        except ValueError:
            raise BadInput("segment_zarr needs a Dask cluster: pass client=, or create a "
                           "distributed.Client first (e.g. Client(LocalCluster()))") from None
    options = dict(cellpose_options, channels=tuple(int(c) for c in channels))
    # Every wait has a deadline: a block that a producer has not finished in this
    # long fails (and Dask retries it) instead of holding the run forever.
    options.setdefault("timeout", _BLOCK_TIMEOUT_S)
    plugin = _plugin_name(model, device, serve_args)
    client.register_plugin(Producers(plugin, model=model, device=device, args=serve_args, binary=binary), name=plugin)
    tmp = None
    try:
        blocks = make_blocks(shape, blocksize, (0,) * nspatial, foreground_mask)
        if not diameter:  # None or 0: estimated, once
            middle = make_blocks(shape, blocksize, (0,) * nspatial)
            diameter = _estimate_diameter(client, image, middle[len(middle) // 2], plugin, channel_axis, nspatial,
                                          options)
        options["diameter"] = float(diameter)
        if overlap is None:
            overlap = _default_overlap(float(diameter or _DEFAULT_DIAMETER), nspatial, options.get("anisotropy"))
        blocks = make_blocks(shape, blocksize, overlap, foreground_mask)

        out = _open_output(output, shape, blocksize)
        if out is not None:
            out_dir = _zarr_path(out)
            where = temp_dir or (os.path.dirname(out_dir.rstrip("/")) if out_dir else None)
            tmp = tempfile.mkdtemp(prefix=".cpipc-blocks-", dir=where)
            sink = zarr.open_array(tmp, mode="w", shape=shape, chunks=blocksize, dtype="uint32", fill_value=0)
        else:
            sink = None

        token = uuid.uuid4().hex[:8]
        futures = [client.submit(_segment_block, b, _input_for(client, image, b, channel_axis), plugin,
                                 channel_axis, nspatial, sink, options, key=f"cpipc-block-{token}-{i}",
                                 retries=2, pure=False)
                   for i, b in enumerate(blocks)]
        if progress:
            dask_progress(futures)
        if out is None:
            return _in_memory(client, blocks, futures, shape, blocksize, token)
        summaries = client.gather(futures)
        tables, _ = relabeling([{k: s[k] for k in ("index", "count", "faces")} for s in summaries])
        writes = [client.submit(_relabel_into, b, sink, tables[b.index], out, key=f"cpipc-relabel-{token}-{i}",
                                retries=2, pure=False)
                  for i, b in enumerate(blocks)]
        if progress:
            dask_progress(writes)
        client.gather(writes)
        return out
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if not keep_producers:
            client.unregister_worker_plugin(plugin)


def _open_output(output: Any, shape: Tuple[int, ...], blocksize: Tuple[int, ...]):
    if output is None:
        return None
    if isinstance(output, (str, os.PathLike)):
        return zarr.open_array(os.fspath(output), mode="w", shape=shape, chunks=blocksize, dtype="uint32",
                               fill_value=0)
    if not isinstance(output, zarr.Array):
        raise BadInput(f"output must be a zarr array, its path, or None, not {type(output).__name__}")
    if tuple(output.shape) != shape:
        raise BadInput(f"output has shape {tuple(output.shape)}; the image's spatial shape is {shape}")
    if np.dtype(output.dtype) != np.uint32:
        raise BadInput(f"output must be uint32 (labels), not {output.dtype}")
    if any(b % c for b, c in zip(blocksize, output.chunks)):
        raise BadInput(f"output chunks {tuple(output.chunks)} must divide blocksize {blocksize}: "
                       "two blocks would write one chunk at once")
    return output


def _in_memory(client: DaskClient, blocks, futures, shape, blocksize, token) -> da.Array:
    """Labels kept on the workers: renumbered block by block into a dask array."""
    summaries = client.gather([client.submit(_summary_only, f, key=f"cpipc-faces-{token}-{i}")
                               for i, f in enumerate(futures)])
    tables, _ = relabeling(summaries)
    by_index = {b.index: (b, f) for b, f in zip(blocks, futures)}
    grid = grid_shape(shape, blocksize)
    pieces = np.empty(grid, dtype=object)
    for index in np.ndindex(*grid):
        core_shape = tuple(min((i + 1) * b, s) - i * b for i, b, s in zip(index, blocksize, shape))
        if index in by_index:
            block, future = by_index[index]
            relabelled = client.submit(_relabel, future, tables[index], key=f"cpipc-relabel-{token}-{index}")
            pieces[index] = da.from_delayed(relabelled, core_shape, dtype=np.uint32)
        else:
            pieces[index] = da.zeros(core_shape, dtype=np.uint32, chunks=core_shape)
    return da.block(pieces.tolist())


def _summary_only(summary: dict) -> dict:
    return {k: summary[k] for k in ("index", "count", "faces")}
