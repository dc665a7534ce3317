"""Graph commands through redis-py, unchanged: a plain client and `RedisCluster`, RESP2
and RESP3. The cluster client routes each command by its first argument (the only
declared key), which it learns from COMMAND, so vertices spread over many slots work.
"""

import pytest
import redis
from redis.cluster import RedisCluster


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def rc(request, prism):
    client = RedisCluster(host="127.0.0.1", port=prism.port, protocol=request.param)
    yield client
    client.close()


def as_dict(reply):
    """A map reply as a dict whatever the protocol (RESP2: flat pairs)."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def test_vertices_and_edges_with_a_plain_client(r, ns):
    client = r
    a, b, c = f"{ns}a", f"{ns}b", f"{ns}c"
    assert client.execute_command("V.SET", a, "LABEL", "person", "name", "ann") == 1
    got = as_dict(client.execute_command("V.GET", a))
    assert got[b"label"] == b"person"
    assert as_dict(got[b"props"]) == {b"name": b"ann"}
    assert client.execute_command("V.GET", a, "name", "nick") == [b"ann", None]
    assert client.execute_command("E.ADD", a, "knows", b, "RANK", "10") == 1
    assert client.execute_command("E.ADD", a, "knows", c, "RANK", "20", "PROPS", "since", "2024") == 1
    # Re-adding updates: 0, and the rank moves.
    assert client.execute_command("E.ADD", a, "knows", b, "RANK", "30") == 0
    cursor, rows = client.execute_command("E.RANGE", a, "knows", "LIMIT", "10")
    assert cursor == b"0"
    assert rows == [[b.encode(), 30], [c.encode(), 20]]
    assert client.execute_command("E.COUNT", a, "knows") == 2
    assert client.execute_command("E.COUNT", c, "knows", "IN") == 1
    edge = as_dict(client.execute_command("E.GET", a, "knows", c))
    assert edge[b"rank"] == 20
    assert as_dict(edge[b"props"]) == {b"since": b"2024"}
    assert client.type(a) == b"vertex"
    client.set(f"{ns}s", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.execute_command("E.ADD", f"{ns}s", "knows", a)
    assert client.execute_command("V.DEL", a) == 1
    assert client.execute_command("E.COUNT", b, "knows", "IN") == 0
    assert client.execute_command("V.EXISTS", a, b, c) == 2


def test_traversals_through_the_cluster_client(rc, ns):
    # A chain and a shortcut over vertices in many slots: a -> v0 -> v1 -> ... -> v9.
    chain = [f"{ns}v{i}" for i in range(10)]
    assert len({rc.keyslot(v) for v in chain}) > 5
    prev = f"{ns}start"
    for v in chain:
        assert rc.execute_command("E.ADD", prev, "next", v, "RANK", "1") == 1
        prev = v
    khop = as_dict(rc.execute_command("G.KHOP", f"{ns}start", "3", "TYPE", "next"))
    assert khop[b"hops"] == [[chain[0].encode()], [chain[1].encode()], [chain[2].encode()]]
    assert khop[b"truncated"] is None
    path = as_dict(rc.execute_command("G.PATH", f"{ns}start", chain[-1]))
    assert path[b"path"] == [f"{ns}start".encode()] + [v.encode() for v in chain]
    # Every vertex answers on its own slot's node; the cluster client routes by the id.
    for i, v in enumerate(chain[:-1]):
        assert rc.execute_command("E.COUNT", v, "next") == 1, v
        cursor, rows = rc.execute_command("E.RANGE", v, "next", "LIMIT", "5")
        assert rows == [[chain[i + 1].encode(), 1]]
    assert rc.execute_command("V.DEL", chain[5]) == 1
    path = as_dict(rc.execute_command("G.PATH", f"{ns}start", chain[-1]))
    assert path[b"path"] is None and path[b"truncated"] is None
