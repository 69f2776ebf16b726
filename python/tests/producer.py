"""A real ``cpipc serve`` for the client tests, through cpipc.serve / cpipc.Server."""

import os
import subprocess
from pathlib import Path

import pytest

import cpipc

REPO = Path(__file__).resolve().parents[2]


def cpipc_binary() -> str:
    """The CLI the tests drive: $CPIPC_BIN, else the default build's."""
    path = os.environ.get("CPIPC_BIN", str(REPO / "build" / "cpipc"))
    if not os.access(path, os.X_OK):
        pytest.skip(f"no cpipc binary at {path} (build it with scripts/setup.sh, or set CPIPC_BIN)")
    if subprocess.run([path, "serve", "--help"], capture_output=True).returncode != 0:
        pytest.skip(f"{path} was built without LibTorch: it has no serve")
    return path


def producer(name: str, directory: Path, *args: str, shell: str = "") -> cpipc.Server:
    """``cpipc serve`` on the CPU with its socket in ``directory``; ``shell`` runs first (e.g. a ulimit)."""
    socket = str(directory / f"{name}.sock")
    if not shell:
        return cpipc.serve(name, device="cpu", socket=socket, args=list(args), binary=cpipc_binary())
    argv = ["/bin/sh", "-c", shell + '; exec "$@"', "sh", cpipc_binary(), "serve", "--device", "cpu",
            "--name", name, "--socket", socket, *args]
    return cpipc.Server(argv, name, socket, timeout=120)
