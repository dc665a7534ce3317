"""redis-py's plain client against the real binary, in RESP2 and RESP3.

Every test runs once per protocol (the `r` fixture); keys carry the test's own prefix
(`ns`), and multi-key commands use a hash tag so they would also run unchanged against a
real Redis Cluster.
"""

import pytest
import redis


def protocol(r: redis.Redis) -> int:
    return int(r.connection_pool.connection_kwargs["protocol"])


def as_dict(reply) -> dict:
    # HELLO is a map in RESP3 and a flat array in RESP2.
    return reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2]))


def test_hello_reports_the_negotiated_protocol(r):
    assert r.ping() is True
    hello = as_dict(r.execute_command("HELLO"))
    assert hello[b"proto"] == protocol(r)
    assert hello[b"server"] == b"redis"
    assert hello[b"mode"] == b"cluster"


def test_strings(r, ns):
    k = ns + "k"
    assert r.set(k, "v") is True
    assert r.get(k) == b"v"
    assert r.get(ns + "missing") is None
    assert r.set(k, "other", nx=True) is None
    assert r.get(k) == b"v"


def test_counters(r, ns):
    n = ns + "n"
    assert r.incr(n) == 1
    assert r.incr(n) == 2
    assert r.incrby(n, 40) == 42
    assert r.decr(n) == 41
    assert r.get(n) == b"41"


def test_mset_mget(r, ns):
    a, b, c = (f"{{{ns}}}{x}" for x in "abc")
    assert r.mset({a: "1", b: "2"}) is True
    assert r.mget([a, b, c]) == [b"1", b"2", None]


def test_hashes(r, ns):
    h = ns + "h"
    assert r.hset(h, mapping={"f1": "v1", "f2": "v2"}) == 2
    assert r.hset(h, "f1", "changed") == 0
    assert r.hget(h, "f1") == b"changed"
    assert r.hget(h, "nope") is None
    assert r.hgetall(h) == {b"f1": b"changed", b"f2": b"v2"}
    assert r.hgetall(ns + "missing") == {}


def test_expire_and_ttl(r, ns):
    k = ns + "k"
    r.set(k, "v")
    assert r.ttl(k) == -1
    assert r.expire(k, 100) is True
    assert 0 < r.ttl(k) <= 100
    assert r.ttl(ns + "missing") == -2
    assert r.expire(ns + "missing", 100) is False
    r.set(k, "v2", ex=50)
    assert 0 < r.ttl(k) <= 50


def test_pipeline_replies_in_order(r, ns):
    k = ns + "k"
    with r.pipeline(transaction=False) as p:
        p.set(k, "1").incr(k).incrby(k, 10).get(k).get(ns + "missing")
        assert p.execute() == [True, 2, 12, b"12", None]


def test_pipeline_error_stays_in_its_slot(r, ns):
    k = ns + "k"
    with r.pipeline(transaction=False) as p:
        p.set(k, "x").incr(k).get(k)
        first, err, last = p.execute(raise_on_error=False)
    assert first is True
    assert isinstance(err, redis.ResponseError)
    assert str(err) == "value is not an integer or out of range"
    assert last == b"x"


def test_error_replies_raise(r, ns):
    k, h = ns + "k", ns + "h"
    r.set(k, "not a number")
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.incr(k)
    r.hset(h, "f", "v")
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE Operation against a key holding the wrong kind of value$"):
        r.get(h)
    with pytest.raises(redis.ResponseError, match="^wrong number of arguments for 'get' command$"):
        r.execute_command("GET")
    with pytest.raises(redis.ResponseError, match="^unknown command 'NOPE', with args beginning with: 'x' $"):
        r.execute_command("NOPE", "x")
    # The connection is still usable and the failed commands changed nothing.
    assert r.get(k) == b"not a number"
    assert r.ping() is True
