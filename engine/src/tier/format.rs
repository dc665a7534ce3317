//! The cold partition object: every entry of one slot as an Arrow IPC file.
//!
//! The object is a plain Arrow IPC *file* (`ARROW1` ... footer `ARROW1`), nothing
//! prepended or appended, so `pyarrow.ipc.open_file`, DuckDB and other Arrow readers open
//! it as it is. One row per key:
//!
//! | column | Arrow type | null | holds |
//! |---|---|---|---|
//! | `key` | binary | no | the key |
//! | `type` | dictionary<int8, utf8> | no | `string`, `hash`, `list`, `set`, `zset` or `vertex` |
//! | `expire_at_ms` | int64 | yes | absolute deadline, ms since the epoch; null: no TTL |
//! | `len` | int64 | no | string: bytes; hash/list/set/zset: elements; vertex: edge halves (out + in) |
//! | `string_value` | large_binary | yes | the string itself (string rows only), for readers that do not decode DUMP |
//! | `value` | large_binary | no | the engine's DUMP payload (`crate::dump`): what a load restores |
//!
//! Schema metadata: `prism.format` = `prism-cold-partition`, `prism.format_version` = `1`,
//! `prism.slot`, `prism.rows`. Rows come in record batches of at most [`BATCH_ROWS`] rows
//! or about [`BATCH_BYTES`] bytes of payload, so no batch is huge and readers can stream.
//!
//! The object's checksum is CRC-32C (Castagnoli, as iSCSI, S3 and the snapshot trailer)
//! of all its bytes. It is not stored inside the object (a trailer would stop standard
//! tools from reading the file) but in its name, with its length (`store` owns naming), and
//! a manifest that references the object will carry it too (invariant 3).
//!
//! Invariants:
//! - [`decode`] is total: any bytes give a [`Partition`] or an error, never a panic, and
//!   allocate no more than the object's size suggests (block offsets and lengths are
//!   checked against the buffer before arrow sees them; arrow's own validation is on).
//! - A decoded partition is validated row by row: schema and metadata as above, the row
//!   count, every key hashes to the object's slot, no key twice, every `value` is a DUMP
//!   payload whose envelope (magic, version, CRC-64) is intact and whose head names the
//!   row's `type` and `len` (a string's bytes equal `string_value`; a vertex is decoded
//!   whole), deadlines positive.
//! - A collection's body is not built here (that was half of a load's time): the restore
//!   that follows (`TierOp::Loaded`, `Op::Restore` in [`load_into`](super::load_into))
//!   decodes every row in full, refusing duplicates and malformed bodies, before it
//!   stores the first. A load therefore still restores all rows or none. The object's
//!   CRC-32C, checked first, covers every byte, so a row that passes here and fails that
//!   decode means a writer bug, not a damaged object.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, Int64Builder, LargeBinaryBuilder, StringDictionaryBuilder};
use arrow_array::types::Int8Type;
use arrow_array::{
    Array, ArrayRef, BinaryArray, DictionaryArray, Int64Array, LargeBinaryArray, RecordBatch, StringArray,
};
use arrow_buffer::Buffer;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_ipc::writer::FileWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use bytes::Bytes;

use crate::keyspace::Entry;
use crate::slot::Slot;
use crate::value::{Value, ValueKind};

pub const FORMAT_NAME: &str = "prism-cold-partition";
pub const FORMAT_VERSION: u32 = 1;
/// Rows per record batch at most.
pub const BATCH_ROWS: usize = 65_536;
/// A batch is closed once its payload bytes pass this.
pub const BATCH_BYTES: usize = 32 << 20;

/// CRC-32C of an object's bytes.
///
/// crc-fast (carry-less multiplication, SIMD) rather than crc's slice-by-16 table: the
/// object is checksummed on every put and get, and at about 1.5 GB/s the table made the
/// checksum a large part of a load. Same function (`checksum_matches_the_reference`).
pub fn checksum(bytes: &[u8]) -> u32 {
    // CRC-32C is 32 bits wide: the high half of the u64 is always zero.
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// Why an object could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("checksum mismatch: expected crc32c {expected:08x} and {expected_len} bytes, found {found:08x} and {found_len} bytes")]
    Checksum { expected: u32, expected_len: u64, found: u32, found_len: u64 },
    #[error("cold object is not a valid Arrow IPC file: {0}")]
    Arrow(String),
    #[error("cold object schema is not a Prism partition: {0}")]
    Schema(String),
    #[error("cold object row {index}: {reason}")]
    Row { index: u64, reason: String },
}

