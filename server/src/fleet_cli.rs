//! `prism cluster`: lay out a fleet (`init`), run one on this machine (`up`, `down`) and
//! look at one (`status`).
//!
//! `up` writes the topology file, starts one `prism` process per member (each in its own
//! process group, so the terminal's Ctrl-C does not reach them), records their pids and
//! waits until every shard has a leader: then every slot is served. `down` stops the
//! processes `up` recorded (SIGTERM, then SIGKILL after a grace period). `status` asks
//! every node of a topology file for its Raft state, key count and memory.
//!
//! Layout of a fleet directory: `topology.toml`, and per node `node-<id>/` (its data
//! directory), `node-<id>.log` and `node-<id>.pid`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use prism_server::fleet::FleetSpec;

use crate::load::resp::{Conn, Reply};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Write a topology file for a list of node addresses.
    Init(InitArgs),
    /// Start a fleet of local processes and wait until every slot is served.
    Up(UpArgs),
    /// Stop the processes of a fleet started with `up`.
    Down(DirArgs),
    /// Print each shard's slots, leader, replicas, lag, keys and memory.
    Status(StatusArgs),
    /// Move slots to another shard while clients keep reading and writing.
    Reshard(ReshardArgs),
    /// Move slots so that every shard serves an even share.
    Rebalance(RebalanceArgs),
}

#[derive(Args)]
pub struct RebalanceArgs {
    #[arg(long, default_value = "./fleet")]
    dir: PathBuf,
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Seconds to wait for each target shard's moves.
    #[arg(long, default_value_t = 600)]
    wait: u64,
}

#[derive(Args)]
pub struct ReshardArgs {
    /// A fleet directory from `up` (its topology.toml) ...
    #[arg(long, default_value = "./fleet")]
    dir: PathBuf,
    /// ... or a topology file.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// The slots to move: a slot or a range, comma-separated (e.g. 0-99,500).
    #[arg(long, value_delimiter = ',', required = true)]
    slots: Vec<String>,
    /// The shard id that receives them.
    #[arg(long)]
    to: u32,
    /// Seconds to wait for the move to finish.
    #[arg(long, default_value_t = 300)]
    wait: u64,
}

#[derive(Args)]
pub struct InitArgs {
    /// Client addresses of the nodes, comma-separated (host:port); node ids follow the order.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Replicas per shard (each shard has replicas + 1 members).
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// The zone of each node, comma-separated, same order as --nodes: no two members of a
    /// shard are placed in one zone.
    #[arg(long, value_delimiter = ',')]
    zones: Vec<String>,
    /// Where to write the topology file.
    #[arg(long, default_value = "topology.toml")]
    out: PathBuf,
}

#[derive(Args)]
pub struct UpArgs {
    #[arg(long, default_value_t = 3)]
    shards: usize,
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Client port of node 1; node n listens on base-port + n - 1 (peer ports + 10000).
    #[arg(long, default_value_t = 7000)]
    base_port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value = "./fleet")]
    dir: PathBuf,
    /// Zones to spread each shard over, comma-separated (nodes are assigned round-robin).
    #[arg(long, value_delimiter = ',')]
    zones: Vec<String>,
    /// Seconds to wait for every shard to elect a leader.
    #[arg(long, default_value_t = 60)]
    wait: u64,
    /// Extra flags for every node (e.g. --threads 1), after `--`.
    #[arg(last = true)]
    node_args: Vec<String>,
}

#[derive(Args)]
pub struct DirArgs {
    #[arg(long, default_value = "./fleet")]
    dir: PathBuf,
}

#[derive(Args)]
pub struct StatusArgs {
    /// A fleet directory from `up` (its topology.toml) ...
    #[arg(long, default_value = "./fleet")]
    dir: PathBuf,
    /// ... or a topology file.
    #[arg(long)]
    topology: Option<PathBuf>,
}

