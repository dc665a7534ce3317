"""redis-py's `RedisCluster` against a real fleet: three shards of three `prism`
processes each, started with `prism cluster up` (issue 6).

The client is unchanged: it discovers masters (Raft leaders) and replicas from CLUSTER
SLOTS, follows -MOVED, and retries on connection errors. The last tests SIGKILL one
shard's leader while a writer keeps writing, and check that every acknowledged write is
readable afterwards and that no read ever returned a value nobody wrote.
"""

import re
import threading
import time

import pytest
import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, LoadBalancingStrategy, RedisCluster
from redis.exceptions import ClusterCrossSlotError, MovedError
from redis.retry import Retry

# Everything a cluster client may see while a shard elects a new leader; the operation is
# then retried (by the client and by `retrying` below), never counted as an answer.
TRANSIENT = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    MovedError,
    redis.exceptions.ClusterError,
)


def cluster(fleet, protocol=2, **kw) -> RedisCluster:
    host, port = fleet.seed
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port), ClusterNode(host, fleet.port(4)), ClusterNode(host, fleet.port(7))],
        protocol=protocol,
        socket_timeout=5,
        socket_connect_timeout=2,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 10),
        **kw,
    )


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def rc(request, fleet):
    client = cluster(fleet, request.param)
    yield client
    client.close()


def shard_of_slot(fleet, slot: int) -> int:
    """The shard whose slot range holds `slot`, from the topology file `up` wrote."""
    for shard, first, last in fleet.slot_ranges:
        if first <= slot <= last:
            return shard
    raise AssertionError(f"slot {slot} is in no shard")


def test_discovers_three_masters_and_six_replicas(rc, fleet):
    leaders = {fleet.port(fleet.leader(s)) for s in fleet.shards}
    primaries = {n.port for n in rc.get_primaries()}
    replicas = {n.port for n in rc.get_replicas()}
    assert primaries == leaders
    assert len(replicas) == 6
    assert primaries | replicas == {fleet.port(n) for n in range(1, 10)}
    info = rc.cluster_info()
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_assigned"]) == 16384
    assert int(info["cluster_size"]) == 3


def test_keys_over_all_slots_land_on_every_shard(rc, fleet, ns):
    keys = [f"{ns}k:{i}" for i in range(500)]
    for i, k in enumerate(keys):
        assert rc.set(k, f"v{i}") is True
    for i, k in enumerate(keys):
        assert rc.get(k) == f"v{i}".encode()
    # Each key is on its shard's leader itself: a plain connection there answers it
    # directly (no -MOVED), and every shard holds some of them.
    by_shard: dict[int, list[int]] = {}
    for i, k in enumerate(keys):
        by_shard.setdefault(shard_of_slot(fleet, rc.keyslot(k)), []).append(i)
    assert sorted(by_shard) == [1, 2, 3]
    for shard, idx in by_shard.items():
        assert len(idx) > 100, (shard, len(idx))
        plain = redis.Redis(port=fleet.port(fleet.leader(shard)))
        try:
            assert plain.mget([keys[i] for i in idx[:1]]) == [f"v{idx[0]}".encode()]
            for i in idx:
                assert plain.get(keys[i]) == f"v{i}".encode()
        finally:
            plain.close()
    assert rc.delete(*keys) == len(keys)


def test_hash_tags_mset_mget_in_one_slot(rc, ns):
    for tag in ("user:1", "user:2", "user:3", "a", "b", "c"):
        keys = [f"{{{ns}{tag}}}:{f}" for f in ("name", "email", "age")]
        assert len({rc.keyslot(k) for k in keys}) == 1
        assert rc.mset(dict(zip(keys, [tag, f"{tag}@example.com", "33"]))) is True
        assert rc.mget(keys + [f"{{{ns}{tag}}}:absent"]) == [tag.encode(), f"{tag}@example.com".encode(), b"33", None]


def test_cluster_pipeline_over_all_shards(rc, fleet, ns):
    keys = [f"{ns}p:{i}" for i in range(200)]
    assert {shard_of_slot(fleet, rc.keyslot(k)) for k in keys} == {1, 2, 3}
    with rc.pipeline() as p:
        for i, k in enumerate(keys):
            p.set(k, i)
            p.incrby(k, 10)
        assert p.execute() == [x for i in range(200) for x in (True, i + 10)]
    with rc.pipeline() as p:
        for k in keys:
            p.get(k)
        assert p.execute() == [str(i + 10).encode() for i in range(200)]


