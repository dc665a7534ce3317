//! Node configuration: defaults, the TOML file, command-line flags and `CONFIG SET` all
//! go through one function, [`Config::set`], so a key means the same thing everywhere and
//! every bad key or value is reported the same way, naming the key.
//!
//! Secrets are never configuration values: `requirepass-file` names a file whose content
//! is the password (invariant 7).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown config key '{0}'")]
    UnknownKey(String),
    #[error("invalid value for '{key}': {why}")]
    BadValue { key: String, why: String },
    #[error("config key '{0}' cannot be changed while the node runs")]
    Immutable(String),
    #[error("cannot read config file {path}: {why}")]
    File { path: String, why: String },
}

fn bad(key: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::BadValue { key: key.into(), why: why.into() }
}

/// One class of `client-output-buffer-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputLimit {
    /// Disconnect as soon as pending output exceeds this many bytes (0: no limit).
    pub hard: u64,
    /// Disconnect when pending output stays above this many bytes ...
    pub soft: u64,
    /// ... for this many seconds.
    pub soft_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    pub normal: OutputLimit,
    pub replica: OutputLimit,
    pub pubsub: OutputLimit,
}

impl Default for OutputLimits {
    fn default() -> Self {
        // Redis's defaults.
        OutputLimits {
            normal: OutputLimit::default(),
            replica: OutputLimit { hard: 256 << 20, soft: 64 << 20, soft_seconds: 60 },
            pubsub: OutputLimit { hard: 32 << 20, soft: 8 << 20, soft_seconds: 60 },
        }
    }
}

impl fmt::Display for OutputLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = |l: &OutputLimit| format!("{} {} {}", l.hard, l.soft, l.soft_seconds);
        write!(f, "normal {} slave {} pubsub {}", c(&self.normal), c(&self.replica), c(&self.pubsub))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub maxclients: usize,
    /// Bytes; 0 means no limit.
    pub maxmemory: u64,
    pub proto_max_bulk_len: u64,
    pub client_output_buffer_limit: OutputLimits,
    pub requirepass_file: Option<PathBuf>,
    /// The address reported to clients in CLUSTER SLOTS/NODES and redirections; by
    /// default the bind address, or the address a client connected to when bound to a
    /// wildcard.
    pub announce_ip: Option<String>,
    /// Close client connections idle for this many seconds (0: never).
    pub timeout: u64,
    pub loglevel: String,
    /// Background task frequency (active expiry), per second.
    pub hz: u32,
    /// The client port's accept queue (Redis's `tcp-backlog`; the kernel caps it at
    /// `net.core.somaxconn`). A burst of connects beyond it waits for a SYN retransmit (1 s).
    pub tcp_backlog: u32,
    /// The file the config was read from, if any.
    pub config_file: Option<PathBuf>,
    /// Commands that take at least this many microseconds go to the slow log; negative
    /// disables it, 0 logs every command (Redis's `slowlog-log-slower-than`).
    pub slowlog_log_slower_than: i64,
    /// Most entries the slow log keeps.
    pub slowlog_max_len: u64,
    /// Commands that take at least this many milliseconds are latency-monitor samples;
    /// 0 turns the monitor off.
    pub latency_monitor_threshold: u64,
    /// Worker threads serving connections; 0 means one per core.
    pub threads: usize,
    /// This node's Raft id (`node-id`), unique in the fleet; 0 when the node runs alone.
    pub node_id: u64,
    /// The members of this node's shard group (`raft-group`); empty: a standalone node.
    pub raft_group: Vec<GroupMember>,
    /// The fleet's topology file (`cluster-topology`, written by `prism cluster init`):
    /// this node serves the slots of the shard its `node-id` is a member of.
    pub cluster_topology: Option<PathBuf>,
    /// Raft leader heartbeat, milliseconds; elections time out after 4x to 8x of it.
    pub raft_heartbeat_ms: u64,
    /// Where cold partitions go (`cold-store`: a directory, `file://` or `s3://` URL);
    /// `None`: `<data-dir>/cold`.
    pub cold_store: Option<String>,
    /// TOML file of S3 options for an `s3://` cold store (`cold-store-credentials`).
    pub cold_store_credentials: Option<PathBuf>,
    /// Spilling starts above this percent of `maxmemory` (`tier-high-watermark`)...
    pub tier_high_watermark: u64,
    /// ... and stops below this one (`tier-low-watermark`).
    pub tier_low_watermark: u64,
    /// Seconds a cold object must be seen unreferenced before the GC deletes it
    /// (`cold-gc-retention`; cold_gc.rs).
    pub cold_gc_retention: u64,
    /// TEST ONLY: a node that believes it leads answers reads from local state without
    /// confirming leadership (read-index). Breaks linearizability on purpose, so the
    /// fault tests can show that their checker catches stale reads.
    pub unsafe_stale_reads: bool,
    /// `appendfsync`: `always` (default) syncs the Raft log before acknowledging;
    /// `everysec` syncs once a second and may lose up to a second of acknowledged writes
    /// on power loss (an explicit, documented opt-out).
    pub appendfsync_everysec: bool,
    /// Log entries between snapshots of a shard group (`raft-snapshot-entries`); a tenth
    /// of it stays in the log after a snapshot for members that lag a little.
    pub raft_snapshot_entries: u64,
    /// `admin-port`: the HTTP port of `/metrics`, `/healthz` and `/readyz` (admin.rs).
    pub admin_port: AdminPort,
    /// `cluster-secret-file`: the file holding the secret peers prove to each other in
    /// the peer handshake (docs/security.md).
    pub cluster_secret_file: Option<PathBuf>,
    /// `protected-mode` (default on): with no password for the default user, a node
    /// bound to a non-loopback address refuses clients from non-loopback addresses.
    pub protected_mode: bool,
    /// `aclfile`: the users, loaded at start and by ACL LOAD, written by ACL SAVE.
    pub aclfile: Option<PathBuf>,
    /// `tls-port`: a second client port speaking TLS (0: none).
    pub tls_port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates client certificates are checked against (`tls-auth-clients`).
    pub tls_ca_cert_file: Option<PathBuf>,
    /// `tls-auth-clients`: `yes` requires a client certificate signed by the CA, `optional`
    /// checks one if presented, `no` asks for none.
    pub tls_auth_clients: TlsAuthClients,
    /// `tls-cluster`: the peer port speaks mutual TLS (node certificate, checked against
    /// `tls-ca-cert-file`), under the cluster-secret handshake (tls.rs).
    pub tls_cluster: bool,
}

