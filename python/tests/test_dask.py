"""cpipc.dask on a real dask.distributed LocalCluster (2 worker processes):
a 4096² image in 1024² zarr blocks against one whole-image segmentation,
a worker killed mid-run, dask arrays in and out, foreground masks, and
every producer gone afterwards."""

import importlib.util
import os
import signal
import threading
import time

import numpy as np
import pytest

pytest.importorskip("dask.array", reason="cpipc.dask needs the [dask] extra: pip install './python[dask]'")
pytest.importorskip("distributed", reason="cpipc.dask needs the [dask] extra: pip install './python[dask]'")
pytest.importorskip("zarr", reason="cpipc.dask needs the [dask] extra: pip install './python[dask]'")
pytest.importorskip("scipy", reason="cpipc.dask needs the [dask] extra: pip install './python[dask]'")

import dask.array as da  # noqa: E402
import zarr  # noqa: E402
from distributed import Client as DaskClient  # noqa: E402
from distributed import LocalCluster  # noqa: E402
from scipy import ndimage  # noqa: E402

import cpipc  # noqa: E402
import cpipc.dask  # noqa: E402

from producer import cpipc_binary  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SIZE, BLOCK, DIAMETER = 4096, 1024, 30.0


@pytest.fixture(scope="module", autouse=True)
def cpipc_program():
    """The CLI under test (the default build's unless $CPIPC_BIN says otherwise), for
    cpipc.serve here and for the producers the workers start (segment_zarr resolves it)."""
    before = os.environ.get("CPIPC_BIN")
    os.environ["CPIPC_BIN"] = cpipc_binary()
    yield
    if before is None:
        del os.environ["CPIPC_BIN"]
    else:
        os.environ["CPIPC_BIN"] = before


