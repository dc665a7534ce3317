"""A cold partition object (tests/data/cold_partition.arrow, written by the Rust test
tests/tests/cold_store.rs::committed_fixture_loads) opens in pyarrow as a plain Arrow IPC
file, with the documented schema and readable rows (docs/cold-tier.md)."""

import pathlib

import pyarrow as pa
import pyarrow.ipc

FIXTURE = pathlib.Path(__file__).resolve().parent.parent / "data" / "cold_partition.arrow"


def read():
    with pa.ipc.open_file(pa.memory_map(str(FIXTURE))) as f:
        return f.schema, f.read_all()


def test_schema_is_documented():
    schema, _ = read()
    assert schema.names == ["key", "type", "expire_at_ms", "len", "string_value", "value"]
    assert schema.field("key").type == pa.binary()
    assert schema.field("type").type == pa.dictionary(pa.int8(), pa.utf8())
    assert schema.field("expire_at_ms").type == pa.int64()
    assert schema.field("len").type == pa.int64()
    assert schema.field("string_value").type == pa.large_binary()
    assert schema.field("value").type == pa.large_binary()
    meta = {k.decode(): v.decode() for k, v in schema.metadata.items()}
    assert meta["prism.format"] == "prism-cold-partition"
    assert meta["prism.format_version"] == "1"
    assert meta["prism.rows"] == "3"


def test_rows_are_readable_without_decoding_dump():
    _, table = read()
    rows = {r["key"]: r for r in table.to_pylist()}
    assert set(rows) == {b"{cold}user:1", b"{cold}user:2", b"{cold}blob"}
    assert rows[b"{cold}user:1"]["type"] == "string"
    assert rows[b"{cold}user:1"]["string_value"] == b"ann"
    assert rows[b"{cold}user:1"]["expire_at_ms"] is None
    assert rows[b"{cold}user:2"]["expire_at_ms"] == 4_102_444_800_000
    assert rows[b"{cold}blob"]["len"] == len("\u0000\u00ffbinary".encode())
    # The DUMP payload: magic "PRSM", format version 1, type tag 0 (string).
    assert all(r["value"][:6] == b"PRSM\x01\x00" for r in rows.values())