impl From<ArrowError> for FormatError {
    fn from(e: ArrowError) -> FormatError {
        FormatError::Arrow(e.to_string())
    }
}

/// The columns every object has, in this order.
pub fn schema_fields() -> Vec<Field> {
    vec![
        Field::new("key", DataType::Binary, false),
        Field::new("type", DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8)), false),
        Field::new("expire_at_ms", DataType::Int64, true),
        Field::new("len", DataType::Int64, false),
        Field::new("string_value", DataType::LargeBinary, true),
        Field::new("value", DataType::LargeBinary, false),
    ]
}

fn schema(slot: Slot, rows: u64) -> Schema {
    let meta = HashMap::from([
        ("prism.format".to_string(), FORMAT_NAME.to_string()),
        ("prism.format_version".to_string(), FORMAT_VERSION.to_string()),
        ("prism.slot".to_string(), slot.get().to_string()),
        ("prism.rows".to_string(), rows.to_string()),
    ]);
    Schema::new(schema_fields()).with_metadata(meta)
}

/// What `len` says for a value (module table).
pub fn value_len(value: &Value) -> usize {
    match value {
        Value::Str(s) => s.len(),
        Value::Hash(h) => h.len(),
        Value::Set(s) => s.len(),
        Value::ZSet(z) => z.len(),
        Value::List(l) => l.len(),
        Value::Vertex(v) => v.total_degree(),
    }
}

/// Builds the record batches of one partition, row by row.
pub struct PartitionEncoder {
    slot: Slot,
    done: Vec<RecordBatch>,
    rows: u64,
    payload_bytes: u64,
    batch: Builders,
}

#[derive(Default)]
struct Builders {
    key: BinaryBuilder,
    kind: StringDictionaryBuilder<Int8Type>,
    expire: Int64Builder,
    len: Int64Builder,
    string_value: LargeBinaryBuilder,
    value: LargeBinaryBuilder,
    rows: usize,
    bytes: usize,
}

/// An encoded object and what it holds.
#[derive(Debug, Clone)]
pub struct EncodedPartition {
    pub bytes: Bytes,
    pub slot: Slot,
    pub rows: u64,
    /// Sum of the DUMP payload sizes.
    pub payload_bytes: u64,
    pub crc32c: u32,
}

impl PartitionEncoder {
    pub fn new(slot: Slot) -> PartitionEncoder {
        PartitionEncoder { slot, done: Vec::new(), rows: 0, payload_bytes: 0, batch: Builders::default() }
    }

    /// Adds one entry (its key must be in the encoder's slot: the caller reads one slot).
    pub fn push(&mut self, key: &[u8], entry: &Entry) -> Result<(), FormatError> {
        let payload = crate::dump::encode(&entry.value);
        let string = match &entry.value {
            Value::Str(s) => Some(&**s),
            _ => None,
        };
        let kind = entry.value.kind().name();
        self.push_row(key, entry.expire_at, kind, value_len(&entry.value), string, &payload)
    }

    /// Adds one row as given, whatever its payload holds: tests use it to write objects
    /// whose checksum is right around a row that is not.
    pub(crate) fn push_row(
        &mut self,
        key: &[u8],
        expire_at: u64,
        kind: &str,
        len: usize,
        string: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(), FormatError> {
        let b = &mut self.batch;
        b.key.append_value(key);
        b.kind.append(kind)?;
        if expire_at == 0 {
            b.expire.append_null();
        } else {
            b.expire.append_value(
                i64::try_from(expire_at)
                    .map_err(|_| FormatError::Row { index: self.rows, reason: "deadline out of range".into() })?,
            );
        }
        b.len.append_value(len as i64);
        match string {
            Some(s) => b.string_value.append_value(s),
            None => b.string_value.append_null(),
        }
        b.value.append_value(payload);
        b.rows += 1;
        b.bytes += payload.len() + key.len();
        self.rows += 1;
        self.payload_bytes += payload.len() as u64;
        if b.rows >= BATCH_ROWS || b.bytes >= BATCH_BYTES {
            self.close_batch()?;
        }
        Ok(())
    }

    fn close_batch(&mut self) -> Result<(), FormatError> {
        let mut b = std::mem::take(&mut self.batch);
        if b.rows == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(b.key.finish()),
            Arc::new(b.kind.finish()),
            Arc::new(b.expire.finish()),
            Arc::new(b.len.finish()),
            Arc::new(b.string_value.finish()),
            Arc::new(b.value.finish()),
        ];
        self.done.push(RecordBatch::try_new(Arc::new(Schema::new(schema_fields())), columns)?);
        Ok(())
    }

