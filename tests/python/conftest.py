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


# --- A fleet of nine processes (issue 6) -----------------------------------------------

FLEET_SHARDS = 3
FLEET_REPLICAS = 2
FLEET_NODES = FLEET_SHARDS * (FLEET_REPLICAS + 1)
FLEET_UP_TIMEOUT = 120.0


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (outgoing connections' ports)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def ports_free(base: int, count: int) -> bool:
    """True if every client port base..base+count-1 and its peer port (+10000) can be
    bound on loopback right now (a later race is caught by `cluster up` failing)."""
    held = []
    try:
        for port in [*range(base, base + count), *range(base + 10000, base + 10000 + count)]:
            s = socket.socket()
            held.append(s)
            # As the node binds (tokio sets SO_REUSEADDR): a port left in TIME_WAIT by an
            # earlier test's connection is free for a listener.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in held:
            s.close()


class Fleet:
    """A fleet started with `prism cluster up` in its own directory: node n has client
    port base + n - 1; its pid is in node-n.pid and its log in node-n.log."""

    def __init__(self, root: Path):
        import random
        import tomllib

        binary = prism_bin()
        if not binary.exists():
            raise RuntimeError(f"{binary} does not exist: run `cargo build --workspace` first")
        self.binary = binary
        rng = random.Random()
        errors = []
        tries = 0
        for attempt in range(50):
            if tries == 5:
                break
            # Below the ephemeral range (with the +10000 peer and +20000 admin ports):
            # ports there are left in TIME_WAIT by the suite's connections, and a listener
            # cannot bind over those.
            base = rng.randrange(1100, ephemeral_low() - 20000 - FLEET_NODES)
            if not ports_free(base, FLEET_NODES):
                if attempt == 49:
                    errors.append(f"no free port range found in 50 tries (last base {base})")
                continue
            tries += 1
            self.dir = root / f"fleet-{attempt}"
            self.base = base
            up = self.cli(
                "up",
                "--shards", str(FLEET_SHARDS),
                "--replicas", str(FLEET_REPLICAS),
                "--base-port", str(base),
                "--dir", str(self.dir),
                "--", "--threads", "1",
                timeout=FLEET_UP_TIMEOUT,
            )
            if up.returncode == 0:
                self.up_output = up.stdout
                spec = tomllib.loads((self.dir / "topology.toml").read_text())
                # shard id -> [(node id, port)]
                self.shards = {
                    s["id"]: [(m["id"], m["port"]) for m in s["members"]] for s in spec["shard"]
                }
                # [(shard id, first slot, last slot)]
                self.slot_ranges = [
                    (s["id"], *map(int, r.split("-"))) for s in spec["shard"] for r in s["slots"]
                ]
                return
            errors.append(up.stdout + up.stderr + self.logs())
            self.down()
        raise RuntimeError("prism cluster up failed:\n" + "\n".join(errors))

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.binary), "cluster", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    @property
    def seed(self) -> tuple[str, int]:
        return ("127.0.0.1", self.base)

    def port(self, node: int) -> int:
        return self.base + node - 1

    def pid(self, node: int) -> int | None:
        try:
            return int((self.dir / f"node-{node}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def role(self, node: int) -> dict[str, str] | None:
        """INFO raft of one node as a dict, or None if it does not answer."""
        try:
            c = redis.Redis(port=self.port(node), socket_timeout=2, socket_connect_timeout=2)
            try:
                return {k: str(v) for k, v in c.info("raft").items()}
            finally:
                c.close()
        except redis.RedisError:
            return None

    def leader(self, shard: int, timeout: float = 30.0) -> int:
        """The node that says it leads `shard`, waiting (bounded) for an election."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node, _ in self.shards[shard]:
                raft = self.role(node)
                if raft and raft.get("role") == "leader":
                    return node
            time.sleep(0.2)
        raise AssertionError(f"shard {shard} has no leader after {timeout} s:\n" + self.logs())

    def kill(self, node: int) -> None:
        pid = self.pid(node)
        assert pid is not None, f"no pid file for node {node}"
        os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        """Starts the nodes that are not running again (`cluster up` skips live ones)."""
        up = self.cli(
            "up",
            "--shards", str(FLEET_SHARDS),
            "--replicas", str(FLEET_REPLICAS),
            "--base-port", str(self.base),
            "--dir", str(self.dir),
            "--", "--threads", "1",
            timeout=FLEET_UP_TIMEOUT,
        )
        assert up.returncode == 0, up.stdout + up.stderr

    def logs(self, lines: int = 20) -> str:
        out = []
        for log in sorted(getattr(self, "dir", Path("/nonexistent")).glob("node-*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def down(self) -> None:
        """`prism cluster down`, then SIGKILL whatever a pid file still names."""
        if not getattr(self, "dir", None) or not self.dir.exists():
            return
        pids = [p for p in (self.pid(n) for n in range(1, FLEET_NODES + 1)) if p]
        try:
            self.cli("down", "--dir", str(self.dir), timeout=30.0)
        except subprocess.TimeoutExpired:
            pass
        for pid in pids:
            # Only a process that is still one of this fleet's nodes (pids get reused).
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(self.dir).encode() in cmdline:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Three shards of three members, nine `prism` processes, on a random free port range;
    always stopped afterwards, even when a test failed."""
    f = Fleet(tmp_path_factory.mktemp("prism-fleet"))
    try:
        yield f
    finally:
        f.down()