def _synth():
    spec = importlib.util.spec_from_file_location("synth", os.path.join(REPO, "tools", "synth", "synth.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def field_of_cells(size: int, seed: int) -> np.ndarray:
    """A uint16 field of nuclei-like cells (tools/synth's shapes, rendering and
    camera) with the same statistics everywhere: a jittered grid of centres,
    so that thousands of cells are placed in seconds."""
    synth = _synth()
    rng = np.random.default_rng(seed)
    step = DIAMETER * 1.25
    centres = np.arange(step / 2, size, step)
    cy, cx = np.meshgrid(centres, centres, indexing="ij")
    keep = rng.random(cy.shape) < 0.7
    cy = cy[keep] + rng.uniform(-0.2, 0.2, keep.sum()) * step
    cx = cx[keep] + rng.uniform(-0.2, 0.2, keep.sum()) * step
    cells = [dict(cy=y, cx=x, shape=synth.star_shape(rng, DIAMETER / 2 * rng.uniform(0.8, 1.15), 0.15))
             for y, x in zip(cy, cx)]
    labels, rho, nuc_rho = synth.rasterize(cells, size, rng)
    clean, _ = synth.render(rng, labels, rho, nuc_rho, "nuclei", size)
    return synth.degrade(rng, clean, np.ones((size, size)), 16)


def average_precision(truth: np.ndarray, found: np.ndarray, threshold: float = 0.5):
    """Cellpose's AP at one IoU threshold (TP / (TP + FP + FN)) and the two counts."""
    t, f = truth.ravel().astype(np.int64), found.ravel().astype(np.int64)
    nt, nf = int(t.max()) + 1, int(f.max()) + 1
    both = (t > 0) & (f > 0)
    pairs, inter = np.unique(t[both] * nf + f[both], return_counts=True)
    area_t, area_f = np.bincount(t, minlength=nt), np.bincount(f, minlength=nf)
    ti, fi = pairs // nf, pairs % nf
    iou = inter / (area_t[ti] + area_f[fi] - inter)
    tp = int((iou > threshold).sum())  # IoU > 0.5 pairs are one to one
    n_true, n_found = int((area_t[1:] > 0).sum()), int((area_f[1:] > 0).sum())
    return tp / max(n_true + n_found - tp, 1), n_true, n_found


def assert_one_piece_per_id(labels: np.ndarray, connectivity: int = 1) -> None:
    """Ids 1..M, each one connected object: no id is used for two objects
    (connectivity as scipy.ndimage's: 1 faces only, labels.ndim also corners)."""
    structure = ndimage.generate_binary_structure(labels.ndim, connectivity)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    assert np.array_equal(ids, np.arange(1, len(ids) + 1)), "label ids are not 1..M"
    boxes = ndimage.find_objects(labels)
    split = [i + 1 for i, box in enumerate(boxes)
             if box is not None and ndimage.label(labels[box] == i + 1, structure)[1] != 1]
    assert not split, f"{len(split)} ids label more than one object, e.g. {split[:5]}"


def serve_processes():
    """pids of the cpipc serve producers that cpipc.dask starts (streams dask<pid>-<n>)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and b"--name" in argv:
            name = argv[argv.index(b"--name") + 1]
            if name.startswith(b"dask") and b"--lifeline" in argv:
                found.append(int(pid))
    return found


def assert_producers_gone(timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while serve_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not serve_processes(), "cpipc serve producers left running"
    left = [f for f in os.listdir("/dev/shm") if f.startswith(f"cpipc.{os.geteuid()}.dask")]
    assert not left, f"segments left in /dev/shm: {left}"
    # Input segments of a worker killed with SIGKILL are collected by the plugin.
    orphans = [s["name"] for s in cpipc.list_segments()
               if s["name"].startswith("py") and s.get("producer_alive") is False]
    assert not orphans, f"input segments of dead clients left behind: {orphans}"
    sockets = os.path.dirname(cpipc.default_socket_path("dask"))
    if os.path.isdir(sockets):
        left = [f for f in os.listdir(sockets) if f.startswith("dask")]
        assert not left, f"sockets left in {sockets}: {left}"


def test_bad_arguments_are_refused_before_any_work():
    """First in the module: no Dask client exists yet (the cluster fixture comes later)."""
    image = np.zeros((64, 64), np.uint16)
    with pytest.raises(cpipc.BadInput, match="overlap must be at least 1"):
        cpipc.dask.segment_zarr(image, None, blocksize=32, overlap=0)
    with pytest.raises(cpipc.BadInput, match="unknown option"):
        cpipc.dask.segment_zarr(image, None, blocksize=32, flow_treshold=0.4)
    with pytest.raises(cpipc.BadInput, match="blocksize needs 2 values"):
        cpipc.dask.segment_zarr(image, None, blocksize=(8, 8, 8))
    with pytest.raises(cpipc.BadInput, match=r"expected \[Y, X\]"):
        cpipc.dask.segment_zarr(np.zeros((2, 3, 4, 5), np.uint16), None, blocksize=32)
    with pytest.raises(cpipc.BadInput, match=r"expected \[Z, Y, X\]"):
        cpipc.dask.segment_zarr(image, None, blocksize=32, do_3d=True)
    with pytest.raises(cpipc.BadInput, match="blocksize needs 3 values"):
        cpipc.dask.segment_zarr(np.zeros((4, 64, 64), np.uint16), None, blocksize=(32, 32), do_3d=True)
    with pytest.raises(cpipc.BadInput, match="needs do_3d=True or stitch_threshold"):
        cpipc.dask.segment_zarr(np.zeros((4, 64, 64, 2), np.uint16), None, blocksize=32)
    with pytest.raises(cpipc.BadInput, match="needs a Dask cluster"):
        cpipc.dask.segment_zarr(image, None, blocksize=32)
    with pytest.raises(cpipc.BadInput, match="cannot open"):
        cpipc.dask.segment_zarr("/nonexistent/image.zarr", None, blocksize=32)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """The 4096² image as a zarr array in 1024² chunks, and its whole-image segmentation."""
    image = field_of_cells(SIZE, seed=0)
    path = str(tmp_path_factory.mktemp("dask") / "image.zarr")
    z = zarr.open_array(path, mode="w", shape=image.shape, chunks=(BLOCK, BLOCK), dtype=image.dtype)
    z[...] = image
    with cpipc.serve(f"pytest-whole-{os.getpid()}", device="cpu") as server, \
            cpipc.Client(socket=server.socket) as client:
        whole = client.segment(image, diameter=DIAMETER).masks
    return path, image, whole


@pytest.fixture(scope="module")
def dask_client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            DaskClient(cluster) as client:
        yield client
    assert_producers_gone()


def check_against_whole(labels: np.ndarray, whole: np.ndarray) -> None:
    ap, n_whole, n_blocks = average_precision(whole, labels)
    print(f"AP@0.5 {ap:.4f}: {n_blocks} objects in blocks, {n_whole} in the whole image")
    assert n_whole > 5000, f"the fixture should hold thousands of cells, not {n_whole}"
    assert ap >= 0.98, f"AP@0.5 {ap:.4f} against the whole-image segmentation ({n_blocks} vs {n_whole} objects)"
    assert abs(n_blocks - n_whole) <= 0.01 * n_whole, f"{n_blocks} objects in blocks, {n_whole} in the whole image"
    assert_one_piece_per_id(labels)


def test_a_4096_image_in_1024_blocks_matches_the_whole_image(big, dask_client, tmp_path):
    path, _, whole = big
    out = cpipc.dask.segment_zarr(path, str(tmp_path / "labels.zarr"), blocksize=BLOCK, client=dask_client,
                                  diameter=DIAMETER, device="cpu")
    labels = np.asarray(out[...])
    assert labels.dtype == np.uint32 and labels.shape == (SIZE, SIZE)
    check_against_whole(labels, whole)
    # The producers are stopped with the run; the blocks' scratch store is gone.
    assert_producers_gone()
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".cpipc-blocks-")]


def test_a_worker_killed_mid_run_is_replaced_and_the_result_still_matches(big, dask_client, tmp_path):
    path, _, whole = big
    workers = dask_client.run(os.getpid)
    outcome = {}

    def run():
        try:
            outcome["labels"] = cpipc.dask.segment_zarr(path, str(tmp_path / "labels.zarr"), blocksize=BLOCK,
                                                        client=dask_client, diameter=DIAMETER, device="cpu")
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    # Kill a worker (SIGKILL: no teardown, no goodbye) once blocks are being written.
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and thread.is_alive():
        done = dask_client.run_on_scheduler(
            lambda dask_scheduler: sum(1 for k, t in dask_scheduler.tasks.items()
                                       if "cpipc-block" in str(k) and t.state == "memory"))
        if done >= 2:
            break
        time.sleep(0.5)
    victim_address, victim_pid = sorted(workers.items())[0]
    producers_before = set(serve_processes())
    os.kill(victim_pid, signal.SIGKILL)
    thread.join(900)
    assert not thread.is_alive(), "segment_zarr did not finish after a worker was killed"
    if "error" in outcome:
        raise outcome["error"]
    check_against_whole(np.asarray(outcome["labels"][...]), whole)
    assert producers_before, "no producers were running while the blocks were segmented"
    assert victim_pid not in dask_client.run(os.getpid).values(), "the killed worker is still listed"
    assert_producers_gone()


def test_dask_arrays_in_and_out_and_a_foreground_mask_skips_empty_blocks(big, dask_client):
    _, image, _ = big
    small = image[:1536, :1536]
    with cpipc.serve(f"pytest-small-{os.getpid()}", device="cpu") as server, \
            cpipc.Client(socket=server.socket) as client:
        whole = client.segment(small, diameter=DIAMETER).masks
    labels = cpipc.dask.segment_zarr(da.from_array(small, chunks=512), None, blocksize=768, client=dask_client,
                                     diameter=DIAMETER, device="cpu")
    assert isinstance(labels, da.Array) and labels.dtype == np.uint32 and labels.shape == small.shape
    computed = labels.compute()
    ap, n_whole, n_found = average_precision(whole, computed)
    assert ap >= 0.98, f"AP@0.5 {ap:.4f} ({n_found} vs {n_whole} objects)"
    assert_one_piece_per_id(computed)

    # A quarter-resolution mask with foreground only in the top-left block.
    mask = np.zeros((384, 384), bool)
    mask[10:100, 10:100] = True
    masked = cpipc.dask.segment_zarr(da.from_array(small, chunks=512), None, blocksize=768, client=dask_client,
                                     diameter=DIAMETER, device="cpu", foreground_mask=mask).compute()
    assert masked[768:].max() == 0 and masked[:, 768:].max() == 0, "blocks without foreground were segmented"
    top_left = masked[:768, :768]
    assert top_left.max() > 100
    assert_one_piece_per_id(masked)
    assert_producers_gone()


def test_a_two_channel_image_with_its_channel_axis_first(big, dask_client):
    """[C, Y, X] with channel_axis=0 and Cellpose's channels=(2, 0): the cells are in the second channel."""
    _, image, _ = big
    cells = image[:768, :768]
    noise = np.random.default_rng(3).integers(0, 200, cells.shape).astype(np.uint16)
    stack = np.stack([noise, cells])
    with cpipc.serve(f"pytest-channels-{os.getpid()}", device="cpu") as server, \
            cpipc.Client(socket=server.socket) as client:
        whole = client.segment(np.moveaxis(stack, 0, -1), diameter=DIAMETER, channels=(2, 0)).masks
    labels = cpipc.dask.segment_zarr(da.from_array(stack, chunks=(2, 384, 384)), None, blocksize=384,
                                     client=dask_client, diameter=DIAMETER, channels=(2, 0), channel_axis=0,
                                     device="cpu").compute()
    assert labels.shape == cells.shape
    ap, n_whole, n_found = average_precision(whole, labels)
    assert n_whole > 200 and ap >= 0.98, f"AP@0.5 {ap:.4f} ({n_found} vs {n_whole} objects)"


def test_a_producer_killed_under_a_living_worker_is_started_again(big, dask_client):
    """SIGKILL one worker's cpipc serve while blocks run: the worker starts another
    (which takes over the dead one's socket and segment) and retries its block."""
    _, image, _ = big
    small = image[:1536, :1536]
    with cpipc.serve(f"pytest-restart-{os.getpid()}", device="cpu") as server, \
            cpipc.Client(socket=server.socket) as client:
        whole = client.segment(small, diameter=DIAMETER).masks
    outcome = {}

    def run():
        try:
            outcome["labels"] = cpipc.dask.segment_zarr(da.from_array(small, chunks=768), None, blocksize=512,
                                                        client=dask_client, diameter=DIAMETER,
                                                        device="cpu").compute()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while len(serve_processes()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    first = serve_processes()
    assert len(first) == 2, "the workers' producers did not start"
    time.sleep(1.0)  # into the first blocks
    os.kill(first[0], signal.SIGKILL)
    thread.join(600)
    assert not thread.is_alive(), "segment_zarr did not finish after a producer was killed"
    if "error" in outcome:
        raise outcome["error"]
    ap, n_whole, n_found = average_precision(whole, outcome["labels"])
    assert ap >= 0.98, f"AP@0.5 {ap:.4f} ({n_found} vs {n_whole} objects)"
    assert_one_piece_per_id(outcome["labels"])
    assert_producers_gone()


def test_without_a_diameter_the_middle_block_sets_one_for_all(big, dask_client):
    """diameter=None: the size model runs once, on the middle block, and every block
    is segmented at that diameter (so borders agree), as the whole image is at its own."""
    _, image, _ = big
    small = image[:1024, :1024]
    with cpipc.serve(f"pytest-estimate-{os.getpid()}", device="cpu") as server, \
            cpipc.Client(socket=server.socket) as client:
        whole = client.segment(small)
    assert whole.diameter_estimated
    labels = cpipc.dask.segment_zarr(da.from_array(small, chunks=512), None, blocksize=512, client=dask_client,
                                     device="cpu").compute()
    ap, n_whole, n_found = average_precision(whole.masks, labels)
    print(f"estimated {whole.diameter:.1f} px on the whole image; AP@0.5 {ap:.4f} ({n_found} vs {n_whole})")
    assert ap >= 0.95, f"AP@0.5 {ap:.4f} ({n_found} vs {n_whole} objects) against the whole image at its estimate"
    assert_one_piece_per_id(labels)



def volume_of_cells(shape, seed: int, radius: float) -> np.ndarray:
    """uint16 [Z, Y, X]: ellipsoidal cells on a jittered 3-D grid (many touch),
    brighter inside than at their edges, blurred, with Poisson and read noise."""
    rng = np.random.default_rng(seed)
    step = 2 * radius * 1.1
    grid = np.meshgrid(*[np.arange(step / 2, s, step) for s in shape], indexing="ij")
    keep = rng.random(grid[0].shape) < 0.8
    centres = np.stack([g[keep] for g in grid], 1) + rng.uniform(-0.15, 0.15, (int(keep.sum()), 3)) * step
    labels = np.zeros(shape, np.int32)
    rho = np.full(shape, np.inf)
    for i, c in enumerate(centres, start=1):
        r = radius * rng.uniform(0.85, 1.15, 3)
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, shape)
        zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        mine = ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        win = (mine < 1) & (mine < rho[box])
        rho[box][win] = mine[win]
        labels[box][win] = i
    level = np.concatenate([[0.0], rng.uniform(0.5, 1.0, len(centres))])[labels]
    scene = ndimage.gaussian_filter(level * (1 - 0.4 * np.where(labels > 0, rho, 1.0)), 1.0) + 0.05
    counts = rng.poisson(scene * 400).astype(np.float64) + rng.normal(0, 2, shape)
    return np.clip(counts * 20 + 100, 0, 65535).astype(np.uint16)


@pytest.mark.parametrize("mode", [{"do_3d": True}, {"stitch_threshold": 0.5}], ids=["do_3d", "stitch_threshold"])
def test_a_z_stack_in_3d_blocks_matches_the_whole_stack(dask_client, tmp_path, mode):
    """2 x 2 x 2 blocks, merged across Z borders as across Y and X ones."""
    volume = volume_of_cells((48, 144, 144), seed=3, radius=13.0)
    with cpipc.serve(f"pytest-volume-{os.getpid()}", device="cpu") as server, \
            cpipc.Client(socket=server.socket) as client:
        whole = client.segment(volume, z_axis=0, diameter=DIAMETER, **mode).masks
    path = str(tmp_path / "volume.zarr")
    zarr.open_array(path, mode="w", shape=volume.shape, chunks=(24, 72, 72), dtype=volume.dtype)[...] = volume
    out = cpipc.dask.segment_zarr(path, str(tmp_path / "labels.zarr"), blocksize=(24, 72, 72),
                                  overlap=(16, 32, 32), client=dask_client, diameter=DIAMETER, device="cpu", **mode)
    labels = np.asarray(out[...])
    assert labels.dtype == np.uint32 and labels.shape == volume.shape
    ap, n_whole, n_blocks = average_precision(whole, labels)
    print(f"AP@0.5 {ap:.4f}: {n_blocks} objects in blocks, {n_whole} in the whole stack")
    assert n_whole > 30, f"the stack should hold dozens of cells, not {n_whole}"
    # Stitching links each plane's masks to the plane before, from a block's first plane on, so a
    # cell can be linked differently in a block than in the whole stack: looser bounds there. How
    # far apart the two come depends on the network (the default of 2026-12-07: AP 0.96, 51 = 51;
    # the one of 2026-12-08: 0.88, 45 blocks against 49 whole, the same with
    # CPIPC_CPU_INFERENCE=plain). Without the merge across the Z border every cell that the
    # border cuts would count twice.
    stitched = not mode.get("do_3d")
    least = 0.85 if stitched else 0.95
    assert ap >= least, f"AP@0.5 {ap:.4f} against the whole stack ({n_blocks} vs {n_whole} objects)"
    slack = max(5, 0.1 * n_whole) if stitched else max(2, 0.03 * n_whole)
    assert abs(n_blocks - n_whole) <= slack, f"{n_blocks} objects in blocks, {n_whole} whole"
    assert_one_piece_per_id(labels, connectivity=3)
    assert_producers_gone()