/// `tls-auth-clients`, as Redis spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsAuthClients {
    No,
    Optional,
    Yes,
}

impl fmt::Display for TlsAuthClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsAuthClients::No => "no",
            TlsAuthClients::Optional => "optional",
            TlsAuthClients::Yes => "yes",
        })
    }
}

/// Where the admin HTTP server listens (on `bind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminPort {
    /// `auto` (the default): the client port + [`ADMIN_PORT_OFFSET`], so every node of a
    /// fleet has a predictable admin port (6379 -> 26379); off when that is over 65535 or
    /// the client port is chosen by the OS. A busy auto port is a warning, not a failure.
    Auto,
    /// `0`: no admin server.
    Off,
    /// `any`: a free port the OS picks; CONFIG GET admin-port tells which (throwaway nodes
    /// and tests).
    Any,
    /// A fixed port; failing to listen on it stops the node from starting.
    Port(u16),
}

/// `admin-port auto`: client port + 20000 (the peer port is + 10000).
pub const ADMIN_PORT_OFFSET: u16 = 20000;

impl fmt::Display for AdminPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminPort::Auto => f.write_str("auto"),
            AdminPort::Off => f.write_str("0"),
            AdminPort::Any => f.write_str("any"),
            AdminPort::Port(p) => write!(f, "{p}"),
        }
    }
}

/// One member of a shard group as configured: `<id>@<host>:<port>[@<peer port>]`, the
/// peer port defaulting to the client port + 10000 (Redis's cluster bus convention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub id: u64,
    pub host: String,
    pub port: u16,
    pub peer_port: u16,
}

impl GroupMember {
    pub fn client_addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.host, self.peer_port)
    }

    /// The member as Raft's membership stores it (both addresses).
    pub fn peer_node(&self) -> prism_replication::PeerNode {
        prism_replication::PeerNode::new(self.peer_addr(), self.client_addr())
    }
}

impl fmt::Display for GroupMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}@{}", self.id, self.host, self.port, self.peer_port)
    }
}

