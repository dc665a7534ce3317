//! The `prism` binary: parses the command line and config file, then runs a node until
//! SIGINT or SIGTERM; `prism load` bulk-loads CSV or Parquet files into a running node (load.rs);
//! `prism cluster` lays out, starts, stops and inspects a fleet (fleet_cli.rs).

mod backup_cli;
mod fleet_cli;
mod load;
mod raft_cli;
mod reshard_cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use prism_engine::clock::SystemClock;
use prism_server::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "prism",
    version,
    about = "Prism: a graph engine that speaks the Redis protocol.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

// Parsed once at startup: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a node (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Bulk-load vertices and edges from CSV or Parquet files into a running node or cluster.
    Load(load::LoadArgs),
    /// Lay out, start, stop and inspect a fleet (topology files and local processes).
    #[command(subcommand)]
    Cluster(fleet_cli::ClusterCommand),
    /// Create, verify and restore backups of a running node or cluster.
    #[command(subcommand)]
    Backup(backup_cli::BackupCommand),
    /// Inspect a stopped node's Raft groups, or make it the only voter of a group that
    /// lost its majority for good.
    #[command(subcommand)]
    Raft(raft_cli::RaftCommand),
}

/// Every flag is also a key of the config file (`--config`); flags win over the file.
#[derive(Args, Default)]
struct ServeArgs {
    /// TOML config file with the same keys as these flags.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on for clients.
    #[arg(long)]
    bind: Option<String>,
    /// Client port.
    #[arg(long)]
    port: Option<String>,
    /// Directory for the node's state.
    #[arg(long)]
    data_dir: Option<String>,
    /// Most client connections at once.
    #[arg(long)]
    maxclients: Option<String>,
    /// Memory limit for data (e.g. 64mb); 0 means none.
    #[arg(long)]
    maxmemory: Option<String>,
    /// Object store for cold partitions: a directory or s3://bucket[/prefix]
    /// (default <data-dir>/cold; a replicated shard needs one every member reaches).
    #[arg(long)]
    cold_store: Option<String>,
    /// TOML file of S3 options (keys, endpoint, region) for cold-store.
    #[arg(long)]
    cold_store_credentials: Option<String>,
    /// Seconds a cold object stays unreferenced before the GC deletes it (default 3600).
    #[arg(long)]
    cold_gc_retention: Option<String>,
    /// File holding the password clients must AUTH with.
    #[arg(long)]
    requirepass_file: Option<String>,
    /// Largest single argument a client may send (e.g. 512mb).
    #[arg(long)]
    proto_max_bulk_len: Option<String>,
    /// "<class> <hard> <soft> <seconds>" for classes normal, replica, pubsub.
    #[arg(long)]
    client_output_buffer_limit: Option<String>,
    /// Address announced to clients in cluster replies.
    #[arg(long)]
    announce_ip: Option<String>,
    /// Close clients idle this many seconds (0: never).
    #[arg(long)]
    timeout: Option<String>,
    /// debug, verbose, notice or warning.
    #[arg(long)]
    loglevel: Option<String>,
    /// Background task frequency per second.
    #[arg(long)]
    hz: Option<String>,
    /// The client port's accept queue length (default 511, as Redis).
    #[arg(long)]
    tcp_backlog: Option<String>,
    /// Worker threads serving connections (0: one per core).
    #[arg(long)]
    threads: Option<String>,
    /// This node's Raft id in its shard group (non-zero, unique in the fleet).
    #[arg(long)]
    node_id: Option<String>,
    /// The shard group's members: "<id>@<host>:<port>[@<peer port>],..." (this node
    /// included; peer port defaults to port + 10000). Unset: a standalone node.
    #[arg(long)]
    raft_group: Option<String>,
    /// The fleet's topology file (from `prism cluster init`): the node serves the shard
    /// its node-id is a member of. Instead of raft-group.
    #[arg(long)]
    cluster_topology: Option<String>,
    /// Raft leader heartbeat in milliseconds (elections after 4x-8x of it).
    #[arg(long)]
    raft_heartbeat_ms: Option<String>,
    /// Raft log durability: always (fsync before acknowledging, the default) or everysec
    /// (may lose up to a second of acknowledged writes on power loss).
    #[arg(long)]
    appendfsync: Option<String>,
    /// Log entries between snapshots of the shard group (default 100000).
    #[arg(long)]
    raft_snapshot_entries: Option<String>,
    /// Admin HTTP port (/metrics, /healthz, /readyz) on the bind address: a port, 0 (off),
    /// auto (client port + 20000, the default) or any (a free port).
    #[arg(long)]
    admin_port: Option<String>,
    /// File holding the cluster secret peers authenticate each other with.
    #[arg(long)]
    cluster_secret_file: Option<String>,
    /// yes (default): without a password, refuse non-loopback clients when bound to a
    /// non-loopback address.
    #[arg(long)]
    protected_mode: Option<String>,
    /// ACL file with the users (ACL LOAD / ACL SAVE).
    #[arg(long)]
    aclfile: Option<String>,
    /// Port for TLS clients (0: none).
    #[arg(long)]
    tls_port: Option<String>,
    /// PEM certificate chain of the TLS port.
    #[arg(long)]
    tls_cert_file: Option<String>,
    /// PEM private key of the TLS port.
    #[arg(long)]
    tls_key_file: Option<String>,
    /// PEM CA certificates that client certificates must chain to.
    #[arg(long)]
    tls_ca_cert_file: Option<String>,
    /// yes (the default; needs tls-ca-cert-file), optional or no: require client
    /// certificates signed by the CA.
    #[arg(long)]
    tls_auth_clients: Option<String>,
    /// yes: the peer port speaks mutual TLS (needs the cert, key and CA files).
    #[arg(long)]
    tls_cluster: Option<String>,
    /// TEST ONLY: serve leader reads without read-index (breaks linearizability).
    #[arg(long, hide = true)]
    unsafe_stale_reads: Option<String>,
}