    /// The finished object.
    pub fn finish(mut self) -> Result<EncodedPartition, FormatError> {
        self.close_batch()?;
        let schema = schema(self.slot, self.rows);
        let size: usize = self.done.iter().map(RecordBatch::get_array_memory_size).sum();
        let mut out = Vec::with_capacity(size + 4096);
        let mut w = FileWriter::try_new(&mut out, &schema)?;
        for batch in &self.done {
            // The batches were built without metadata; the file's schema carries it.
            w.write(&batch.clone().with_schema(Arc::new(schema.clone()))?)?;
        }
        w.finish()?;
        drop(w);
        let crc32c = checksum(&out);
        Ok(EncodedPartition {
            bytes: Bytes::from(out),
            slot: self.slot,
            rows: self.rows,
            payload_bytes: self.payload_bytes,
            crc32c,
        })
    }
}

/// One row of a decoded partition: what `Op::Restore` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: Bytes,
    /// 0: no TTL.
    pub expire_at: u64,
    /// DUMP payload, already validated.
    pub payload: Bytes,
}

/// A decoded, validated partition.
#[derive(Debug, Clone)]
pub struct Partition {
    pub slot: Slot,
    pub rows: Vec<Row>,
}

/// Decodes and validates an object whose CRC-32C and length are known (from its name or
/// a manifest): the checksum is checked before anything else is read.
pub fn decode_verified(bytes: Bytes, crc32c: u32, len: u64) -> Result<Partition, FormatError> {
    let found = checksum(&bytes);
    if found != crc32c || bytes.len() as u64 != len {
        return Err(FormatError::Checksum {
            expected: crc32c,
            expected_len: len,
            found,
            found_len: bytes.len() as u64,
        });
    }
    decode(bytes)
}

/// Decodes and validates an object (module invariants). Does not check the object's
/// checksum: [`decode_verified`] does.
pub fn decode(bytes: Bytes) -> Result<Partition, FormatError> {
    // Defence in depth: arrow's decoder validates what it reads, but a panic deep inside
    // a third-party decoder must not take the node down on a corrupt object.
    let whole = bytes.clone();
    match std::panic::catch_unwind(move || decode_inner(&whole)) {
        Ok(r) => r,
        Err(_) => Err(FormatError::Arrow("decoder failed on malformed input".into())),
    }
}

fn arrow_err(what: &str) -> FormatError {
    FormatError::Arrow(what.to_string())
}

