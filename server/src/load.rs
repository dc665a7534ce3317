//! `prism load`: bulk-loads vertices and edges from CSV or Parquet files into a running
//! node or cluster (file formats in [`rows`], [`parquet`] and docs/benchmarks.md).
//!
//! Shape: one blocking reader thread reads rows from a [`source::Source`] (CSV or
//! Parquet, by extension or `--format`), turns them into commands and groups them into
//! batches of `--batch` commands per target node; each node gets `--connections`
//! connections, each writing a whole batch with one write and then reading its replies
//! in order (pipelining). Bounded channels between the reader and the connections keep
//! memory flat however large the file. The vertices file is loaded before the edges file.
//!
//! Routing: `CLUSTER SLOTS` at start; each row goes to the owner of the slot of its first
//! id (the vertex id or src), as a cluster client would route the command. A node that
//! answers CLUSTER SLOTS with an error (cluster mode off, as a plain Redis) or owns every
//! slot is loaded directly. Topology changes during the load are not followed: a -MOVED
//! reply is reported for its row like any other error.
//!
//! Invariant: every row ends counted exactly once, as loaded or as failed, and every
//! failed row is printed with its file and location (a CSV line, a Parquet row and row
//! group) for reader errors, error replies and rows lost with a broken connection. The
//! exit code is 1 if any row failed, 2 if the load could not start (missing file, bad
//! header or schema, unreachable node, failed AUTH).
//!
//! Authentication: with `--password-file` (and optionally `--user`) every connection,
//! the routing one included, sends AUTH first; the secret is read from the file, never
//! taken from argv or the environment (invariant 7).

mod parquet;
pub(crate) use prism_server::client as resp;
mod rows;
mod source;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prism_engine::Slot;
use tokio::sync::mpsc;

use resp::{Conn, Credentials, Reply};
use rows::Kind;
use source::{Format, Next, Unit};

/// Batches queued per connection ahead of the one being written.
const QUEUE_PER_CONNECTION: usize = 2;
const SLOTS: usize = 16384;

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Host of the node (any node of a cluster).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port of the node.
    #[arg(long, default_value_t = 6379)]
    pub port: u16,
    /// Vertices file (CSV or Parquet): columns `id[,label][,property ...]`.
    #[arg(long)]
    pub vertices: Option<PathBuf>,
    /// Edges file (CSV or Parquet): columns `src,type,dst[,rank][,property ...]`.
    #[arg(long)]
    pub edges: Option<PathBuf>,
    /// Format of both files; `auto` reads `*.parquet` as Parquet and anything else as CSV.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// File holding the password to AUTH with (the whole file less a trailing newline).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// User to AUTH as (needs --password-file); without it, the default user.
    #[arg(long, requires = "password_file")]
    pub user: Option<String>,
    /// Commands written per batch on one connection.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Connections per node.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub connections: u32,
}

