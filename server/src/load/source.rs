//! Where rows come from: a file opened as CSV or Parquet, read one row at a time as a
//! `csv::ByteRecord` whose cells line up with a header, so one [`Layout`] turns rows of
//! either format into the same commands.
//!
//! Every row a source reads carries a location (a CSV line, a Parquet row index) that the
//! [`Locator`] turns into the text printed with the row's error; a row the source itself
//! cannot use (a malformed CSV row, a null id in Parquet) comes back as [`Next::Bad`], so
//! it is counted and reported like a row the server refused.

use std::path::Path;

use clap::ValueEnum;

use super::parquet::ParquetSource;
use super::rows::{Kind, Layout};

/// The file format of `--vertices` and `--edges`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// By extension: `.parquet` is Parquet, anything else CSV.
    Auto,
    Csv,
    Parquet,
}

impl Format {
    /// The format `path` is read as.
    pub fn of(self, path: &Path) -> Format {
        match self {
            Format::Auto => {
                let parquet = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
                if parquet {
                    Format::Parquet
                } else {
                    Format::Csv
                }
            }
            f => f,
        }
    }
}

/// What reading one row gave.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// A row is in the record; its location.
    Row(u64),
    /// The row at this location cannot be loaded, and why.
    Bad(u64, String),
    /// The file is done.
    End,
}

/// Turns a row's location into the text printed before its error.
#[derive(Debug, Clone)]
pub enum Locator {
    /// `file:line`.
    Line,
    /// A Parquet row index (from 0, over the whole file), and the first row of each row
    /// group so the message can name the group and the row within it.
    ParquetRow { group_starts: Vec<u64> },
}

impl Locator {
    pub fn describe(&self, file: &str, at: u64) -> String {
        match self {
            Locator::Line => format!("{file}:{at}"),
            Locator::ParquetRow { group_starts } => {
                // The last group starting at or before `at`.
                let group = group_starts.partition_point(|&s| s <= at).saturating_sub(1);
                let within = at - group_starts.get(group).copied().unwrap_or(0).min(at);
                format!("{file}: row {at} (row group {group}, row {within})")
            }
        }
    }
}

/// How far a source has read, for the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Rows,
}

/// A file being read row by row (on the loader's blocking reader thread).
pub trait Source: Send {
    /// Reads the next row into `row`.
    fn next(&mut self, row: &mut csv::ByteRecord) -> Result<Next, String>;
    /// Progress so far, in [`Source::unit`]s.
    fn position(&self) -> u64;
    /// The whole file, in [`Source::unit`]s.
    fn total(&self) -> u64;
    fn unit(&self) -> Unit;
    fn locator(&self) -> Locator;
}

/// Opens `path` in `format` and reads its header (CSV) or schema (Parquet) into the layout
/// of a `kind` file. Any error here means the load cannot start.
pub fn open(path: &Path, format: Format, kind: Kind) -> Result<(Box<dyn Source>, Layout), String> {
    match format.of(path) {
        Format::Parquet => {
            let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
            let (source, header) = ParquetSource::open(file, kind)?;
            let layout = Layout::from_header(kind, &header)?;
            Ok((Box::new(source), layout))
        }
        _ => {
            let source = CsvSource::open(path)?;
            let layout = Layout::from_header(kind, &source.header)?;
            Ok((Box::new(source), layout))
        }
    }
}

/// RFC 4180 CSV with a header row; a row's location is its first line.
pub struct CsvSource {
    reader: csv::Reader<std::fs::File>,
    header: csv::ByteRecord,
    size: u64,
}

impl CsvSource {
    fn open(path: &Path) -> Result<CsvSource, String> {
        let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path).map_err(|e| e.to_string())?;
        let header = reader.byte_headers().map_err(|e| e.to_string())?.clone();
        Ok(CsvSource { reader, header, size })
    }
}

impl Source for CsvSource {
    fn next(&mut self, row: &mut csv::ByteRecord) -> Result<Next, String> {
        let line_before = self.reader.position().line();
        match self.reader.read_byte_record(row) {
            Ok(false) => Ok(Next::End),
            Ok(true) => Ok(Next::Row(row.position().map(|p| p.line()).unwrap_or(line_before))),
            // An I/O error ends the file; anything else is this row's fault.
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                Err(format!("read error after line {line_before}: {e}"))
            }
            Err(e) => Ok(Next::Bad(line_before, e.to_string())),
        }
    }

    fn position(&self) -> u64 {
        self.reader.position().byte()
    }

    fn total(&self) -> u64 {
        self.size
    }

    fn unit(&self) -> Unit {
        Unit::Bytes
    }

    fn locator(&self) -> Locator {
        Locator::Line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_extension_unless_forced() {
        assert_eq!(Format::Auto.of(Path::new("a/v.parquet")), Format::Parquet);
        assert_eq!(Format::Auto.of(Path::new("v.PARQUET")), Format::Parquet);
        assert_eq!(Format::Auto.of(Path::new("v.csv")), Format::Csv);
        assert_eq!(Format::Auto.of(Path::new("parquet")), Format::Csv);
        assert_eq!(Format::Parquet.of(Path::new("v.dat")), Format::Parquet);
        assert_eq!(Format::Csv.of(Path::new("v.parquet")), Format::Csv);
    }

    #[test]
    fn parquet_rows_are_located_by_row_group() {
        let l = Locator::ParquetRow { group_starts: vec![0, 10, 25] };
        assert_eq!(l.describe("v.parquet", 0), "v.parquet: row 0 (row group 0, row 0)");
        assert_eq!(l.describe("v.parquet", 12), "v.parquet: row 12 (row group 1, row 2)");
        assert_eq!(l.describe("v.parquet", 25), "v.parquet: row 25 (row group 2, row 0)");
        assert_eq!(Locator::Line.describe("v.csv", 7), "v.csv:7");
    }
}