/// Parses `raft-group`: comma-separated members, ids unique and non-zero.
pub fn parse_group(key: &str, value: &str) -> Result<Vec<GroupMember>, ConfigError> {
    let mut members: Vec<GroupMember> = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let form = || bad(key, format!("'{part}' is not <id>@<host>:<port>[@<peer port>]"));
        let (id, rest) = part.split_once('@').ok_or_else(form)?;
        let (addr, peer) = match rest.rsplit_once('@') {
            Some((a, p)) => (a, Some(p)),
            None => (rest, None),
        };
        let (host, port) = addr.rsplit_once(':').ok_or_else(form)?;
        let id: u64 = id.parse().map_err(|_| form())?;
        let port: u16 = port.parse().map_err(|_| form())?;
        let peer_port = match peer {
            Some(p) => p.parse().map_err(|_| form())?,
            None => port.checked_add(10000).ok_or_else(|| bad(key, format!("'{part}': port + 10000 is over 65535")))?,
        };
        if id == 0 || host.is_empty() || port == 0 || peer_port == 0 {
            return Err(form());
        }
        if members.iter().any(|m| m.id == id) {
            return Err(bad(key, format!("member id {id} appears twice")));
        }
        members.push(GroupMember { id, host: host.to_string(), port, peer_port });
    }
    Ok(members)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 6379,
            data_dir: PathBuf::from("./prism-data"),
            maxclients: 10_000,
            maxmemory: 0,
            proto_max_bulk_len: 512 << 20,
            client_output_buffer_limit: OutputLimits::default(),
            requirepass_file: None,
            announce_ip: None,
            timeout: 0,
            loglevel: "notice".into(),
            hz: 10,
            tcp_backlog: 511,
            config_file: None,
            threads: 0,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            latency_monitor_threshold: 0,
            node_id: 0,
            raft_group: Vec::new(),
            cluster_topology: None,
            raft_heartbeat_ms: 100,
            cold_store: None,
            cold_store_credentials: None,
            tier_high_watermark: 90,
            tier_low_watermark: 75,
            cold_gc_retention: 3600,
            unsafe_stale_reads: false,
            appendfsync_everysec: false,
            raft_snapshot_entries: 100_000,
            admin_port: AdminPort::Auto,
            cluster_secret_file: None,
            protected_mode: true,
            aclfile: None,
            tls_port: 0,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_cert_file: None,
            tls_auth_clients: TlsAuthClients::Yes,
            tls_cluster: false,
        }
    }
}

/// Every key, with whether it may change at run time.
pub const KEYS: &[(&str, bool)] = &[
    ("bind", false),
    ("port", false),
    ("data-dir", false),
    ("maxclients", true),
    ("maxmemory", true),
    ("proto-max-bulk-len", true),
    ("client-output-buffer-limit", true),
    ("requirepass-file", false),
    ("announce-ip", false),
    ("timeout", true),
    ("loglevel", true),
    ("hz", true),
    ("tcp-backlog", false),
    ("threads", false),
    ("slowlog-log-slower-than", true),
    ("slowlog-max-len", true),
    ("latency-monitor-threshold", true),
    ("node-id", false),
    ("raft-group", false),
    ("cluster-topology", false),
    ("raft-heartbeat-ms", false),
    ("cold-store", false),
    ("cold-store-credentials", false),
    ("tier-high-watermark", true),
    ("tier-low-watermark", true),
    ("cold-gc-retention", true),
    ("unsafe-stale-reads", false),
    ("appendfsync", false),
    ("raft-snapshot-entries", false),
    ("admin-port", false),
    ("cluster-secret-file", false),
    ("protected-mode", true),
    ("aclfile", false),
    ("tls-port", false),
    ("tls-cert-file", false),
    ("tls-key-file", false),
    ("tls-ca-cert-file", false),
    ("tls-auth-clients", false),
    ("tls-cluster", false),
];

/// Read-only values some Redis tools ask for with CONFIG GET.
pub const COMPAT: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "no"),
    ("databases", "1"),
    ("cluster-enabled", "yes"),
    ("maxmemory-policy", "noeviction"),
    // The thresholds OBJECT ENCODING reports encodings by (Redis 7.2's defaults).
    ("hash-max-listpack-entries", "512"),
    ("hash-max-listpack-value", "64"),
    ("set-max-intset-entries", "512"),
    ("set-max-listpack-entries", "128"),
    ("set-max-listpack-value", "64"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-listpack-value", "64"),
    ("list-max-listpack-size", "-2"),
];

