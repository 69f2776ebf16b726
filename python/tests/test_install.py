"""The package builds, installs and works in a fresh venv from a clean checkout (`git archive HEAD`).

Slow (about a minute and a half: a fresh CMake build of the module); skipped
with CPIPC_SKIP_INSTALL_TEST=1 or outside a git checkout.
"""

import os
import subprocess
import sys
import venv

import pytest

from producer import REPO

pytestmark = pytest.mark.skipif(os.environ.get("CPIPC_SKIP_INSTALL_TEST") == "1",
                                reason="CPIPC_SKIP_INSTALL_TEST=1")

CHECK = """
import numpy as np, cpipc, os
name = f"install-check-{os.getpid()}"
with cpipc.Publisher(name, shape=(3, 4), dtype="uint16") as pub:
    pub.publish(np.arange(12, dtype=np.uint16).reshape(3, 4))
    with cpipc.attach(name) as seg:
        assert (seg.latest() == np.arange(12).reshape(3, 4)).all()
assert cpipc.Client and cpipc.serve and cpipc.DeviceView
print("ok", cpipc.__version__)
"""


def test_a_clean_checkout_installs_into_a_fresh_venv(tmp_path):
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    src = tmp_path / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    pip = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "numpy", str(src / "python")],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    r = subprocess.run([py, "-c", CHECK], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("ok "), r.stdout + r.stderr
