"""redis-py's `RedisCluster` against one real node that owns all 16384 slots.

The client discovers the topology itself (CLUSTER SLOTS), learns key positions from
COMMAND, and routes every command by slot: these tests pass only if a stock cluster client
works against Prism unchanged.
"""

import pytest
import redis
from redis.cluster import RedisCluster


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def rc(request, prism):
    client = RedisCluster(host="127.0.0.1", port=prism.port, protocol=request.param)
    yield client
    client.close()


def test_discovers_one_node_serving_every_slot(rc, prism):
    nodes = rc.get_nodes()
    assert [(n.host, n.port) for n in nodes] == [("127.0.0.1", prism.port)]
    info = rc.cluster_info()
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_assigned"]) == 16384


def test_set_get_across_many_slots(rc, ns):
    keys = [f"{ns}key:{i}" for i in range(300)]
    assert len({rc.keyslot(k) for k in keys}) > 250
    for i, k in enumerate(keys):
        assert rc.set(k, str(i)) is True
    for i, k in enumerate(keys):
        assert rc.get(k) == str(i).encode()
    assert rc.delete(*keys) == len(keys)
    assert rc.get(keys[0]) is None


def test_hash_tags_keep_multi_key_commands_in_one_slot(rc, ns):
    keys = [f"{{{ns}user}}:{f}" for f in ("name", "email", "age")]
    assert len({rc.keyslot(k) for k in keys}) == 1
    assert rc.mset(dict(zip(keys, ["ann", "ann@example.com", "33"]))) is True
    assert rc.mget(keys) == [b"ann", b"ann@example.com", b"33"]


def test_nonatomic_multi_key_across_slots(rc, ns):
    pairs = {f"{ns}m:{i}": str(i * i) for i in range(50)}
    slots = {rc.keyslot(k) for k in pairs}
    assert len(slots) > 1
    # One MSET per slot, each answered OK.
    assert rc.mset_nonatomic(pairs) == [True] * len(slots)
    keys = list(pairs) + [ns + "absent"]
    assert rc.mget_nonatomic(keys) == [v.encode() for v in pairs.values()] + [None]


def test_pipeline_across_slots(rc, ns):
    keys = [f"{ns}p:{i}" for i in range(100)]
    with rc.pipeline() as p:
        for i, k in enumerate(keys):
            p.set(k, i)
            p.incr(k)
        replies = p.execute()
    assert replies == [x for i in range(100) for x in (True, i + 1)]
    with rc.pipeline() as p:
        for k in keys:
            p.get(k)
        assert p.execute() == [str(i + 1).encode() for i in range(100)]


def test_hash_and_ttl_commands_route(rc, ns):
    h = ns + "h"
    assert rc.hset(h, mapping={"a": "1", "b": "2"}) == 2
    assert rc.hgetall(h) == {b"a": b"1", b"b": b"2"}
    assert rc.expire(h, 60) is True
    assert 0 < rc.ttl(h) <= 60


def test_error_replies_raise(rc, ns):
    k = ns + "k"
    rc.set(k, "abc")
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        rc.incr(k)
    assert rc.get(k) == b"abc"
