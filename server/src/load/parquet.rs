//! Parquet input for `prism load`: the same logical columns as the CSV format (see
//! [`super::rows`]), found by name instead of by position, read through the Arrow reader
//! one record batch at a time so memory stays bounded by a batch, not by the file.
//!
//! Columns and their Arrow types (checked once, from the schema, before any row is sent):
//! - ids (`id`, `src`, `dst`), `type` and `label`: strings or binary (any offset width or
//!   view), or integers (written as decimal text); dictionary-encoded columns of those too.
//! - `rank`: an integer column, or a string column whose cells are decimal i64s.
//! - properties: strings, binary, integers, floats (shortest text that reads back the same
//!   value) or booleans (`true` / `false`).
//!
//! A column of any other type (list, struct, timestamp, decimal, ...) or a missing
//! required column refuses the file, naming the column and its type. Each row becomes a
//! header-aligned `csv::ByteRecord` in which a null cell is empty: nulls in label, rank
//! and properties set nothing (as empty CSV cells do), while a null id, src, type or dst
//! makes the row [`Next::Bad`]. A row's location is its index in the file (from 0); the
//! [`Locator`] names its row group.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::ChunkReader;

use super::rows::Kind;
use super::source::{Locator, Next, Source, Unit};

/// Rows decoded at a time.
const BATCH_ROWS: usize = 1024;

/// What a column's cells become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CellType {
    Text,
    Integer,
    Float,
    Boolean,
}

fn cell_type(dt: &DataType) -> Option<CellType> {
    use DataType::*;
    match dt {
        Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Some(CellType::Text),
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Some(CellType::Integer),
        Float32 | Float64 => Some(CellType::Float),
        Boolean => Some(CellType::Boolean),
        Dictionary(_, values) => cell_type(values),
        _ => None,
    }
}

/// A Parquet file read as header-aligned rows.
pub struct ParquetSource {
    reader: ParquetRecordBatchReader,
    /// The Arrow column behind each header position.
    order: Vec<usize>,
    /// Header positions that must not be null, with their names.
    required: Vec<(usize, &'static str)>,
    group_starts: Vec<u64>,
    total_rows: u64,
    batch: Option<RecordBatch>,
    /// Next row of `batch`.
    batch_row: usize,
    /// Index in the file of the next row.
    row: u64,
    /// Scratch for one cell's text, reused across rows.
    cell: Vec<u8>,
}

impl ParquetSource {
    /// Reads the schema of a `kind` file and checks its columns; returns the source and
    /// the header its rows line up with (src, type, dst first for edges, as in CSV).
    pub fn open<R: ChunkReader + 'static>(input: R, kind: Kind) -> Result<(ParquetSource, csv::ByteRecord), String> {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(input).map_err(|e| format!("not a Parquet file: {e}"))?;
        let mut group_starts = Vec::with_capacity(builder.metadata().row_groups().len());
        let mut total_rows = 0u64;
        for g in builder.metadata().row_groups() {
            group_starts.push(total_rows);
            total_rows += u64::try_from(g.num_rows()).unwrap_or(0);
        }
        let schema = builder.schema().clone();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().trim().to_ascii_lowercase()).collect();
        let find = |name: &'static str| -> Result<usize, String> {
            names.iter().position(|n| n == name).ok_or_else(|| {
                format!("no `{name}` column (a {} file needs {})", kind.name(), required_names(kind).join(", "))
            })
        };
        let mut order: Vec<usize> = Vec::with_capacity(names.len());
        let mut required = Vec::new();
        for name in required_names(kind) {
            required.push((order.len(), *name));
            order.push(find(name)?);
        }
        let rest: Vec<usize> = (0..names.len()).filter(|i| !order.contains(i)).collect();
        order.extend(rest);

        for &column in &order {
            let field = &schema.fields()[column];
            let name = names[column].as_str();
            // A name is special only in its own kind of file: `label` in an edges file is a
            // property like any other.
            let allowed: &[CellType] = match (kind, name) {
                (Kind::Vertices, "id" | "label") | (Kind::Edges, "src" | "type" | "dst") => {
                    &[CellType::Text, CellType::Integer]
                }
                (Kind::Edges, "rank") => &[CellType::Integer, CellType::Text],
                _ => &[CellType::Text, CellType::Integer, CellType::Float, CellType::Boolean],
            };
            if !cell_type(field.data_type()).is_some_and(|t| allowed.contains(&t)) {
                let want = match allowed.len() {
                    2 if allowed[0] == CellType::Text => "a string, binary or integer column",
                    2 => "an integer or string column",
                    _ => "a string, binary, integer, float or boolean column",
                };
                return Err(format!("column `{}` has type {}; {name} needs {want}", field.name(), field.data_type()));
            }
        }
        // Header names keep the file's spelling: a property is stored under it.
        let header: csv::ByteRecord = order.iter().map(|&c| schema.fields()[c].name().trim().as_bytes()).collect();
        let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(|e| e.to_string())?;
        let source = ParquetSource {
            reader,
            order,
            required,
            group_starts,
            total_rows,
            batch: None,
            batch_row: 0,
            row: 0,
            cell: Vec::new(),
        };
        Ok((source, header))
    }

    fn group_of(&self, row: u64) -> usize {
        self.group_starts.partition_point(|&s| s <= row).saturating_sub(1)
    }
}