impl Config {
    /// Sets one key from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let key_lc = key.to_ascii_lowercase();
        let k = key_lc.as_str();
        match k {
            "bind" => self.bind = value.parse().map_err(|_| bad(k, format!("'{value}' is not an IP address")))?,
            "port" => {
                self.port = value.parse().map_err(|_| bad(k, format!("'{value}' is not a port number (0-65535)")))?;
            }
            "data-dir" | "dir" => {
                if value.is_empty() {
                    return Err(bad(k, "empty path"));
                }
                self.data_dir = PathBuf::from(value);
            }
            "maxclients" => {
                self.maxclients = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number")))?;
                if self.maxclients == 0 {
                    return Err(bad(k, "must be at least 1"));
                }
            }
            "maxmemory" => self.maxmemory = parse_memory(k, value)?,
            "proto-max-bulk-len" => {
                let v = parse_memory(k, value)?;
                if v < 1024 * 1024 {
                    return Err(bad(k, "must be at least 1mb"));
                }
                self.proto_max_bulk_len = v;
            }
            "client-output-buffer-limit" => {
                self.client_output_buffer_limit = parse_output_limits(k, value, self.client_output_buffer_limit)?
            }
            "requirepass-file" => self.requirepass_file = (!value.is_empty()).then(|| PathBuf::from(value)),
            "announce-ip" => self.announce_ip = (!value.is_empty()).then(|| value.to_string()),
            "timeout" => {
                self.timeout = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number of seconds")))?
            }
            "loglevel" => {
                if !["debug", "verbose", "notice", "warning", "nothing"].contains(&value) {
                    return Err(bad(k, "expected one of debug, verbose, notice, warning, nothing"));
                }
                self.loglevel = value.to_string();
            }
            "hz" => {
                let hz: u32 = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number")))?;
                if !(1..=500).contains(&hz) {
                    return Err(bad(k, "must be between 1 and 500"));
                }
                self.hz = hz;
            }
            "tcp-backlog" => {
                let n: u32 = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number")))?;
                if !(1..=65_535).contains(&n) {
                    return Err(bad(k, "must be between 1 and 65535"));
                }
                self.tcp_backlog = n;
            }
            "slowlog-log-slower-than" => {
                self.slowlog_log_slower_than =
                    value.parse().map_err(|_| bad(k, format!("'{value}' is not a number of microseconds")))?
            }
            "slowlog-max-len" => {
                self.slowlog_max_len = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number")))?
            }
            "latency-monitor-threshold" => {
                self.latency_monitor_threshold =
                    value.parse().map_err(|_| bad(k, format!("'{value}' is not a number of milliseconds")))?
            }
            "threads" => {
                self.threads = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number")))?;
                if self.threads > 1024 {
                    return Err(bad(k, "at most 1024"));
                }
            }
            "node-id" => self.node_id = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number")))?,
            "raft-group" => self.raft_group = parse_group(k, value)?,
            "cluster-topology" => {
                self.cluster_topology = (!value.is_empty()).then(|| PathBuf::from(value));
            }
            "cold-store" => self.cold_store = Some(value.to_string()).filter(|v| !v.is_empty()),
            "cold-store-credentials" => {
                self.cold_store_credentials = Some(PathBuf::from(value)).filter(|_| !value.is_empty())
            }
            "tier-high-watermark" | "tier-low-watermark" => {
                let v: u64 = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number")))?;
                if !(1..=100).contains(&v) {
                    return Err(bad(k, "must be a percent of maxmemory (1-100)"));
                }
                if k == "tier-high-watermark" {
                    self.tier_high_watermark = v;
                } else {
                    self.tier_low_watermark = v;
                }
            }
            "cold-gc-retention" => {
                self.cold_gc_retention = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number")))?;
                if !(1..=10 * 365 * 86_400).contains(&self.cold_gc_retention) {
                    return Err(bad(k, "seconds, between 1 and 315360000"));
                }
            }
            "raft-heartbeat-ms" => {
                self.raft_heartbeat_ms = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number")))?;
                if !(10..=10_000).contains(&self.raft_heartbeat_ms) {
                    return Err(bad(k, "between 10 and 10000"));
                }
            }
            "raft-snapshot-entries" => {
                self.raft_snapshot_entries = value.parse().map_err(|_| bad(k, format!("'{value}' is not a number")))?;
                if self.raft_snapshot_entries < 10 {
                    return Err(bad(k, "at least 10"));
                }
            }
            "appendfsync" => {
                self.appendfsync_everysec = match value {
                    "always" => false,
                    "everysec" => true,
                    _ => return Err(bad(k, format!("'{value}' is not always or everysec"))),
                }
            }
            "admin-port" => {
                self.admin_port =
                    match value {
                        "auto" => AdminPort::Auto,
                        "any" => AdminPort::Any,
                        "0" | "no" | "off" => AdminPort::Off,
                        _ => {
                            AdminPort::Port(value.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                                bad(k, format!("'{value}' is not a port number, 0 (off), auto or any"))
                            })?)
                        }
                    }
            }
            "cluster-secret-file" => self.cluster_secret_file = (!value.is_empty()).then(|| PathBuf::from(value)),
            "protected-mode" => self.protected_mode = yes_no(k, value)?,
            "aclfile" => self.aclfile = (!value.is_empty()).then(|| PathBuf::from(value)),
            "tls-port" => {
                self.tls_port = value.parse().map_err(|_| bad(k, format!("'{value}' is not a port number")))?
            }
            "tls-cert-file" => self.tls_cert_file = (!value.is_empty()).then(|| PathBuf::from(value)),
            "tls-key-file" => self.tls_key_file = (!value.is_empty()).then(|| PathBuf::from(value)),
            "tls-ca-cert-file" => self.tls_ca_cert_file = (!value.is_empty()).then(|| PathBuf::from(value)),
            "tls-auth-clients" => {
                self.tls_auth_clients = match value {
                    "yes" => TlsAuthClients::Yes,
                    "no" => TlsAuthClients::No,
                    "optional" => TlsAuthClients::Optional,
                    _ => return Err(bad(k, format!("'{value}' is not yes, no or optional"))),
                }
            }
            "tls-cluster" => self.tls_cluster = yes_no(k, value)?,
            "unsafe-stale-reads" => {
                self.unsafe_stale_reads = match value {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(bad(k, format!("'{value}' is not yes or no"))),
                }
            }
            _ => return Err(ConfigError::UnknownKey(key.to_string())),
        }
        Ok(())
    }

    /// The text form of a key, as CONFIG GET shows it.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "bind" => self.bind.to_string(),
            "port" => self.port.to_string(),
            "data-dir" => self.data_dir.display().to_string(),
            "maxclients" => self.maxclients.to_string(),
            "maxmemory" => self.maxmemory.to_string(),
            "proto-max-bulk-len" => self.proto_max_bulk_len.to_string(),
            "client-output-buffer-limit" => self.client_output_buffer_limit.to_string(),
            "requirepass-file" => self.requirepass_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "announce-ip" => self.announce_ip.clone().unwrap_or_default(),
            "timeout" => self.timeout.to_string(),
            "loglevel" => self.loglevel.clone(),
            "hz" => self.hz.to_string(),
            "tcp-backlog" => self.tcp_backlog.to_string(),
            "threads" => self.threads.to_string(),
            "slowlog-log-slower-than" => self.slowlog_log_slower_than.to_string(),
            "slowlog-max-len" => self.slowlog_max_len.to_string(),
            "latency-monitor-threshold" => self.latency_monitor_threshold.to_string(),
            "node-id" => self.node_id.to_string(),
            "raft-group" => self.raft_group.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(","),
            "cluster-topology" => self.cluster_topology.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "raft-heartbeat-ms" => self.raft_heartbeat_ms.to_string(),
            "cold-store" => self.cold_store.clone().unwrap_or_default(),
            "cold-store-credentials" => {
                self.cold_store_credentials.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
            }
            "tier-high-watermark" => self.tier_high_watermark.to_string(),
            "tier-low-watermark" => self.tier_low_watermark.to_string(),
            "cold-gc-retention" => self.cold_gc_retention.to_string(),
            "unsafe-stale-reads" => if self.unsafe_stale_reads { "yes" } else { "no" }.to_string(),
            "appendfsync" => if self.appendfsync_everysec { "everysec" } else { "always" }.to_string(),
            "raft-snapshot-entries" => self.raft_snapshot_entries.to_string(),
            "admin-port" => self.admin_port.to_string(),
            "cluster-secret-file" => path_text(&self.cluster_secret_file),
            "protected-mode" => if self.protected_mode { "yes" } else { "no" }.to_string(),
            "aclfile" => path_text(&self.aclfile),
            "tls-port" => self.tls_port.to_string(),
            "tls-cert-file" => path_text(&self.tls_cert_file),
            "tls-key-file" => path_text(&self.tls_key_file),
            "tls-ca-cert-file" => path_text(&self.tls_ca_cert_file),
            "tls-auth-clients" => self.tls_auth_clients.to_string(),
            "tls-cluster" => if self.tls_cluster { "yes" } else { "no" }.to_string(),
            _ => return None,
        })
    }

    /// Applies a TOML document: each top-level key is a config key.
    pub fn apply_toml(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::File { path: origin.into(), why: e.to_string() })?;
        for (key, value) in table {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => if b { "yes" } else { "no" }.to_string(),
                other => return Err(bad(&key, format!("expected a string or a number, got {}", other.type_str()))),
            };
            self.set(&key, &text)?;
        }
        Ok(())
    }

    pub fn is_mutable(key: &str) -> Option<bool> {
        KEYS.iter().find(|(k, _)| *k == key).map(|(_, m)| *m)
    }
}

