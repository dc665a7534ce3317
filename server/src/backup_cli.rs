//! `prism backup create|verify|restore <url>`: backups of a running node or cluster
//! (format and digests: `prism_server::backup`). The URL's last path segment names the
//! backup inside an object store: `/backups/nightly`, `s3://bucket/prefix/nightly`.
//!
//! - `create` asks every shard's leader (the masters of `CLUSTER SLOTS`, or the one node
//!   of a standalone server) to `BACKUP SAVE` its shard, then writes `backup.json` last:
//!   a backup is complete exactly when its manifest exists.
//! - `verify` reads every object (checksums), rebuilds every shard in a scratch
//!   keyspace with its cold partitions loaded, and compares per-slot digests and row
//!   counts with those the nodes recorded while saving.
//! - `restore` rebuilds each shard the same way and sends every key to the target node
//!   or cluster with `RESTORE key <deadline> <payload> REPLACE ABSTTL`, pipelined per
//!   node and routed by slot.
//! - `copy` copies a finished backup to another store (`prism_server::backup::copy`:
//!   every object checked before it is written, the manifest last, objects already
//!   there skipped); `create --copy-to` runs it right after the backup is complete.
//!
//! Secrets come from files: `--password-file` for AUTH, `--credentials` for an S3
//! store (read by this process and, for `create`, by every node at the same path);
//! `--dst-credentials` / `--copy-to-credentials` for a copy's destination.
//! Exit codes: 0 success, 1 the backup is bad, keys failed to restore or a copy failed
//! midway, 2 could not start (bad URL, unreachable node or store, missing backup, a
//! destination holding another backup under the name).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use prism_engine::tier::ColdStore;
use prism_server::backup::copy::{self, CopyError, CopySummary, End, Progress};
use prism_server::backup::crypt::BackupKey;
use prism_server::backup::{read, BackupManifest, Digests, ShardBackup, FORMAT};
use prism_server::client::{self, Conn, Credentials, Reply};

use crate::load::Routing;

#[derive(Subcommand)]
pub enum BackupCommand {
    /// Back up every shard of a running node or cluster (URL: <store>/<name>).
    Create(CreateArgs),
    /// Check every object of a backup and that it restores to the digests it recorded.
    Verify(StoreArgs),
    /// Restore a backup into a running node or cluster (empty, or keys are replaced).
    Restore(RestoreArgs),
    /// Copy a finished backup to another store, checking every object on the way.
    Copy(CopyArgs),
}

#[derive(Args)]
pub struct StoreArgs {
    /// The backup: a directory path, file:///dir/name or s3://bucket[/prefix]/name.
    pub url: String,
    /// TOML file of S3 options (keys, endpoint, region), as for `cold-store-credentials`.
    #[arg(long, value_name = "PATH")]
    pub credentials: Option<PathBuf>,
    /// AES-256 key file (32 bytes, raw or hex): `create` encrypts every object with it
    /// (each node reads it at this path), `verify` and `restore` need it to open them.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct NodeArgs {
    /// Host of a node (any node of a cluster).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 6379)]
    pub port: u16,
    /// File holding the password to AUTH with.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// User to AUTH as (needs --password-file).
    #[arg(long, requires = "password_file")]
    pub user: Option<String>,
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub node: NodeArgs,
    /// Once the backup is complete, copy it to this backup URL as `copy` does
    /// (<store>/<name>: a directory path, file:///dir/name or s3://bucket[/prefix]/name).
    #[arg(long, value_name = "URL")]
    pub copy_to: Option<String>,
    /// S3 options file for the --copy-to store (default: --credentials).
    #[arg(long, value_name = "PATH", requires = "copy_to")]
    pub copy_to_credentials: Option<PathBuf>,
}

#[derive(Args)]
pub struct CopyArgs {
    /// The backup to copy: a directory path, file:///dir/name or s3://bucket[/prefix]/name.
    pub src: String,
    /// Where to: <store>/<name> (the name may differ from the source's).
    pub dst: String,
    /// S3 options file for the source store, as for the other commands.
    #[arg(long, value_name = "PATH")]
    pub credentials: Option<PathBuf>,
    /// S3 options file for the destination store (default: --credentials).
    #[arg(long, value_name = "PATH")]
    pub dst_credentials: Option<PathBuf>,
}

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub node: NodeArgs,
    /// Commands per pipelined batch.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
}