def test_crossslot_through_a_plain_connection(fleet, ns):
    plain = redis.Redis(port=fleet.port(fleet.leader(1)))
    rc = cluster(fleet)
    try:
        # A key of this shard and one of another shard. (Keys of different slots of one
        # shard are allowed together: docs/commands.md says so, unlike Redis.)
        other = next(k for k in (f"{ns}x{i}" for i in range(1000)) if shard_of_slot(fleet, rc.keyslot(k)) == 2)
        mine = next(k for k in (f"{ns}y{i}" for i in range(1000)) if shard_of_slot(fleet, rc.keyslot(k)) == 1)
        # redis-py turns "-CROSSSLOT <text>" into ClusterCrossSlotError(<text>).
        with pytest.raises(ClusterCrossSlotError, match=r"^Keys in request don't hash to the same slot$"):
            plain.mget([mine, other])
        with pytest.raises(ClusterCrossSlotError):
            plain.mset({mine: "1", other: "1"})
        with pytest.raises(ClusterCrossSlotError):
            plain.delete(mine, other)
        # Nothing of the refused MSET was written.
        assert plain.get(mine) is None
        with pytest.raises(MovedError) as moved:
            plain.get(other)
        assert (moved.value.slot_id, moved.value.host, moved.value.port) == (
            rc.keyslot(other),
            "127.0.0.1",
            fleet.port(fleet.leader(2)),
        )
    finally:
        plain.close()
        rc.close()


def test_replica_reads_after_readonly(fleet, ns):
    rc = cluster(fleet, load_balancing_strategy=LoadBalancingStrategy.ROUND_ROBIN_REPLICAS)
    try:
        keys = [f"{ns}r:{i}" for i in range(60)]
        for i, k in enumerate(keys):
            assert rc.set(k, f"v{i}") is True
        # Replicas apply what their leader committed a moment later: eventually equal.
        deadline = time.monotonic() + 20
        pending = dict(enumerate(keys))
        while pending and time.monotonic() < deadline:
            for i, k in list(pending.items()):
                got = rc.get(k)
                assert got in (None, f"v{i}".encode()), (k, got)
                if got is not None:
                    del pending[i]
            time.sleep(0.05)
        assert not pending, f"never read from the replicas: {sorted(pending)[:10]}"
    finally:
        rc.close()

    # The same through a plain connection to one replica: -MOVED until READONLY.
    key = keys[0]
    shard = shard_of_slot(fleet, rc.keyslot(key))
    leader = fleet.leader(shard)
    replica = next(n for n, _ in fleet.shards[shard] if n != leader)
    plain = redis.Redis(port=fleet.port(replica))
    try:
        with pytest.raises(MovedError):
            plain.get(key)
        assert plain.execute_command("READONLY") in (b"OK", "OK", True)
        assert plain.get(key) == b"v0"
        assert plain.execute_command("READWRITE") in (b"OK", "OK", True)
        with pytest.raises(MovedError):
            plain.get(key)
    finally:
        plain.close()


def test_cluster_status_lists_three_led_shards(fleet):
    rows = status_rows(fleet)
    # After the table, a blank line and the metadata group: three voters and a leader.
    deadline = time.monotonic() + 20
    while True:
        out = fleet.cli("status", "--dir", str(fleet.dir)).stdout
        meta = next(line for line in out.splitlines() if line.startswith("metadata:")).split()
        if meta[4] != "0" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(meta[2].split(",")) == 3 and meta[3] == "leader" and meta[4] != "0", out
    assert [r["shard"] for r in rows] == ["1", "2", "3"]
    assert [r["slots"] for r in rows] == ["0-5460", "5461-10922", "10923-16383"]
    for r in rows:
        assert r["leader"] == str(fleet.leader(int(r["shard"]))), rows
        assert len(r["replicas"].split(",")) == 2, rows
        assert r["down"] == "-", rows


def status_rows(fleet) -> list[dict[str, str]]:
    out = fleet.cli("status", "--dir", str(fleet.dir))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    header = lines[0].split()
    assert header == ["shard", "slots", "leader", "replicas", "lag", "keys", "memory", "down"], lines
    table = lines[1 : lines.index("")] if "" in lines else lines[1:]
    return [dict(zip(header, line.split())) for line in table]