fn required_names(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Vertices => &["id"],
        Kind::Edges => &["src", "type", "dst"],
    }
}

impl Source for ParquetSource {
    fn next(&mut self, out: &mut csv::ByteRecord) -> Result<Next, String> {
        let batch = loop {
            match &self.batch {
                Some(b) if self.batch_row < b.num_rows() => break b,
                _ => {}
            }
            match self.reader.next() {
                None => return Ok(Next::End),
                Some(Ok(b)) => {
                    self.batch = Some(b);
                    self.batch_row = 0;
                }
                // The rest of the file cannot be decoded; the load stops here, loudly.
                Some(Err(e)) => return Err(format!("read error in row group {}: {e}", self.group_of(self.row))),
            }
        };
        let (at, index) = (self.row, self.batch_row);
        self.row += 1;
        self.batch_row += 1;
        out.clear();
        let cell = &mut self.cell;
        for (position, &column) in self.order.iter().enumerate() {
            cell.clear();
            let present = match write_cell(batch.column(column).as_ref(), index, cell) {
                Ok(p) => p,
                Err(why) => return Ok(Next::Bad(at, why)),
            };
            if !present {
                if let Some((_, name)) = self.required.iter().find(|(p, _)| *p == position) {
                    return Ok(Next::Bad(at, format!("null {name}")));
                }
            }
            out.push_field(cell);
        }
        Ok(Next::Row(at))
    }

    fn position(&self) -> u64 {
        self.row
    }

    fn total(&self) -> u64 {
        self.total_rows
    }

    fn unit(&self) -> Unit {
        Unit::Rows
    }

    fn locator(&self) -> Locator {
        Locator::ParquetRow { group_starts: self.group_starts.clone() }
    }
}