/// Why a command stopped: `Start` exits 2, `Bad` exits 1.
enum Failure {
    Start(String),
    Bad(String),
}

impl Failure {
    /// The same failure, saying which store it is about.
    fn about(self, what: &str) -> Failure {
        match self {
            Failure::Start(e) => Failure::Start(format!("{what}: {e}")),
            Failure::Bad(e) => Failure::Bad(format!("{what}: {e}")),
        }
    }
}

pub fn main(command: BackupCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("prism backup: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        match command {
            BackupCommand::Create(a) => create(a).await,
            BackupCommand::Verify(a) => verify(a).await,
            BackupCommand::Restore(a) => restore(a).await,
            BackupCommand::Copy(a) => copy_cmd(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Start(e)) => {
            eprintln!("prism backup: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Bad(e)) => {
            eprintln!("prism backup: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_store(args: &StoreArgs) -> Result<(ColdStore, String, String), Failure> {
    open_url(&args.url, args.credentials.as_deref())
}

/// A backup URL's store (opened) and name.
fn open_url(backup_url: &str, credentials: Option<&Path>) -> Result<(ColdStore, String, String), Failure> {
    let (url, name) = read::split_url(backup_url).map_err(Failure::Start)?;
    let store = ColdStore::open(&url, credentials).map_err(|e| Failure::Start(e.to_string()))?;
    Ok((store, url, name))
}

fn key(args: &StoreArgs) -> Result<Option<BackupKey>, Failure> {
    args.key_file.as_deref().map(BackupKey::from_file).transpose().map_err(Failure::Start)
}

fn credentials(args: &NodeArgs) -> Result<Option<Credentials>, Failure> {
    args.password_file
        .as_ref()
        .map(|p| Credentials::from_file(p, args.user.clone()))
        .transpose()
        .map_err(Failure::Start)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let template = format!("{what} [{{elapsed_precise}}] {{bar:30}} {{human_pos}}/{{human_len}} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let (store, url, name) = open_store(&args.store)?;
    if store.get_raw(&format!("{name}/backup.json")).await.is_ok() {
        return Err(Failure::Start(format!("backup {name} already exists in {url}")));
    }
    // The copy's destination is checked before any node works: reachable, and holding
    // no backup under the name (a backup about to be made cannot already be there).
    let copy_to = match &args.copy_to {
        None => None,
        Some(to) => {
            let creds = args.copy_to_credentials.as_deref().or(args.store.credentials.as_deref());
            let (dst, dst_url, dst_name) = open_url(to, creds).map_err(|e| e.about("--copy-to"))?;
            if dst.url() == store.url() && dst_name == name {
                return Err(Failure::Start(format!("--copy-to {to} is the backup being created")));
            }
            copy::check_destination(&End { store: &dst, name: &dst_name }, None).await.map_err(copy_failure)?;
            Some((dst, dst_url, dst_name))
        }
    };
    // Read here too, so a bad key file fails before any node works.
    let encrypted = key(&args.store)?.map(|k| k.id().to_string());
    let creds = credentials(&args.node)?;
    let addr = format!("{}:{}", args.node.host, args.node.port);
    let routing = Routing::discover(&addr, creds.as_ref()).await.map_err(|e| Failure::Start(format!("{addr}: {e}")))?;
    let nodes = routing.nodes();
    let created_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let pb = bar(nodes.len() as u64, "shards");
    let mut shards = Vec::with_capacity(nodes.len());
    for node in &nodes {
        pb.set_message(node.clone());
        let mut conn = Conn::open(node, creds.as_ref()).await.map_err(Failure::Start)?;
        let mut cmd: Vec<&[u8]> = vec![b"BACKUP", b"SAVE", url.as_bytes(), name.as_bytes()];
        let creds_path = args.store.credentials.as_ref().map(|p| p.display().to_string());
        if let Some(p) = &creds_path {
            cmd.extend([b"CREDENTIALS".as_slice(), p.as_bytes()]);
        }
        let key_path = args.store.key_file.as_ref().map(|p| p.display().to_string());
        if let Some(p) = &key_path {
            cmd.extend([b"KEYFILE".as_slice(), p.as_bytes()]);
        }
        let part: ShardBackup = match conn.call(&cmd).await {
            Ok(Reply::Bulk(json)) => serde_json::from_slice(&json)
                .map_err(|e| Failure::Bad(format!("{node}: unreadable BACKUP SAVE reply: {e}")))?,
            Ok(Reply::Error(e)) => return Err(Failure::Bad(format!("{node}: {e}"))),
            Ok(other) => return Err(Failure::Bad(format!("{node}: unexpected reply {other:?}"))),
            Err(e) => return Err(Failure::Bad(format!("{node}: {e}"))),
        };
        shards.push(part);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let manifest = BackupManifest { format: FORMAT, name: name.clone(), created_ms, shards };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Failure::Bad(e.to_string()))?;
    store.put_raw(&format!("{name}/backup.json"), json.into()).await.map_err(|e| Failure::Bad(e.to_string()))?;
    let rows: u64 = manifest.shards.iter().flat_map(|s| &s.slots).map(|s| s.rows).sum();
    let cold: usize = manifest.shards.iter().map(|s| s.cold.len()).sum();
    let sealed = encrypted.map_or(String::new(), |id| format!(", encrypted (key id {id})"));
    println!(
        "backup {name} created in {url}: {} shards, {rows} keys ({cold} cold partitions){sealed}, {:.2} s",
        manifest.shards.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some((dst, dst_url, dst_name)) = copy_to {
        let (src, to) = (End { store: &store, name: &name }, End { store: &dst, name: &dst_name });
        run_copy(&src, &to).await.map_err(|e| {
            let e = match e {
                Failure::Start(e) | Failure::Bad(e) => e,
            };
            Failure::Bad(format!(
                "backup {name} is complete in {url}, but its copy to {dst_url}/{dst_name} failed: {e}"
            ))
        })?;
    }
    Ok(())
}

async fn copy_cmd(args: CopyArgs) -> Result<(), Failure> {
    let (src, _, src_name) = open_url(&args.src, args.credentials.as_deref()).map_err(|e| e.about("source"))?;
    let dst_creds = args.dst_credentials.as_deref().or(args.credentials.as_deref());
    let (dst, _, dst_name) = open_url(&args.dst, dst_creds).map_err(|e| e.about("destination"))?;
    run_copy(&End { store: &src, name: &src_name }, &End { store: &dst, name: &dst_name }).await.map(drop)
}

/// Copies with a progress bar (objects) and prints the summary line.
async fn run_copy(src: &End<'_>, dst: &End<'_>) -> Result<CopySummary, Failure> {
    let started = Instant::now();
    let pb = bar(0, "objects");
    let progress = |p: Progress<'_>| match p {
        Progress::Planned { objects, .. } => pb.set_length(objects),
        Progress::Done { key, .. } => {
            pb.set_message(key.to_string());
            pb.inc(1);
        }
    };
    let result = copy::copy(src, dst, &progress).await;
    pb.finish_and_clear();
    let s = result.map_err(copy_failure)?;
    let there = if s.already_complete { "; the destination already held this backup" } else { "" };
    println!(
        "backup {}/{} copied to {}/{}: {} objects, {} copied ({} bytes), {} skipped as already there ({} bytes){there}, {:.2} s",
        src.store.url(),
        src.name,
        dst.store.url(),
        dst.name,
        s.objects,
        s.copied,
        s.copied_bytes,
        s.skipped,
        s.skipped_bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(s)
}

fn copy_failure(e: CopyError) -> Failure {
    match e {
        CopyError::Refused(e) => Failure::Start(e),
        CopyError::Failed(e) => Failure::Bad(e),
    }
}

async fn verify(args: StoreArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let (store, url, name) = open_store(&args)?;
    let key = key(&args)?;
    let manifest = read::manifest(&store, &name).await.map_err(Failure::Start)?;
    let mut expected = Digests::default();
    for part in &manifest.shards {
        expected.merge_list(&part.slots).map_err(|e| Failure::Bad(format!("{name}/backup.json: {e}")))?;
    }
    let pb = bar(manifest.shards.len() as u64, "shards");
    let (mut found, mut bytes) = (Digests::default(), 0u64);
    for part in &manifest.shards {
        pb.set_message(part.snapshot.clone());
        let shard = read::materialize(&store, part, key.as_ref()).await.map_err(Failure::Bad)?;
        found.merge(&shard.digests);
        bytes += shard.bytes;
        pb.inc(1);
    }
    pb.finish_and_clear();
    let diff = expected.differences(&found);
    if !diff.is_empty() {
        for (slot, want, got) in diff.iter().take(10) {
            eprintln!("slot {slot}: recorded {want:?}, restored {got:?}");
        }
        return Err(Failure::Bad(format!("backup {name}: {} slots differ from their recorded digests", diff.len())));
    }
    println!(
        "backup {name} in {url} verified: {} shards, {} keys in {} slots, {} bytes read, digests match, {:.2} s",
        manifest.shards.len(),
        found.rows(),
        found.to_list().len(),
        bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn restore(args: RestoreArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let (store, url, name) = open_store(&args.store)?;
    let key = key(&args.store)?;
    let manifest = read::manifest(&store, &name).await.map_err(Failure::Start)?;
    let creds = credentials(&args.node)?;
    let addr = format!("{}:{}", args.node.host, args.node.port);
    let routing = Routing::discover(&addr, creds.as_ref()).await.map_err(|e| Failure::Start(format!("{addr}: {e}")))?;
    let nodes = routing.nodes();
    let mut conns = Vec::with_capacity(nodes.len());
    for node in &nodes {
        conns.push(Conn::open(node, creds.as_ref()).await.map_err(Failure::Start)?);
    }
    let total: u64 = manifest.shards.iter().flat_map(|s| &s.slots).map(|s| s.rows).sum();
    let pb = bar(total, "keys");
    let (mut restored, mut failed) = (0u64, 0u64);
    for part in &manifest.shards {
        let shard = read::materialize(&store, part, key.as_ref()).await.map_err(Failure::Bad)?;
        let image = tokio::task::spawn_blocking(move || shard.keyspace.snapshot_now())
            .await
            .map_err(|e| Failure::Bad(e.to_string()))?;
        // Per node: the encoded commands of the batch being built and how many.
        let mut batches: Vec<(Vec<u8>, usize)> = vec![(Vec::new(), 0); nodes.len()];
        for (key, entry) in image.entries() {
            let Some(n) = routing.node_of(key) else {
                failed += 1;
                eprintln!("key {:?}: no node serves its slot", String::from_utf8_lossy(key));
                continue;
            };
            let payload = prism_engine::dump::encode(&entry.value);
            let deadline = entry.expire_at.to_string();
            let (buf, count) = &mut batches[n];
            client::encode(buf, &[b"RESTORE", key, deadline.as_bytes(), &payload, b"REPLACE", b"ABSTTL"]);
            *count += 1;
            if *count >= args.batch as usize {
                let (ok, bad) = flush(&mut conns[n], &nodes[n], &mut batches[n]).await?;
                (restored, failed) = (restored + ok, failed + bad);
                pb.inc(ok + bad);
            }
        }
        for n in 0..nodes.len() {
            let (ok, bad) = flush(&mut conns[n], &nodes[n], &mut batches[n]).await?;
            (restored, failed) = (restored + ok, failed + bad);
            pb.inc(ok + bad);
        }
    }
    pb.finish_and_clear();
    println!(
        "backup {name} from {url} restored into {addr}: {restored} keys restored, {failed} failed, {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        return Err(Failure::Bad(format!("{failed} keys were not restored")));
    }
    Ok(())
}

/// Sends one node's batch and reads its replies: `(restored, failed)`; the first few
/// errors are printed. A broken connection stops the restore.
async fn flush(conn: &mut Conn, node: &str, batch: &mut (Vec<u8>, usize)) -> Result<(u64, u64), Failure> {
    let (buf, count) = std::mem::take(batch);
    if count == 0 {
        return Ok((0, 0));
    }
    conn.send(&buf).await.map_err(|e| Failure::Bad(format!("{node}: {e}")))?;
    let (mut ok, mut bad) = (0, 0);
    for _ in 0..count {
        match conn.reply().await.map_err(|e| Failure::Bad(format!("{node}: {e}")))? {
            Reply::Error(e) => {
                if bad < 5 {
                    eprintln!("{node}: RESTORE failed: {e}");
                }
                bad += 1;
            }
            _ => ok += 1,
        }
    }
    Ok((ok, bad))
}
