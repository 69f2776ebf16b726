"""The examples in examples/ run as a user would run them, and say what they did."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cpipc

from producer import REPO, cpipc_binary


def run_example(script, *args, cwd=REPO):
    env = dict(os.environ, CPIPC_BIN=cpipc_binary())
    return subprocess.run([sys.executable, str(REPO / "examples" / script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_shared_memory_example_saves_the_masks_and_cleans_up(tmp_path):
    image = tmp_path / "cells_0.tif"
    shutil.copy(REPO / "data" / "samples" / "cells_0.tif", image)
    before = {d["name"] for d in cpipc.list_segments()}
    r = run_example("shared_memory_example.py", image)
    assert r.returncode == 0, r.stderr
    assert "cells, diameter" in r.stdout
    masks = np.fromfile(tmp_path / "cells_0_segmentation.bin", dtype=np.uint16).reshape(384, 384)
    objects = int(r.stdout.split(": ")[1].split()[0])
    assert objects == masks.max() > 10 and len(np.unique(masks)) == objects + 1
    left = {d["name"] for d in cpipc.list_segments()} - before
    assert not {n for n in left if n.startswith("py")}, "the example left its stream or input segments behind"


def test_the_streaming_example_prints_each_result():
    r = run_example("streaming_example.py")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("data/samples/")]
    assert len(lines) == 3 and all(" cells, median area " in l for l in lines)


def test_serve_without_a_cpipc_program_is_not_found(monkeypatch):
    monkeypatch.delenv("CPIPC_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(cpipc.NotFound, match="CPIPC_BIN"):
        cpipc.serve()


def test_a_producer_that_cannot_start_is_an_error(tmp_path):
    with pytest.raises(cpipc.NotFound, match="exited with status 3: .*absent.pt"):
        cpipc.serve(model=str(tmp_path / "absent.pt"), binary=cpipc_binary(), socket=str(tmp_path / "s.sock"))


def test_a_socket_in_a_shared_directory_is_refused(tmp_path):
    tmp_path.chmod(0o777)
    with pytest.raises(cpipc.BadInput, match="others can write to it"):
        cpipc.serve(binary=cpipc_binary(), socket=str(tmp_path / "s.sock"))