fn decode_inner(bytes: &Bytes) -> Result<Partition, FormatError> {
    let n = bytes.len();
    if n < 18 || &bytes[..6] != b"ARROW1" {
        return Err(arrow_err("missing leading ARROW1 magic"));
    }
    let trailer: [u8; 10] = bytes[n - 10..].try_into().map_err(|_| arrow_err("short trailer"))?;
    let footer_len = read_footer_length(trailer)?;
    let footer_start =
        (n - 10).checked_sub(footer_len).filter(|&s| s >= 8).ok_or_else(|| arrow_err("footer length"))?;
    let footer = arrow_ipc::root_as_footer(&bytes[footer_start..n - 10])
        .map_err(|e| FormatError::Arrow(format!("footer: {e}")))?;
    let fb_schema = footer.schema().ok_or_else(|| arrow_err("footer has no schema"))?;
    let schema: SchemaRef = Arc::new(arrow_ipc::convert::try_fb_to_schema(fb_schema)?);
    let (slot, rows_expected) = check_schema(&schema)?;
    let buffer = Buffer::from(bytes.clone());
    let mut decoder = FileDecoder::new(schema.clone(), footer.version());
    let block_range = |offset: i64, meta: i32, body: i64| -> Result<(usize, usize), FormatError> {
        let offset = usize::try_from(offset).map_err(|_| arrow_err("negative block offset"))?;
        let meta = usize::try_from(meta).map_err(|_| arrow_err("negative block metadata length"))?;
        let body = usize::try_from(body).map_err(|_| arrow_err("negative block body length"))?;
        let len = meta.checked_add(body).ok_or_else(|| arrow_err("block length"))?;
        let end =
            offset.checked_add(len).filter(|&e| e <= footer_start).ok_or_else(|| arrow_err("block past the footer"))?;
        Ok((offset, end - offset))
    };
    for block in footer.dictionaries().iter().flatten() {
        let (off, len) = block_range(block.offset(), block.metaDataLength(), block.bodyLength())?;
        check_buffers(&bytes[off..off + len], block.bodyLength())?;
        decoder.read_dictionary(block, &buffer.slice_with_length(off, len))?;
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for block in footer.recordBatches().iter().flatten() {
        let (off, len) = block_range(block.offset(), block.metaDataLength(), block.bodyLength())?;
        check_buffers(&bytes[off..off + len], block.bodyLength())?;
        let Some(batch) = decoder.read_record_batch(block, &buffer.slice_with_length(off, len))? else {
            continue;
        };
        rows_of(&batch, slot, bytes, &mut out, &mut seen)?;
        if out.len() as u64 > rows_expected {
            break;
        }
    }
    if out.len() as u64 != rows_expected {
        return Err(FormatError::Schema(format!("{} rows, metadata says {rows_expected}", out.len())));
    }
    Ok(Partition { slot, rows: out })
}

/// Checks that every buffer a message names lies inside its block's body: arrow-ipc 60
/// slices body buffers as the message says and panics on an offset past the end.
fn check_buffers(block: &[u8], body_len: i64) -> Result<(), FormatError> {
    let (start, meta_len) = match block.get(..4) {
        Some([0xff, 0xff, 0xff, 0xff]) => (8usize, block.get(4..8)),
        Some(_) => (4, block.get(..4)),
        None => return Err(arrow_err("block too short")),
    };
    let meta_len = meta_len
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .and_then(|b| usize::try_from(i32::from_le_bytes(b)).ok())
        .ok_or_else(|| arrow_err("block metadata length"))?;
    let meta =
        block.get(start..start.saturating_add(meta_len)).ok_or_else(|| arrow_err("block metadata past the block"))?;
    let msg = arrow_ipc::root_as_message(meta).map_err(|e| FormatError::Arrow(format!("message: {e}")))?;
    let (batch, widths) = match msg.header_as_record_batch() {
        Some(b) => (Some(b), RECORD_BUFFER_WIDTHS),
        None => (msg.header_as_dictionary_batch().and_then(|d| d.data()), DICTIONARY_BUFFER_WIDTHS),
    };
    let batch = batch.ok_or_else(|| arrow_err("block is not a record or dictionary batch"))?;
    if batch.compression().is_some() {
        return Err(arrow_err("compressed batches are not written by Prism"));
    }
    for (i, b) in batch.buffers().iter().flatten().enumerate() {
        let end = b.offset().checked_add(b.length());
        if b.offset() < 0 || b.length() < 0 || end.is_none_or(|e| e > body_len) {
            return Err(arrow_err("buffer past the block body"));
        }
        // arrow-buffer 60 asserts (panics) when it views a buffer of fixed-width values
        // whose length is not a whole number of values (found by fuzzing).
        if widths.get(i).is_some_and(|&w| w > 1 && b.length() % w != 0) {
            return Err(arrow_err("buffer length is not a whole number of values"));
        }
    }
    Ok(())
}

/// The value width in bytes of each buffer of a record batch of [`schema_fields`], in
/// IPC order (0: a validity bitmap or variable-width data, no constraint): key (validity,
/// i32 offsets, data), type (validity, i8 keys), expire_at_ms and len (validity, i64
/// each), string_value and value (validity, i64 offsets, data).
const RECORD_BUFFER_WIDTHS: &[i64] = &[0, 4, 0, 0, 1, 0, 8, 0, 8, 0, 8, 0, 0, 8, 0];
/// The same for the `type` column's dictionary batch (utf8: validity, i32 offsets, data).
const DICTIONARY_BUFFER_WIDTHS: &[i64] = &[0, 4, 0];

/// Checks fields and metadata; returns the slot and the row count the metadata states.
fn check_schema(schema: &Schema) -> Result<(Slot, u64), FormatError> {
    let want = schema_fields();
    if schema.fields().len() != want.len() {
        return Err(FormatError::Schema(format!("{} columns, expected {}", schema.fields().len(), want.len())));
    }
    for (got, want) in schema.fields().iter().zip(&want) {
        if got.name() != want.name() || got.data_type() != want.data_type() || got.is_nullable() != want.is_nullable() {
            return Err(FormatError::Schema(format!(
                "column {} is {:?}, expected {want:?}",
                got.name(),
                got.data_type()
            )));
        }
    }
    let meta = |k: &str| schema.metadata().get(k).map(String::as_str);
    if meta("prism.format") != Some(FORMAT_NAME) {
        return Err(FormatError::Schema("prism.format is missing or foreign".into()));
    }
    if meta("prism.format_version") != Some("1") {
        return Err(FormatError::Schema(format!(
            "prism.format_version {:?} is not supported",
            meta("prism.format_version")
        )));
    }
    let slot = meta("prism.slot")
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(Slot::new)
        .ok_or_else(|| FormatError::Schema("prism.slot is missing or out of range".into()))?;
    let rows = meta("prism.rows")
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| FormatError::Schema("prism.rows is missing".into()))?;
    Ok((slot, rows))
}