/// Appends the text of `array[row]` to `out`; `Ok(false)` for a null. The array's type
/// was checked against [`cell_type`] when the file was opened.
fn write_cell(array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<bool, String> {
    if row >= array.len() {
        return Err(format!("row {row} is past the end of a column of {}", array.len()));
    }
    if array.is_null(row) {
        return Ok(false);
    }
    if let Some(dict) = array.as_any_dictionary_opt() {
        let key = integer(dict.keys(), row)
            .and_then(|k| usize::try_from(k).ok())
            .ok_or("dictionary key is not a valid index")?;
        return write_cell(dict.values().as_ref(), key, out);
    }
    let missing = || format!("unsupported column type {}", array.data_type());
    match cell_type(array.data_type()).ok_or_else(missing)? {
        CellType::Text => out.extend_from_slice(bytes(array, row).ok_or_else(missing)?),
        CellType::Integer => {
            out.extend_from_slice(itoa::Buffer::new().format(integer(array, row).ok_or_else(missing)?).as_bytes())
        }
        CellType::Float => {
            let text = match array.data_type() {
                DataType::Float32 => array.as_primitive_opt::<Float32Type>().map(|a| a.value(row).to_string()),
                _ => array.as_primitive_opt::<Float64Type>().map(|a| a.value(row).to_string()),
            };
            out.extend_from_slice(text.ok_or_else(missing)?.as_bytes());
        }
        CellType::Boolean => {
            let b = array.as_boolean_opt().ok_or_else(missing)?.value(row);
            out.extend_from_slice(if b { b"true" } else { b"false" });
        }
    }
    Ok(true)
}

fn bytes(array: &dyn Array, row: usize) -> Option<&[u8]> {
    match array.data_type() {
        DataType::Utf8 => array.as_string_opt::<i32>().map(|a| a.value(row).as_bytes()),
        DataType::LargeUtf8 => array.as_string_opt::<i64>().map(|a| a.value(row).as_bytes()),
        DataType::Utf8View => array.as_string_view_opt().map(|a| a.value(row).as_bytes()),
        DataType::Binary => array.as_binary_opt::<i32>().map(|a| a.value(row)),
        DataType::LargeBinary => array.as_binary_opt::<i64>().map(|a| a.value(row)),
        DataType::BinaryView => array.as_binary_view_opt().map(|a| a.value(row)),
        DataType::FixedSizeBinary(_) => array.as_fixed_size_binary_opt().map(|a| a.value(row)),
        _ => None,
    }
}

/// An integer cell of any width and sign (i128 holds them all).
fn integer(array: &dyn Array, row: usize) -> Option<i128> {
    macro_rules! int {
        ($t:ty) => {
            array.as_primitive_opt::<$t>().map(|a| i128::from(a.value(row)))
        };
    }
    match array.data_type() {
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int32Array, StringArray, UInt64Array};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;

    /// A Parquet file in memory with row groups of at most `group_rows` rows.
    fn file(columns: Vec<(&str, ArrayRef)>, group_rows: usize) -> Bytes {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(group_rows)).build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        Bytes::from(out)
    }

    fn rows(source: &mut ParquetSource) -> Vec<Result<Vec<String>, String>> {
        let mut rec = csv::ByteRecord::new();
        let mut all = Vec::new();
        loop {
            match source.next(&mut rec).unwrap() {
                Next::End => return all,
                Next::Row(_) => all.push(Ok(rec.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect())),
                Next::Bad(at, why) => all.push(Err(format!("{at}: {why}"))),
            }
        }
    }

    #[test]
    fn edges_are_found_by_name_and_typed_cells_become_text() {
        let dict: DictionaryArray<Int32Type> = vec![Some("t"), None, Some("t")].into_iter().collect();
        let data = file(
            vec![
                ("w", Arc::new(Float64Array::from(vec![Some(0.5), None, Some(2.0)])) as ArrayRef),
                ("DST", Arc::new(UInt64Array::from(vec![7, 8, 9]))),
                ("type", Arc::new(dict)),
                ("src", Arc::new(StringArray::from(vec!["a", "b", "c"]))),
                ("rank", Arc::new(Int32Array::from(vec![Some(-3), None, Some(4)]))),
                ("ok", Arc::new(BooleanArray::from(vec![true, false, true]))),
            ],
            2,
        );
        let (mut s, header) = ParquetSource::open(data, Kind::Edges).unwrap();
        assert_eq!(header, csv::ByteRecord::from(vec!["src", "type", "DST", "w", "rank", "ok"]));
        assert_eq!(s.total(), 3);
        assert_eq!(
            rows(&mut s),
            vec![
                Ok(vec!["a".into(), "t".into(), "7".into(), "0.5".into(), "-3".into(), "true".into()]),
                Err("1: null type".into()),
                Ok(vec!["c".into(), "t".into(), "9".into(), "2".into(), "4".into(), "true".into()]),
            ]
        );
        assert_eq!(s.locator().describe("e.parquet", 2), "e.parquet: row 2 (row group 1, row 0)");
    }

    #[test]
    fn missing_or_mistyped_columns_refuse_the_file() {
        let v = file(vec![("name", Arc::new(StringArray::from(vec!["x"])) as ArrayRef)], 10);
        let err = ParquetSource::open(v, Kind::Vertices).err().unwrap();
        assert!(err.contains("no `id` column"), "{err}");
        let v = file(vec![("id", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef)], 10);
        let err = ParquetSource::open(v, Kind::Vertices).err().unwrap();
        assert_eq!(err, "column `id` has type Float64; id needs a string, binary or integer column");
        let e = file(
            vec![
                ("src", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
                ("type", Arc::new(StringArray::from(vec!["t"]))),
                ("dst", Arc::new(StringArray::from(vec!["b"]))),
                ("rank", Arc::new(BooleanArray::from(vec![true]))),
            ],
            10,
        );
        let err = ParquetSource::open(e, Kind::Edges).err().unwrap();
        assert!(err.contains("rank needs an integer or string column"), "{err}");
        // `label` and `id` are properties in an edges file, so any property type will do.
        let e = file(
            vec![
                ("src", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
                ("type", Arc::new(StringArray::from(vec!["t"]))),
                ("dst", Arc::new(StringArray::from(vec!["b"]))),
                ("label", Arc::new(Float64Array::from(vec![1.5]))),
            ],
            10,
        );
        let (mut s, _) = ParquetSource::open(e, Kind::Edges).unwrap();
        assert_eq!(rows(&mut s), vec![Ok(vec!["a".into(), "t".into(), "b".into(), "1.5".into()])]);
        assert!(ParquetSource::open(Bytes::from_static(b"id\nx\n"), Kind::Vertices).is_err());
    }
}
