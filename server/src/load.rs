//! `prism load`: bulk-loads vertices and edges from CSV files into a running node or
//! cluster (file formats in [`rows`] and docs/benchmarks.md).
//!
//! Shape: one blocking reader thread turns rows into commands and groups them into
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
//! failed row is printed with its file and line (reader errors, error replies, rows lost
//! with a broken connection). The exit code is 1 if any row failed, 2 if the load could
//! not start (missing file, bad header, unreachable node).

mod resp;
mod rows;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prism_engine::Slot;
use tokio::sync::mpsc;

use resp::{Conn, Reply};
use rows::{Kind, Layout};

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
    /// Vertices CSV: header `id[,label][,property ...]`.
    #[arg(long)]
    pub vertices: Option<PathBuf>,
    /// Edges CSV: header `src,type,dst[,rank][,property ...]`.
    #[arg(long)]
    pub edges: Option<PathBuf>,
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
    runtime.block_on(async move {
        let addr = format!("{}:{}", args.host, args.port);
        let routing = match Routing::discover(&addr).await {
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
            match load_file(path.clone(), kind, routing.clone(), &args).await {
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

/// Which node gets a row.
enum Routing {
    Single(String),
    Slots { nodes: Vec<String>, owner: Vec<u16> },
}

impl Routing {
    async fn discover(addr: &str) -> Result<Routing, String> {
        let mut conn = Conn::connect(addr).await.map_err(|e| format!("cannot connect: {e}"))?;
        let reply = conn.call(&[b"CLUSTER", b"SLOTS"]).await.map_err(|e| format!("CLUSTER SLOTS: {e}"))?;
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

    fn nodes(&self) -> Vec<String> {
        match self {
            Routing::Single(a) => vec![a.clone()],
            Routing::Slots { nodes, .. } => nodes.clone(),
        }
    }

    fn node_of(&self, key: &[u8]) -> Option<usize> {
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
    lines: Vec<u64>,
    bytes: Vec<u8>,
}

/// Counts and prints the outcome of a file's rows.
struct Report {
    file: String,
    pb: ProgressBar,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Report {
    fn row_failed(&self, line: u64, why: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        // suspend, not println: println prints nothing when the bar is hidden (no tty).
        self.pb.suspend(|| eprintln!("{}:{line}: {why}", self.file));
    }
}

struct FileStats {
    ok: u64,
    failed: u64,
    elapsed: Duration,
}

async fn load_file(path: PathBuf, kind: Kind, routing: Arc<Routing>, args: &LoadArgs) -> Result<FileStats, String> {
    let started = Instant::now();
    let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(&path).map_err(|e| e.to_string())?;
    let header = reader.byte_headers().map_err(|e| e.to_string())?.clone();
    let layout = Layout::from_header(kind, &header)?;

    let pb = ProgressBar::new(size);
    let style = ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {bytes}/{total_bytes} {msg} ({elapsed})")
        .map_err(|e| e.to_string())?
        .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(format!("{} {}", kind.name(), path.display()));
    pb.enable_steady_tick(Duration::from_millis(200));
    let report =
        Arc::new(Report { file: path.display().to_string(), pb, ok: AtomicU64::new(0), failed: AtomicU64::new(0) });

    // Every node's connections, opened before reading so an unreachable node fails fast.
    let mut senders: Vec<Vec<mpsc::Sender<Batch>>> = Vec::new();
    let mut tasks = Vec::new();
    for node in routing.nodes() {
        let mut per_node = Vec::new();
        for _ in 0..args.connections {
            let conn = Conn::connect(&node).await.map_err(|e| format!("cannot connect to {node}: {e}"))?;
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
        loop {
            let line_before = reader.position().line();
            match reader.read_byte_record(&mut row) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    // An I/O error ends the file; anything else is this row's fault.
                    if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                        return Err(format!("read error after line {line_before}: {e}"));
                    }
                    rows += 1;
                    report.row_failed(line_before, &e.to_string());
                    continue;
                }
            }
            rows += 1;
            let line = row.position().map(|p| p.line()).unwrap_or(line_before);
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
                report.pb.set_position(reader.position().byte());
                report.pb.set_message(format!("{rows} rows"));
            }
        }
        for (node, batch) in pending.into_iter().enumerate() {
            if !batch.lines.is_empty() {
                send(node, batch);
            }
        }
        report.pb.set_position(size);
        report.pb.set_message(format!("{rows} rows"));
        Ok(())
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
