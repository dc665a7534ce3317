"""Starts the real `prism` binary for the redis-py smoke tests.

One node per test module, on a free loopback port with its own temporary data directory;
it is stopped with SIGTERM afterwards and must exit 0. The binary comes from $PRISM_BIN
(set by scripts/test), else from the cargo target directory.
"""

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def prism_bin() -> Path:
    if os.environ.get("PRISM_BIN"):
        return Path(os.environ["PRISM_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "prism"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prism:
    """A running `prism` process; its stderr is collected for failure messages."""

    def __init__(self, data_dir: Path, *extra: str):
        binary = prism_bin()
        if not binary.exists():
            raise RuntimeError(f"{binary} does not exist: run `cargo build --workspace` first")
        # A port picked as free may be taken before prism binds it; retry on that alone.
        for _ in range(5):
            self.port = free_port()
            self.stderr: list[str] = []
            self.ready = threading.Event()
            self.proc = subprocess.Popen(
                [str(binary), "--port", str(self.port), "--data-dir", str(data_dir), *extra],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            threading.Thread(target=self._drain, daemon=True).start()
            deadline = time.monotonic() + START_TIMEOUT
            while not self.ready.wait(0.05):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    break
            if self.ready.is_set():
                return
            self.proc.kill()
            self.proc.wait()
            if "cannot listen" not in "".join(self.stderr):
                raise RuntimeError("prism did not start:\n" + "".join(self.stderr))
        raise RuntimeError("prism could not bind a free port:\n" + "".join(self.stderr))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if "serving on" in line:
                self.ready.set()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("prism ignored SIGTERM:\n" + "".join(self.stderr))


@pytest.fixture(scope="module")
def prism(tmp_path_factory):
    node = Prism(tmp_path_factory.mktemp("prism-data"))
    yield node
    code = node.stop()
    assert code == 0, f"prism exited {code}:\n" + "".join(node.stderr)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(request, prism):
    """A plain client in each protocol."""
    client = redis.Redis(host="127.0.0.1", port=prism.port, protocol=request.param)
    yield client
    client.close()


@pytest.fixture
def ns(request) -> str:
    """A key prefix unique to the test (and its protocol), so tests sharing a node never
    see each other's keys without depending on FLUSHALL."""
    return request.node.name + ":"
