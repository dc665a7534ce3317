//! `prism load` end to end: the real binary loads generated CSV files into an in-process
//! node over its socket; the graph is then read back through the node (E.COUNT, V.GET,
//! E.GET), and every bad row must be reported with its file and line and make the exit
//! code non-zero.
//!
//! The binary is found as tests/tests/process.rs finds it: `PRISM_BIN`, or built for this
//! test's profile on first use.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use prism_tests::{bulk, prism_bin, TestNode};

/// Longest the loader may run on these few rows.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `prism load` against `node` off the async runtime (the node serves meanwhile).
async fn load(node: &TestNode, args: &[String]) -> (i32, String, String) {
    let mut full = vec!["load".to_string(), "--port".into(), node.addr.port().to_string()];
    full.extend(args.iter().cloned());
    let out: Output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(prism_bin())
            .args(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn prism load");
        let deadline = Instant::now() + LOAD_TIMEOUT;
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("prism load did not finish within {LOAD_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("join");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write csv");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_vertices_and_edges_and_reports_bad_rows_by_line() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    // A string key where a vertex is expected: the server refuses that row.
    assert_eq!(c.cmd(&["SET", "s:1", "x"]).await, "+OK\r\n");

    let dir = tempfile::tempdir().expect("tmp");
    // 300 vertices; line 1 is the header, vertex i is on line i + 2.
    let mut v = String::from("id,label,name,\"nick, quoted\"\n");
    for i in 0..300 {
        v.push_str(&format!("u:{i},person,name {i},\"n,{i}\"\n"));
    }
    v.push_str("u:bad,person\n"); // line 302: too few cells
    v.push_str("s:1,person,x,y\n"); // line 303: WRONGTYPE from the server
    v.push_str("u:300,,,only-nick\n"); // line 304: no label, one property
    v.push_str(",person,x,y\n"); // line 305: empty id
    let vfile = write(dir.path(), "v.csv", &v);

    // u:0 follows u:1..u:199 with ranks 1..199; u:1 follows u:0 with a property.
    let mut e = String::from("src,type,dst,rank,since\n");
    for i in 1..200 {
        e.push_str(&format!("u:0,follows,u:{i},{i},\n"));
    }
    e.push_str("u:1,follows,u:0,,2024\n"); // line 201
    e.push_str("u:2,follows,u:0,12x,\n"); // line 202: bad rank
    e.push_str("u:3,follows,s:1,5,\n"); // line 203: WRONGTYPE (dst is a string)
    let efile = write(dir.path(), "e.csv", &e);

    let args: Vec<String> = ["--vertices", &vfile, "--edges", &efile, "--batch", "7", "--connections", "3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (code, stdout, stderr) = load(&node, &args).await;
    assert_eq!(code, 1, "a failed row makes the exit code 1; stderr: {stderr}");
    for needle in [
        format!("{vfile}:302: 2 cells, the header has 4"),
        format!("{vfile}:303: server replied: WRONGTYPE"),
        format!("{vfile}:305: empty id"),
        format!("{efile}:202: rank \"12x\" is not a 64-bit integer"),
        format!("{efile}:203: server replied: WRONGTYPE"),
    ] {
        assert!(stderr.contains(&needle), "missing {needle:?} in stderr:\n{stderr}");
    }
    assert_eq!(stderr.matches(&format!("{vfile}:")).count(), 3, "{stderr}");
    assert_eq!(stderr.matches(&format!("{efile}:")).count(), 2, "{stderr}");
    assert!(stdout.contains(&format!("vertices {vfile}: 304 rows, 301 loaded, 3 failed")), "{stdout}");
    assert!(stdout.contains(&format!("edges {efile}: 202 rows, 200 loaded, 2 failed")), "{stdout}");

    assert_eq!(c.cmd(&["E.COUNT", "u:0", "follows"]).await, ":199\r\n");
    assert_eq!(c.cmd(&["E.COUNT", "u:0", "follows", "IN"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["E.COUNT", "u:2", "follows"]).await, ":0\r\n");
    assert_eq!(
        c.cmd(&["V.GET", "u:7", "name", "nick, quoted"]).await,
        format!("*2\r\n{}{}", bulk("name 7"), bulk("n,7"))
    );
    assert_eq!(c.cmd(&["V.GET", "u:300", "nick, quoted", "name"]).await, format!("*2\r\n{}$-1\r\n", bulk("only-nick")));
    assert!(c.cmd(&["E.RANGE", "u:0", "follows", "LIMIT", "1"]).await.contains("u:199"));
    assert_eq!(
        c.cmd(&["E.GET", "u:1", "follows", "u:0"]).await.split("\r\n").skip(4).take(6).collect::<Vec<_>>(),
        ["$5", "props", "*2", "$5", "since", "$4"]
    );
    assert_eq!(c.cmd(&["TYPE", "s:1"]).await, "+string\r\n");
    assert_eq!(c.cmd(&["V.EXISTS", "u:bad"]).await, ":0\r\n");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_load_exits_zero_and_a_bad_header_refuses_to_start() {
    let node = TestNode::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let efile = write(dir.path(), "e.csv", "src,type,dst\na,t,b\nb,t,c\n");
    let (code, stdout, stderr) = load(&node, &["--edges".to_string(), efile.clone()]).await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stdout.contains(&format!("edges {efile}: 2 rows, 2 loaded, 0 failed")), "{stdout}");
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["E.COUNT", "b", "t", "IN"]).await, ":1\r\n");
    assert_eq!(
        c.cmd(&["G.KHOP", "a", "2"]).await,
        "*4\r\n$4\r\nhops\r\n*2\r\n*1\r\n$1\r\nb\r\n*1\r\n$1\r\nc\r\n$9\r\ntruncated\r\n$-1\r\n"
    );

    let bad = write(dir.path(), "bad.csv", "dst,type,src\na,t,b\n");
    let (code, _, stderr) = load(&node, &["--edges".to_string(), bad]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("an edges header starts with `src,type,dst`"), "{stderr}");
    let (code, _, stderr) = load(&node, &[]).await;
    assert_eq!(code, 2, "{stderr}");
    node.stop().await;
}
