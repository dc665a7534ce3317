//! moto's S3 server (PyPI), started on a free loopback port for tests that need a real
//! S3-compatible store, and what those tests need around it: a bucket and a credentials
//! file. moto comes from the venv scripts/test builds (it exports PRISM_PYTHON); without
//! moto, [`start_moto`] says why and the caller skips with that message.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn python() -> String {
    std::env::var("PRISM_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

pub struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto's S3 server on a free port, or says why it cannot.
pub fn start_moto() -> Result<(Moto, u16), String> {
    let py = python();
    let has = Command::new(&py).args(["-c", "import moto.server"]).stderr(Stdio::null()).status();
    if !has.is_ok_and(|s| s.success()) {
        return Err(format!("{py} has no moto (pip install 'moto[server]', or run scripts/test)"));
    }
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let child = Command::new(&py)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((moto, port));
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto did not listen on {port} within 30 s");
}

/// Creates a bucket with one plain HTTP request (object_store has no bucket API; moto
/// does not check signatures).
pub fn create_bucket(port: u16, bucket: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect moto");
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
}

/// Writes the credentials file a store opened on moto at `port` needs (object_store S3
/// options; `extra` appends more lines, e.g. shorter timeouts).
pub fn credentials_file(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join("s3.toml");
    std::fs::write(
        &path,
        format!(
            "aws_access_key_id = \"test\"\naws_secret_access_key = \"test\"\naws_region = \"us-east-1\"\n\
             aws_endpoint = \"http://127.0.0.1:{port}\"\naws_allow_http = \"true\"\n{extra}"
        ),
    )
    .expect("write credentials");
    path
}