def retrying(op, attempts: int = 20, budget: float = 20.0):
    """Runs `op` until it answers, on transient cluster errors only, bounded in count and
    time; returns (True, answer) or (False, last error)."""
    deadline = time.monotonic() + budget
    last = None
    for _ in range(attempts):
        try:
            return True, op()
        except TRANSIENT as e:
            last = e
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    return False, last


def test_leader_sigkill_loses_no_acknowledged_write(fleet, ns):
    rc = cluster(fleet)
    # Keys of every shard, written once each with a value only that key ever gets.
    keys = [f"{ns}f:{i}" for i in range(3000)]
    value = {k: f"val-{i}-{k}".encode() for i, k in enumerate(keys)}
    victim_shard = 2
    victim = fleet.leader(victim_shard)
    acked: list[str] = []
    unsure: list[str] = []
    wrong: list[tuple] = []
    acked_on_victim_after_kill = 0
    killed = threading.Event()
    stop = threading.Event()

    def writer():
        nonlocal acked_on_victim_after_kill
        started = time.monotonic()
        for i, k in enumerate(keys):
            if stop.is_set() or time.monotonic() - started > 90:
                break
            ok, answer = retrying(lambda: rc.set(k, value[k]))
            if not ok:
                unsure.append(k)
                continue
            if answer is not True:
                wrong.append(("SET", k, answer))
            acked.append(k)
            if killed.is_set() and shard_of_slot(fleet, rc.keyslot(k)) == victim_shard:
                acked_on_victim_after_kill += 1
                if acked_on_victim_after_kill >= 100:
                    break
            # Read back an earlier key: an acknowledged write must be there, exactly.
            if i % 3 == 0 and acked:
                back = acked[(i * 7919) % len(acked)]
                ok, got = retrying(lambda: rc.get(back))
                if ok and got != value[back]:
                    wrong.append(("GET", back, got))

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 200 and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(acked) >= 200, "the writer did not get going"
    fleet.kill(victim)
    killed.set()
    t.join(120)
    stop.set()
    assert not t.is_alive(), "writer still running after 120 s"

    print(f"acked {len(acked)}, unsure {len(unsure)}, on shard {victim_shard} after the kill {acked_on_victim_after_kill}")
    assert not wrong, wrong[:10]
    assert acked_on_victim_after_kill >= 100, (
        f"only {acked_on_victim_after_kill} writes to shard {victim_shard} acknowledged after its leader died"
    )
    new_leader = fleet.leader(victim_shard)
    assert new_leader != victim

    # Every acknowledged write is readable; a write whose answer was lost may or may
    # not have happened, but nothing else may be there.
    fresh = cluster(fleet)
    try:
        for k in acked:
            ok, got = retrying(lambda: fresh.get(k))
            assert ok, got
            assert got == value[k], (k, got)
        for k in unsure:
            ok, got = retrying(lambda: fresh.get(k))
            assert ok and got in (None, value[k]), (k, got)

        # The client's next CLUSTER SLOTS names the new leader (gossip reaches the
        # other shards within about a second).
        key = next(k for k in acked if shard_of_slot(fleet, fresh.keyslot(k)) == victim_shard)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            rc.nodes_manager.initialize()
            if rc.get_node_from_key(key).port == fleet.port(new_leader):
                break
            time.sleep(0.2)
        assert rc.get_node_from_key(key).port == fleet.port(new_leader)
        assert fleet.port(victim) not in {n.port for n in rc.get_primaries()}
    finally:
        fresh.close()
        rc.close()

    rows = status_rows(fleet)
    assert [r["leader"] for r in rows] == [str(fleet.leader(s)) for s in (1, 2, 3)]
    assert rows[victim_shard - 1]["down"] == str(victim), rows

    # Bring the killed node back: it rejoins its shard as a follower.
    fleet.restart()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (fleet.role(victim) or {}).get("role") != "follower":
        time.sleep(0.2)
    assert (fleet.role(victim) or {}).get("role") == "follower", fleet.logs()
    assert re.fullmatch(r"\d+", str((fleet.role(victim) or {}).get("leader_id", ""))), fleet.role(victim)