/// Runs the load; the exit code says whether every row loaded.
pub fn main(args: LoadArgs) -> ExitCode {
    if args.vertices.is_none() && args.edges.is_none() {
        eprintln!("prism load: give --vertices FILE and/or --edges FILE");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("prism load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let credentials = match &args.password_file {
        Some(path) => match Credentials::from_file(path, args.user.clone()) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                eprintln!("prism load: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    runtime.block_on(async move {
        let addr = format!("{}:{}", args.host, args.port);
        let routing = match Routing::discover(&addr, credentials.as_deref()).await {
            Ok(r) => Arc::new(r),
            Err(e) => {
                eprintln!("prism load: {addr}: {e}");
                return ExitCode::from(2);
            }
        };
        let mut any_failed = false;
        let files = [(Kind::Vertices, &args.vertices), (Kind::Edges, &args.edges)];
        for (kind, path) in files {
            let Some(path) = path else { continue };
            match load_file(path.clone(), kind, routing.clone(), credentials.clone(), &args).await {
                Ok(s) => {
                    let secs = s.elapsed.as_secs_f64().max(1e-9);
                    println!(
                        "{} {}: {} rows, {} loaded, {} failed, {:.2} s, {:.0} rows/s",
                        kind.name(),
                        path.display(),
                        s.ok + s.failed,
                        s.ok,
                        s.failed,
                        secs,
                        (s.ok + s.failed) as f64 / secs
                    );
                    any_failed |= s.failed > 0;
                }
                Err(e) => {
                    eprintln!("prism load: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
        if any_failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Which node gets a row (also `prism backup` routes with it).
pub(crate) enum Routing {
    Single(String),
    Slots { nodes: Vec<String>, owner: Vec<u16> },
}

impl Routing {
    pub(crate) async fn discover(addr: &str, credentials: Option<&Credentials>) -> Result<Routing, String> {
        let mut conn = Conn::open(addr, credentials).await?;
        let reply = conn.call(&[b"CLUSTER", b"SLOTS"]).await.map_err(|e| format!("CLUSTER SLOTS: {e}"))?;
        if let Reply::Error(e) = &reply {
            if e.starts_with("NOAUTH") {
                return Err(format!("the node requires a password ({e}); give --password-file PATH"));
            }
        }
        let Reply::Array(ranges) = reply else { return Ok(Routing::Single(addr.to_string())) };
        let mut nodes: Vec<String> = Vec::new();
        let mut owner = vec![u16::MAX; SLOTS];
        for range in ranges {
            let Reply::Array(parts) = range else { return Err("malformed CLUSTER SLOTS reply".into()) };
            let (Some(Reply::Int(first)), Some(Reply::Int(last)), Some(Reply::Array(master))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                return Err("malformed CLUSTER SLOTS reply".into());
            };
            let (Some(Reply::Bulk(host)), Some(Reply::Int(port))) = (master.first(), master.get(1)) else {
                return Err("malformed CLUSTER SLOTS node".into());
            };
            let node = format!("{}:{port}", String::from_utf8_lossy(host));
            let index = nodes.iter().position(|n| *n == node).unwrap_or_else(|| {
                nodes.push(node);
                nodes.len() - 1
            });
            let (first, last) = (*first as usize, *last as usize);
            if first > last || last >= SLOTS {
                return Err(format!("CLUSTER SLOTS names slots {first}-{last}"));
            }
            owner[first..=last].fill(index as u16);
        }
        if nodes.len() <= 1 && owner.iter().all(|&o| o == 0) {
            return Ok(Routing::Single(addr.to_string()));
        }
        Ok(Routing::Slots { nodes, owner })
    }

    pub(crate) fn nodes(&self) -> Vec<String> {
        match self {
            Routing::Single(a) => vec![a.clone()],
            Routing::Slots { nodes, .. } => nodes.clone(),
        }
    }

    pub(crate) fn node_of(&self, key: &[u8]) -> Option<usize> {
        match self {
            Routing::Single(_) => Some(0),
            Routing::Slots { owner, .. } => match owner[Slot::of_key(key).index()] {
                u16::MAX => None,
                n => Some(n as usize),
            },
        }
    }
}

/// Rows pipelined together on one connection.
#[derive(Default)]
struct Batch {
    /// Each row's location in its file (see [`source::Locator`]).
    lines: Vec<u64>,
    bytes: Vec<u8>,
}

/// Counts and prints the outcome of a file's rows.
struct Report {
    file: String,
    locator: source::Locator,
    pb: ProgressBar,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Report {
    fn row_failed(&self, at: u64, why: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let place = self.locator.describe(&self.file, at);
        // suspend, not println: println prints nothing when the bar is hidden (no tty).
        self.pb.suspend(|| eprintln!("{place}: {why}"));
    }
}

struct FileStats {
    ok: u64,
    failed: u64,
    elapsed: Duration,
}

async fn load_file(
    path: PathBuf,
    kind: Kind,
    routing: Arc<Routing>,
    credentials: Option<Arc<Credentials>>,
    args: &LoadArgs,
) -> Result<FileStats, String> {
    let started = Instant::now();
    let (mut source, layout) = source::open(&path, args.format, kind)?;
    let total = source.total();

    let pb = ProgressBar::new(total);
    let counts = match source.unit() {
        Unit::Bytes => "{bytes}/{total_bytes}",
        Unit::Rows => "{human_pos}/{human_len} rows",
    };
    let template = format!("{{spinner}} {{prefix}} [{{bar:30}}] {counts} {{msg}} ({{elapsed}})");
    let style = ProgressStyle::with_template(&template).map_err(|e| e.to_string())?.progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(format!("{} {}", kind.name(), path.display()));
    pb.enable_steady_tick(Duration::from_millis(200));
    let report = Arc::new(Report {
        file: path.display().to_string(),
        locator: source.locator(),
        pb,
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });

    // Every node's connections, opened before reading so an unreachable node (or a
    // refused password) fails fast.
    let mut senders: Vec<Vec<mpsc::Sender<Batch>>> = Vec::new();
    let mut tasks = Vec::new();
    for node in routing.nodes() {
        let mut per_node = Vec::new();
        for _ in 0..args.connections {
            let conn = Conn::open(&node, credentials.as_deref()).await?;
            let (tx, rx) = mpsc::channel(QUEUE_PER_CONNECTION);
            tasks.push(tokio::spawn(drain(conn, rx, report.clone())));
            per_node.push(tx);
        }
        senders.push(per_node);
    }

    let batch_rows = args.batch as usize;
    let producer_report = report.clone();
    let producer = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let report = producer_report;
        let mut pending: Vec<Batch> = senders.iter().map(|_| Batch::default()).collect();
        let mut next_conn = vec![0usize; senders.len()];
        let mut send = |node: usize, batch: Batch| {
            let conns = &senders[node];
            let conn = next_conn[node] % conns.len();
            next_conn[node] += 1;
            // The receiver only goes away if its task panicked; its rows then fail loudly.
            if let Err(lost) = conns[conn].blocking_send(batch) {
                for line in lost.0.lines {
                    report.row_failed(line, "connection task ended");
                }
            }
        };
        let mut row = csv::ByteRecord::new();
        let mut rows = 0u64;
        // A read error ends the file, but the rows read before it are still sent.
        let mut read_error = None;
        loop {
            let next = match source.next(&mut row) {
                Ok(n) => n,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            let line = match next {
                Next::End => break,
                Next::Row(at) => at,
                Next::Bad(at, why) => {
                    rows += 1;
                    report.row_failed(at, &why);
                    continue;
                }
            };
            rows += 1;
            let mut command = Vec::new();
            let routed = layout
                .command(&row, &mut command)
                .and_then(|key| routing.node_of(key).ok_or_else(|| "no node owns the slot of this row's id".into()));
            let node = match routed {
                Ok(n) => n,
                Err(why) => {
                    report.row_failed(line, &why);
                    continue;
                }
            };
            let batch = &mut pending[node];
            batch.lines.push(line);
            batch.bytes.extend_from_slice(&command);
            if batch.lines.len() >= batch_rows {
                let full = std::mem::take(batch);
                send(node, full);
                report.pb.set_position(source.position());
                report.pb.set_message(format!("{rows} rows"));
            }
        }
        for (node, batch) in pending.into_iter().enumerate() {
            if !batch.lines.is_empty() {
                send(node, batch);
            }
        }
        report.pb.set_position(source.position().min(total));
        report.pb.set_message(format!("{rows} rows"));
        read_error.map_or(Ok(()), Err)
    });
    let produced = producer.await.map_err(|e| format!("reader thread: {e}"))?;
    for t in tasks {
        t.await.map_err(|e| format!("connection task: {e}"))?;
    }
    report.pb.finish_and_clear();
    produced?;
    Ok(FileStats {
        ok: report.ok.load(Ordering::Relaxed),
        failed: report.failed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

/// One connection: writes each batch at once and reads its replies in order. After an
/// I/O error the connection is dead: the rows whose replies were not read, and every row
/// still queued for it, are reported failed (they may or may not have been applied).
async fn drain(conn: Conn, mut rx: mpsc::Receiver<Batch>, report: Arc<Report>) {
    let mut conn = Some(conn);
    while let Some(batch) = rx.recv().await {
        let mut answered = 0;
        let mut lost = String::from("not sent: the connection was lost earlier");
        if let Some(c) = conn.as_mut() {
            let mut io = c.send(&batch.bytes).await.err();
            while io.is_none() && answered < batch.lines.len() {
                match c.reply().await {
                    Ok(Reply::Error(e)) => report.row_failed(batch.lines[answered], &format!("server replied: {e}")),
                    Ok(_) => {
                        report.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        io = Some(e);
                        break;
                    }
                }
                answered += 1;
            }
            if let Some(e) = io {
                lost = format!("no reply, the connection was lost ({e}); the row may or may not be loaded");
                conn = None;
            }
        }
        for line in &batch.lines[answered..] {
            report.row_failed(*line, &lost);
        }
    }
}