fn column<T: 'static>(batch: &RecordBatch, i: usize) -> Result<&T, FormatError> {
    batch.column(i).as_any().downcast_ref::<T>().ok_or_else(|| FormatError::Schema(format!("column {i} type")))
}

/// A `Bytes` for `part`: a slice of `whole` when `part` lies inside it (arrow kept the
/// buffer in place), else a copy.
fn share(whole: &Bytes, part: &[u8]) -> Bytes {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    if !part.is_empty() && p >= w && p + part.len() <= w + whole.len() {
        whole.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

fn rows_of(
    batch: &RecordBatch,
    slot: Slot,
    whole: &Bytes,
    out: &mut Vec<Row>,
    seen: &mut std::collections::HashSet<Bytes>,
) -> Result<(), FormatError> {
    let key: &BinaryArray = column(batch, 0)?;
    let kind: &DictionaryArray<Int8Type> = column(batch, 1)?;
    let names: &StringArray =
        kind.values().as_any().downcast_ref().ok_or_else(|| FormatError::Schema("type".into()))?;
    let expire: &Int64Array = column(batch, 2)?;
    let len: &Int64Array = column(batch, 3)?;
    let string_value: &LargeBinaryArray = column(batch, 4)?;
    let value: &LargeBinaryArray = column(batch, 5)?;
    for i in 0..batch.num_rows() {
        let index = out.len() as u64;
        let bad = |reason: String| FormatError::Row { index, reason };
        if key.is_null(i) || kind.is_null(i) || len.is_null(i) || value.is_null(i) {
            return Err(bad("null in a non-null column".into()));
        }
        let k = key.value(i);
        if Slot::of_key(k) != slot {
            return Err(bad(format!("key hashes to slot {}, object holds slot {}", Slot::of_key(k).get(), slot.get())));
        }
        let name = usize::try_from(kind.keys().value(i))
            .ok()
            .filter(|&n| n < names.len() && !names.is_null(n))
            .map(|n| names.value(n))
            .ok_or_else(|| bad("type index out of range".into()))?;
        let want = ValueKind::from_name(name.as_bytes()).ok_or_else(|| bad(format!("unknown type {name:?}")))?;
        let expire_at = if expire.is_null(i) {
            0
        } else {
            u64::try_from(expire.value(i)).ok().filter(|&d| d > 0).ok_or_else(|| bad("deadline not positive".into()))?
        };
        let payload = value.value(i);
        // The envelope (CRC-64 included) and the head of the body, without building the
        // value: the one full decode is the restore's (module header).
        let head = crate::dump::inspect(payload).map_err(|e| bad(format!("value: {e}")))?;
        if head.kind != want {
            return Err(bad(format!("value is a {}, type column says {name}", head.kind.name())));
        }
        if head.len as i64 != len.value(i) {
            return Err(bad("len does not match the value".into()));
        }
        let string_ok = match head.string {
            Some(s) => !string_value.is_null(i) && string_value.value(i) == s,
            None => string_value.is_null(i),
        };
        if !string_ok {
            return Err(bad("string_value does not match the value".into()));
        }
        let key = share(whole, k);
        if !seen.insert(key.clone()) {
            return Err(bad("key appears twice".into()));
        }
        out.push(Row { key, expire_at, payload: share(whole, payload) });
    }
    Ok(())
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// Found by `fuzz/fuzz_targets/cold_object.rs`: a mutated object whose i64 offsets
    /// buffer is not a whole number of values made arrow panic inside `decode` (hidden
    /// by its `catch_unwind`); it is now refused before arrow sees it.
    #[test]
    fn a_ragged_fixed_width_buffer_is_an_error_not_a_panic() {
        let bytes = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/cold-object-ragged-offsets.arrow"));
        let err = decode_inner(&Bytes::from_static(bytes)).expect_err("a corrupt object");
        assert!(err.to_string().contains("whole number of values"), "{err}");
    }
}