impl ServeArgs {
    fn into_config(self) -> Result<Config, String> {
        let mut config = Config::default();
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            config.apply_toml(&text, &path.display().to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
            config.config_file = Some(path.clone());
        }
        let flags = [
            ("bind", self.bind),
            ("port", self.port),
            ("data-dir", self.data_dir),
            ("maxclients", self.maxclients),
            ("maxmemory", self.maxmemory),
            ("cold-store", self.cold_store),
            ("cold-store-credentials", self.cold_store_credentials),
            ("cold-gc-retention", self.cold_gc_retention),
            ("requirepass-file", self.requirepass_file),
            ("proto-max-bulk-len", self.proto_max_bulk_len),
            ("client-output-buffer-limit", self.client_output_buffer_limit),
            ("announce-ip", self.announce_ip),
            ("timeout", self.timeout),
            ("loglevel", self.loglevel),
            ("hz", self.hz),
            ("tcp-backlog", self.tcp_backlog),
            ("threads", self.threads),
            ("node-id", self.node_id),
            ("raft-group", self.raft_group),
            ("cluster-topology", self.cluster_topology),
            ("raft-heartbeat-ms", self.raft_heartbeat_ms),
            ("unsafe-stale-reads", self.unsafe_stale_reads),
            ("appendfsync", self.appendfsync),
            ("raft-snapshot-entries", self.raft_snapshot_entries),
            ("admin-port", self.admin_port),
            ("cluster-secret-file", self.cluster_secret_file),
            ("protected-mode", self.protected_mode),
            ("aclfile", self.aclfile),
            ("tls-port", self.tls_port),
            ("tls-cert-file", self.tls_cert_file),
            ("tls-key-file", self.tls_key_file),
            ("tls-ca-cert-file", self.tls_ca_cert_file),
            ("tls-auth-clients", self.tls_auth_clients),
            ("tls-cluster", self.tls_cluster),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                config.set(key, &v).map_err(|e| format!("--{key}: {e}"))?;
            }
        }
        // As Redis: port 0 turns the plain-text port off, which leaves TLS only.
        if config.port == 0 && config.tls_port == 0 {
            return Err("--port: port 0 is not allowed without a tls-port (port 0 and a tls-port: TLS only)".into());
        }
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(a)) => a,
        Some(Command::Load(a)) => return load::main(a),
        Some(Command::Cluster(c)) => return fleet_cli::main(c),
        Some(Command::Backup(c)) => return backup_cli::main(c),
        Some(Command::Raft(c)) => return raft_cli::main(c),
        None => cli.serve,
    };
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("prism: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = match config.loglevel.as_str() {
        "debug" => "debug",
        "verbose" => "info",
        "notice" => "info",
        "warning" => "warn",
        _ => "off",
    };
    // Colour only on a terminal: a log file or journald should not hold escape codes (and
    // `grep request_id=...` should find what it looks for).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()))
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.threads > 0 {
        builder.worker_threads(config.threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("prism: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Registered before the node serves: a signal that arrives while it starts waits
        // for `stop_requested` instead of killing the process with the default action.
        let mut signals = match StopSignals::register() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("prism: cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let server = match prism_server::start(config, Arc::new(SystemClock)).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("prism: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!("prism: serving on {} (pid {})", server.addr, std::process::id());
        tokio::select! {
            _ = signals.stop_requested() => {}
            _ = server.node.shutdown_requested.notified() => {}
        }
        eprintln!("prism: shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// SIGINT and SIGTERM, both of which stop the node cleanly.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    #[cfg(unix)]
    fn register() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    #[cfg(not(unix))]
    fn register() -> std::io::Result<StopSignals> {
        Ok(StopSignals {})
    }

    async fn stop_requested(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