pub fn main(command: ClusterCommand) -> ExitCode {
    let result = match command {
        ClusterCommand::Init(a) => init(a),
        ClusterCommand::Up(a) => up(a),
        ClusterCommand::Down(a) => down(&a.dir),
        ClusterCommand::Status(a) => {
            let path = a.topology.unwrap_or_else(|| a.dir.join("topology.toml"));
            FleetSpec::load(&path).and_then(|spec| block_on(status(&spec)))
        }
        ClusterCommand::Rebalance(a) => {
            let path = a.topology.clone().unwrap_or_else(|| a.dir.join("topology.toml"));
            FleetSpec::load(&path).and_then(|spec| block_on(crate::reshard_cli::rebalance(&spec, a.wait)))
        }
        ClusterCommand::Reshard(a) => {
            let path = a.topology.clone().unwrap_or_else(|| a.dir.join("topology.toml"));
            FleetSpec::load(&path).and_then(|spec| block_on(crate::reshard_cli::reshard(&spec, &a.slots, a.to, a.wait)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prism cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(f)
}

fn parse_addr(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text.trim().rsplit_once(':').ok_or_else(|| format!("'{text}' is not host:port"))?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("'{text}': bad port"))?;
    if host.is_empty() {
        return Err(format!("'{text}': empty host"));
    }
    Ok((host.to_string(), port))
}

fn init(a: InitArgs) -> Result<(), String> {
    let nodes: Vec<(String, u16)> = a.nodes.iter().map(|n| parse_addr(n)).collect::<Result<_, _>>()?;
    let zones = (!a.zones.is_empty()).then_some(&a.zones[..]);
    let spec = FleetSpec::plan(&nodes, a.replicas, zones)?;
    std::fs::write(&a.out, spec.render()).map_err(|e| format!("cannot write {}: {e}", a.out.display()))?;
    println!("{}: {} shards of {} members, {} nodes", a.out.display(), spec.shards.len(), a.replicas + 1, nodes.len());
    Ok(())
}

fn up(a: UpArgs) -> Result<(), String> {
    if a.shards == 0 {
        return Err("--shards must be at least 1".into());
    }
    let count = a.shards * (a.replicas + 1);
    let last_port = a.base_port as usize + count - 1;
    if last_port + 10000 > u16::MAX as usize {
        return Err(format!("ports {}..{last_port} (+10000 for peers) do not fit under 65536", a.base_port));
    }
    let nodes: Vec<(String, u16)> = (0..count).map(|i| (a.host.clone(), a.base_port + i as u16)).collect();
    let zones: Option<Vec<String>> =
        (!a.zones.is_empty()).then(|| (0..count).map(|i| a.zones[i % a.zones.len()].clone()).collect());
    let spec = FleetSpec::plan(&nodes, a.replicas, zones.as_deref())?;
    std::fs::create_dir_all(&a.dir).map_err(|e| format!("cannot create {}: {e}", a.dir.display()))?;
    let topology = a.dir.join("topology.toml");
    if topology.exists() {
        let old = FleetSpec::load(&topology)?;
        if old != spec {
            return Err(format!(
                "{} describes another fleet; run `prism cluster down --dir {}` and remove the directory first",
                topology.display(),
                a.dir.display()
            ));
        }
    }
    std::fs::write(&topology, spec.render()).map_err(|e| format!("cannot write {}: {e}", topology.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the prism binary: {e}"))?;
    // The nodes share one machine, so one directory is a cold store every member of a
    // shard reaches (a replicated shard tiers only with such a store: server/src/tier.rs).
    let shared_cold = (!a.node_args.iter().any(|f| f.starts_with("--cold-store"))).then(|| a.dir.join("cold"));
    let mut children = Vec::new();
    for (_, m) in spec.members() {
        let pid_file = a.dir.join(format!("node-{}.pid", m.id));
        if let Some(pid) = running_pid(&pid_file) {
            println!("node {} already running (pid {pid})", m.id);
            continue;
        }
        let data = a.dir.join(format!("node-{}", m.id));
        let log_path = a.dir.join(format!("node-{}.log", m.id));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        // A host given as a name (not an IP) is announced as is; the node listens on
        // every interface then.
        let bind = if m.host.parse::<std::net::IpAddr>().is_ok() { m.host.as_str() } else { "0.0.0.0" };
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("serve")
            .args(["--bind", bind, "--port", &m.port.to_string(), "--node-id", &m.id.to_string()])
            .arg("--cluster-topology")
            .arg(&topology)
            .arg("--data-dir")
            .arg(&data)
            .args(shared_cold.iter().flat_map(|d| [std::ffi::OsStr::new("--cold-store"), d.as_os_str()]))
            .args(&a.node_args)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(|e| format!("cannot start node {}: {e}", m.id))?;
        std::fs::write(&pid_file, format!("{}\n", child.id())).map_err(|e| e.to_string())?;
        children.push((m.id, child, log_path));
    }
    println!("started {count} nodes ({} shards x {} members) in {}", a.shards, a.replicas + 1, a.dir.display());
    let deadline = Instant::now() + Duration::from_secs(a.wait);
    block_on(async {
        loop {
            // A node that exited (a bad flag, a port in use) will not come: say which.
            for (id, child, log) in &mut children {
                if let Ok(Some(status)) = child.try_wait() {
                    let tail = std::fs::read_to_string(&*log).unwrap_or_default();
                    let last: Vec<&str> = tail.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
                    return Err(format!("node {id} exited ({status}); {}:\n{}", log.display(), last.join("\n")));
                }
            }
            let rows = survey(&spec).await;
            let led = rows.values().filter(|r| r.leader.is_some()).count();
            if led == spec.shards.len() {
                println!("every slot is served: {led} shards have a leader");
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{led} of {} shards have a leader after {} s; see the node-*.log files in {}",
                    spec.shards.len(),
                    a.wait,
                    a.dir.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })?;
    block_on(status(&spec))
}

/// The pid in `path` if that process is still alive.
fn running_pid(path: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    alive(pid).then_some(pid)
}

fn alive(pid: i32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = status.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0 && state != Some('Z')
}

fn down(dir: &Path) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pid") {
            if let Some(pid) = running_pid(&path) {
                // SAFETY: plain kill(2); SIGTERM makes the node shut down cleanly.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                pids.push((pid, path));
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|(p, _)| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (pid, path) in &pids {
        if alive(*pid) {
            eprintln!("pid {pid} did not stop within 10 s: SIGKILL");
            // SAFETY: plain kill(2).
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_file(path);
    }
    println!("stopped {} nodes", pids.len());
    Ok(())
}

/// What one shard looks like from its members.
#[derive(Default)]
struct ShardRow {
    leader: Option<u64>,
    replicas: Vec<u64>,
    lag: u64,
    keys: u64,
    memory: String,
    down: Vec<u64>,
}

/// INFO `section` of one node as key -> value.
async fn info(addr: &str, section: &str) -> Option<BTreeMap<String, String>> {
    let ask = async {
        let mut conn = Conn::connect(addr).await.ok()?;
        match conn.call(&[b"INFO", section.as_bytes()]).await.ok()? {
            Reply::Bulk(text) => Some(
                String::from_utf8_lossy(&text)
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                    .collect(),
            ),
            _ => None,
        }
    };
    tokio::time::timeout(Duration::from_secs(2), ask).await.ok().flatten()
}

async fn survey(spec: &FleetSpec) -> BTreeMap<u32, ShardRow> {
    let mut rows = BTreeMap::new();
    for shard in &spec.shards {
        let mut row = ShardRow::default();
        let mut lags: Vec<(u64, u64)> = Vec::new();
        for m in &shard.members {
            let addr = format!("{}:{}", m.host, m.port);
            let Some(raft) = info(&addr, "raft").await else {
                row.down.push(m.id);
                continue;
            };
            if raft.get("role").map(String::as_str) == Some("leader") {
                row.leader = Some(m.id);
                lags = raft
                    .iter()
                    .filter_map(|(k, v)| Some((k.strip_prefix("replica_")?.parse::<u64>().ok()?, lag_of(v)?)))
                    .collect();
                if let Some(ks) = info(&addr, "keyspace").await {
                    row.keys = ks
                        .get("db0")
                        .and_then(|v| v.split(',').next()?.strip_prefix("keys=")?.parse().ok())
                        .unwrap_or(0);
                }
                if let Some(mem) = info(&addr, "memory").await {
                    row.memory = mem.get("used_memory_human").cloned().unwrap_or_default();
                }
            } else {
                row.replicas.push(m.id);
            }
        }
        // The largest lag of a live replica (a dead member's grows without meaning).
        row.lag = lags.iter().filter(|(id, _)| !row.down.contains(id)).map(|(_, l)| *l).max().unwrap_or(0);
        rows.insert(shard.id, row);
    }
    rows
}

fn lag_of(v: &str) -> Option<u64> {
    v.split(',').find_map(|p| p.strip_prefix("lag="))?.parse().ok()
}

/// A shard serving no slots.
static NONE: Vec<(u16, u16)> = Vec::new();

async fn status(spec: &FleetSpec) -> Result<(), String> {
    let rows = survey(spec).await;
    println!(
        "{:<6} {:<14} {:<8} {:<14} {:>6} {:>10} {:>10}  down",
        "shard", "slots", "leader", "replicas", "lag", "keys", "memory"
    );
    let ids = |v: &[u64]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
        }
    };
    // The slots served now (they move with resharding), else the file's.
    let live = crate::reshard_cli::live_slots(spec).await;
    for shard in &spec.shards {
        let row = &rows[&shard.id];
        let ranges = live.as_ref().map_or(&shard.slots, |l| l.get(&shard.id).unwrap_or(&NONE));
        let slots: Vec<String> =
            ranges.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        let slots = if slots.is_empty() { "-".to_string() } else { slots.join(",") };
        println!(
            "{:<6} {:<14} {:<8} {:<14} {:>6} {:>10} {:>10}  {}",
            shard.id,
            slots,
            row.leader.map_or("none".to_string(), |l| l.to_string()),
            ids(&row.replicas),
            row.lag,
            row.keys,
            if row.memory.is_empty() { "-" } else { &row.memory },
            ids(&row.down),
        );
    }
    // The metadata group, as its voters see it (the first that answers), after a blank
    // line: the table above stays one row per shard for scripts.
    let voters = spec.metadata_voters();
    let mut meta = None;
    for (_, m) in spec.members().filter(|(_, m)| voters.contains(&m.id)) {
        if let Some(i) = info(&format!("{}:{}", m.host, m.port), "metadata").await {
            meta = Some(i);
            break;
        }
    }
    match meta {
        Some(m) => {
            let get = |k: &str| m.get(k).map_or("-", String::as_str);
            println!(
                "\nmetadata: voters {} leader {} term {} learners {} config epoch {} claims {}",
                ids(&voters),
                get("meta_leader"),
                get("meta_term"),
                get("meta_learners"),
                get("catalog_epoch"),
                get("catalog_claims"),
            );
        }
        None => println!("\nmetadata: voters {} (none answered)", ids(&voters)),
    }
    Ok(())
}