fn yes_no(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(bad(key, format!("'{value}' is not yes or no"))),
    }
}

fn path_text(p: &Option<PathBuf>) -> String {
    p.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
}

/// Redis memory units: `1k` = 1000, `1kb` = 1024, likewise m/mb and g/gb; plain bytes.
pub fn parse_memory(key: &str, value: &str) -> Result<u64, ConfigError> {
    let v = value.trim().to_ascii_lowercase();
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(digits_end);
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(bad(key, format!("'{value}' is not a size (examples: 1048576, 64mb, 2gb)"))),
    };
    let n: u64 =
        num.parse().map_err(|_| bad(key, format!("'{value}' is not a size (examples: 1048576, 64mb, 2gb)")))?;
    n.checked_mul(mul).ok_or_else(|| bad(key, "too large"))
}

/// `<class> <hard> <soft> <soft seconds>` repeated; classes normal, replica (or slave),
/// pubsub. Classes not mentioned keep their current limits.
fn parse_output_limits(key: &str, value: &str, mut limits: OutputLimits) -> Result<OutputLimits, ConfigError> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(4) {
        return Err(bad(key, "expected '<class> <hard limit> <soft limit> <soft seconds>' repeated"));
    }
    for chunk in words.chunks(4) {
        let limit = OutputLimit {
            hard: parse_memory(key, chunk[1])?,
            soft: parse_memory(key, chunk[2])?,
            soft_seconds: chunk[3]
                .parse()
                .map_err(|_| bad(key, format!("'{}' is not a number of seconds", chunk[3])))?,
        };
        match chunk[0].to_ascii_lowercase().as_str() {
            "normal" => limits.normal = limit,
            "replica" | "slave" => limits.replica = limit,
            "pubsub" => limits.pubsub = limit,
            other => return Err(bad(key, format!("unknown client class '{other}'"))),
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("m", "64mb").unwrap(), 64 << 20);
        assert_eq!(parse_memory("m", "1k").unwrap(), 1000);
        assert_eq!(parse_memory("m", "1GB").unwrap(), 1 << 30);
        assert_eq!(parse_memory("m", "123").unwrap(), 123);
        assert!(parse_memory("m", "12xb").is_err());
        assert!(parse_memory("m", "-1").is_err());
    }

    #[test]
    fn toml_and_errors_name_the_key() {
        let mut c = Config::default();
        c.apply_toml("port = 7000\nmaxmemory = \"64mb\"\nbind = \"0.0.0.0\"\n", "t").unwrap();
        assert_eq!((c.port, c.maxmemory, c.bind.to_string().as_str()), (7000, 64 << 20, "0.0.0.0"));
        assert_eq!(c.apply_toml("nosuch = 1", "t").unwrap_err().to_string(), "unknown config key 'nosuch'");
        let e = c.apply_toml("maxmemory = \"lots\"", "t").unwrap_err().to_string();
        assert!(e.starts_with("invalid value for 'maxmemory'"), "{e}");
        assert!(c.set("port", "70000").is_err());
        assert_eq!(c.tcp_backlog, 511);
        c.set("tcp-backlog", "4096").unwrap();
        assert_eq!(c.get("tcp-backlog").as_deref(), Some("4096"));
        for bad in ["0", "70000", "many"] {
            let e = c.set("tcp-backlog", bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid value for 'tcp-backlog'"), "{e}");
        }
        assert_eq!(c.tcp_backlog, 4096);
    }

    #[test]
    fn output_limits() {
        let mut c = Config::default();
        c.set("client-output-buffer-limit", "normal 1mb 512kb 10 pubsub 0 0 0").unwrap();
        assert_eq!(
            c.client_output_buffer_limit.normal,
            OutputLimit { hard: 1 << 20, soft: 512 << 10, soft_seconds: 10 }
        );
        assert_eq!(c.client_output_buffer_limit.pubsub, OutputLimit::default());
        assert!(c.set("client-output-buffer-limit", "normal 1 2").is_err());
        assert!(c.set("client-output-buffer-limit", "weird 1 2 3").is_err());
    }
}
