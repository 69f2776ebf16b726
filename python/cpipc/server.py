"""Start a ``cpipc serve`` producer from Python, as a child process, and stop it cleanly."""

import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import List, Optional

from .errors import BadInput, Error, NotFound, OutOfMemory

# cpipc's exit statuses (README "Commands") -> the classes that stand for them.
_BY_STATUS = {2: BadInput, 3: NotFound, 5: OutOfMemory}

__all__ = ["Server", "serve", "find_binary"]


def find_binary() -> str:
    """The ``cpipc`` program: ``$CPIPC_BIN``, else the first on ``PATH``.

    Raises NotFound when there is none (the C++ program is built by
    scripts/setup.sh into build/cpipc; the Python package does not contain it).
    """
    path = os.environ.get("CPIPC_BIN") or shutil.which("cpipc")
    if not path or not os.access(path, os.X_OK):
        raise NotFound("no cpipc program: put it on PATH or set CPIPC_BIN (scripts/setup.sh builds build/cpipc)")
    return path


class Server:
    """A ``cpipc serve`` child process; use :func:`serve` to start one.

    ``stop()`` (or leaving its ``with`` block) sends SIGTERM: the producer
    ends its open requests with ``shutting_down``, removes its socket and
    unlinks its segment, and exits 0.
    """

    def __init__(self, argv: List[str], name: str, socket: str, timeout: float, lifeline: bool = True):
        self.name = name
        """The stream: the result segment's name."""
        self.socket = socket
        """The socket clients connect to (``cpipc.Client(socket=server.socket)``)."""
        # The lifeline: the producer holds the read end of a pipe and stops
        # cleanly when it hangs up, which it does when this process dies in
        # any way (SIGKILL included): no orphaned producer keeps a model loaded.
        self._lifeline: Optional[int] = None
        pass_fds: tuple = ()
        if lifeline:
            read_end, self._lifeline = os.pipe()
            argv = argv + ["--lifeline", str(read_end)]
            pass_fds = (read_end,)
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True, errors="backslashreplace",
                                            pass_fds=pass_fds)
        except BaseException:
            self._close_lifeline()
            raise
        finally:
            for fd in pass_fds:
                os.close(fd)
        # Its stderr goes on to ours, line by line; the last line is kept to
        # say why it stopped if it does not start.
        self._last_error = ""
        self._stderr = threading.Thread(target=self._forward_stderr, daemon=True)
        self._stderr.start()
        deadline = time.monotonic() + timeout
        line = ""
        while not line.startswith("serving on"):
            left = deadline - time.monotonic()
            ready = select.select([self.process.stdout], [], [], max(0.0, left))[0]
            if not ready:
                self.stop()
                raise Error(f"cpipc serve did not start within {timeout} s")
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                self.process.stdout.close()
                self._stderr.join(5)
                status = self.process.returncode
                why = self._last_error.removeprefix("cpipc: error: ") or "no message"
                raise _BY_STATUS.get(status, Error)(f"cpipc serve exited with status {status}: {why}")
        self.banner = line.strip()
        """What the producer said when it started (socket, stream, model, device)."""

    def _forward_stderr(self) -> None:
        for line in self.process.stderr:
            sys.stderr.write(line)
            if line.strip():
                self._last_error = line.strip()
        self.process.stderr.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` s; returns the exit status (negative: the signal)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout and not self.process.stdout.closed:
            self.process.stdout.close()
        self._close_lifeline()
        return self.process.returncode

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    def __del__(self):
        self._close_lifeline()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<cpipc.Server {self.name!r} pid {self.pid} {'running' if self.alive() else 'stopped'}>"


def serve(name: Optional[str] = None, *, model: Optional[str] = None, device: str = "auto",
          socket: Optional[str] = None, args: Optional[List[str]] = None, binary: Optional[str] = None,
          timeout: float = 120.0, lifeline: bool = True) -> Server:
    """Starts ``cpipc serve`` and returns once it is serving (the model is loaded).

    ``name``: the stream (default ``py<pid>``); ``model``: a TorchScript file
    exported by tools/export (default: the embedded network); ``device``:
    auto, cpu, cuda or cuda:N; ``args``: more ``cpipc serve`` options (e.g.
    ``["--diameter", "30"]``). Raises NotFound without a cpipc program,
    Error when it does not start.
    """
    name = name or f"py{os.getpid()}"
    argv = [binary or find_binary(), "serve", "--name", name, "--device", device]
    if model:
        argv += ["--model", os.fspath(model)]
    if socket:
        argv += ["--socket", os.fspath(socket)]
    argv += list(args or [])
    from .client import default_socket_path
    return Server(argv, name, os.fspath(socket) if socket else default_socket_path(name), timeout, lifeline)
