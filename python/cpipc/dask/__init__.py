"""Images larger than memory, segmented on a Dask cluster with one loaded model per worker.

::

    from dask.distributed import Client, LocalCluster
    import cpipc.dask

    with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:
        labels = cpipc.dask.segment_zarr("image.zarr", "labels.zarr", blocksize=1024, diameter=30)

Each worker runs one ``cpipc serve`` (:class:`Producers`); a block travels
to the worker as coordinates, is read there from the zarr store, and
reaches the producer through a shared segment. Blocks overlap; objects cut
by a block border are merged (``_merge``), and labels are uint32, 1..M.

Needs ``pip install './python[dask]'`` (dask[distributed], zarr, scipy)
and the ``cpipc`` program on every worker (``$CPIPC_BIN`` or ``PATH``).
"""

try:
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
    import scipy  # noqa: F401
    import zarr  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(f"cpipc.dask needs dask[distributed], zarr and scipy ({e.name} is missing): "
                      "pip install './python[dask]'") from e

from ._plugin import Producers
from ._segment import segment_zarr

__all__ = ["segment_zarr", "Producers"]
