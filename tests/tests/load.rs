//! `prism load` end to end: the real binary loads generated CSV and Parquet files into an
//! in-process node over its socket; the graph is then read back through the node
//! (E.COUNT, E.RANGE, V.GET, E.GET), and every bad row must be reported with its file and
//! location (CSV line, Parquet row and row group) and make the exit code non-zero. With a
//! `requirepass-file` on the node, the loader authenticates from `--password-file`.
//!
//! The binary is found as tests/tests/process.rs finds it: `PRISM_BIN`, or built for this
//! test's profile on first use.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
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

/// Writes `columns` as a Parquet file with row groups of `group_rows` rows.
fn write_parquet(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>, group_rows: usize) -> String {
    let path = dir.join(name);
    let batch = RecordBatch::try_from_iter(columns).expect("record batch");
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(group_rows)).build();
    let file = std::fs::File::create(&path).expect("create parquet");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("parquet writer");
    writer.write(&batch).expect("write parquet");
    writer.close().expect("close parquet");
    path.display().to_string()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_parquet_and_reports_bad_rows_by_row_group() {
    let node = TestNode::start().await;
    let mut c = node.raw().await;
    assert_eq!(c.cmd(&["SET", "s:1", "x"]).await, "+OK\r\n");
    let dir = tempfile::tempdir().expect("tmp");

    // 120 vertices in row groups of 50. Row 70 (group 1, row 20) has a null id; row 110
    // (group 2, row 10) has no label and null properties.
    let n = 120;
    let id = |i: usize| (i != 70).then(|| format!("p:{i}"));
    let label = |i: usize| (i != 110).then_some("person");
    let vfile = write_parquet(
        dir.path(),
        "v.parquet",
        vec![
            (
                "age",
                Arc::new(Int64Array::from((0..n).map(|i| (i != 110).then_some(i as i64 + 20)).collect::<Vec<_>>())),
            ),
            (
                "score",
                Arc::new(Float64Array::from(
                    (0..n).map(|i| (i % 2 == 0 && i != 110).then_some(i as f64 / 4.0)).collect::<Vec<_>>(),
                )),
            ),
            ("Label", Arc::new(StringArray::from((0..n).map(label).collect::<Vec<_>>()))),
            ("id", Arc::new(StringArray::from((0..n).map(id).collect::<Vec<_>>()))),
        ],
        50,
    );
    // Edges with the columns in another order than CSV's, a dictionary-encoded type, an
    // integer rank (null: the server's default) and a float property. p:0 likes p:1..p:99;
    // row 100 has a null dst; row 101 points at a string key (the server refuses it).
    let mut src: Vec<Option<String>> = (1..100).map(|_| Some("p:0".to_string())).collect();
    let mut dst: Vec<Option<String>> = (1..100).map(|i| Some(format!("p:{i}"))).collect();
    let mut rank: Vec<Option<i64>> = (1..100).map(Some).collect();
    for (s, d, r) in
        [("p:1", None, Some(5)), ("p:3", Some("s:1".to_string()), Some(5)), ("p:1", Some("p:0".into()), None)]
    {
        src.push(Some(s.to_string()));
        dst.push(d);
        rank.push(r);
    }
    let m = src.len();
    let types: DictionaryArray<Int32Type> = (0..m).map(|_| Some("likes")).collect();
    let efile = write_parquet(
        dir.path(),
        "e.parquet",
        vec![
            ("dst", Arc::new(StringArray::from(dst))),
            ("weight", Arc::new(Float64Array::from((0..m).map(|i| (i == m - 1).then_some(0.75)).collect::<Vec<_>>()))),
            ("rank", Arc::new(Int64Array::from(rank))),
            ("src", Arc::new(StringArray::from(src))),
            ("type", Arc::new(types)),
        ],
        40,
    );

    let args = strings(&["--vertices", &vfile, "--edges", &efile, "--batch", "9", "--connections", "2"]);
    let (code, stdout, stderr) = load(&node, &args).await;
    assert_eq!(code, 1, "a failed row makes the exit code 1; stderr: {stderr}");
    for needle in [
        format!("{vfile}: row 70 (row group 1, row 20): null id"),
        format!("{vfile}: row 110 (row group 2, row 10): no label and no property"),
        format!("{efile}: row 99 (row group 2, row 19): null dst"),
        format!("{efile}: row 100 (row group 2, row 20): server replied: WRONGTYPE"),
    ] {
        assert!(stderr.contains(&needle), "missing {needle:?} in stderr:\n{stderr}");
    }
    assert_eq!(stderr.matches(&format!("{vfile}: row")).count(), 2, "{stderr}");
    assert_eq!(stderr.matches(&format!("{efile}: row")).count(), 2, "{stderr}");
    assert!(stdout.contains(&format!("vertices {vfile}: 120 rows, 118 loaded, 2 failed")), "{stdout}");
    assert!(stdout.contains(&format!("edges {efile}: 102 rows, 100 loaded, 2 failed")), "{stdout}");

    // Vertices: label, integer and float properties as text; the bad rows are absent.
    assert_eq!(
        c.cmd(&["V.GET", "p:8", "age", "score", "nope"]).await,
        format!("*3\r\n{}{}$-1\r\n", bulk("28"), bulk("2"))
    );
    assert_eq!(c.cmd(&["V.GET", "p:9", "score"]).await, "*1\r\n$-1\r\n");
    assert_eq!(c.cmd(&["V.EXISTS", "p:110", "p:119"]).await, ":1\r\n");
    // p:70's row had a null id: p:70 exists only as an edge's endpoint, with no properties.
    assert_eq!(c.cmd(&["V.GET", "p:70", "age"]).await, "*1\r\n$-1\r\n");
    // Edges: 99 out of p:0 newest (highest rank) first, one into p:0 with its property.
    assert_eq!(c.cmd(&["E.COUNT", "p:0", "likes"]).await, ":99\r\n");
    assert_eq!(c.cmd(&["E.COUNT", "p:0", "likes", "IN"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["E.COUNT", "p:3", "likes"]).await, ":0\r\n");
    let top = c.cmd(&["E.RANGE", "p:0", "likes", "LIMIT", "2"]).await;
    let (p99, p98) = (top.find(&bulk("p:99")), top.find(&bulk("p:98")));
    assert!(p99.is_some() && p98 > p99 && top.contains(":99\r\n"), "rank order: {top}");
    let back = c.cmd(&["E.RANGE", "p:0", "likes", "IN", "WITHPROPS"]).await;
    assert!(back.contains(&bulk("p:1")) && back.contains(&bulk("weight")) && back.contains(&bulk("0.75")), "{back}");

    // A mistyped column refuses the whole file before any row is sent.
    let bad = write_parquet(
        dir.path(),
        "float-id.parquet",
        vec![
            ("id", Arc::new(Float64Array::from(vec![1.5])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["x"]))),
        ],
        10,
    );
    let (code, _, stderr) = load(&node, &strings(&["--vertices", &bad])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("{bad}: column `id` has type Float64")), "{stderr}");
    let missing = write_parquet(
        dir.path(),
        "no-dst.parquet",
        vec![("src", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)],
        10,
    );
    let (code, _, stderr) = load(&node, &strings(&["--edges", &missing])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no `type` column"), "{stderr}");

    // A string rank column is parsed per row; integer ids become decimal text; --format
    // reads a file whose name does not say Parquet.
    let ranks = write_parquet(
        dir.path(),
        "ranks.bin",
        vec![
            ("src", Arc::new(Int64Array::from(vec![7, 7, 8])) as ArrayRef),
            ("type", Arc::new(StringArray::from(vec!["t", "t", "t"]))),
            ("dst", Arc::new(Int64Array::from(vec![8, 9, 7]))),
            ("rank", Arc::new(StringArray::from(vec![Some("12x"), Some("3"), None]))),
        ],
        10,
    );
    let (code, stdout, stderr) = load(&node, &strings(&["--edges", &ranks, "--format", "parquet"])).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{ranks}: row 0 (row group 0, row 0): rank \"12x\" is not a 64-bit integer")),
        "{stderr}"
    );
    assert!(stdout.contains(&format!("edges {ranks}: 3 rows, 2 loaded, 1 failed")), "{stdout}");
    // One row (dst 9, rank 3) and the end cursor 0: the 12x row sent nothing.
    assert_eq!(c.cmd(&["E.RANGE", "7", "t"]).await, format!("*2\r\n{}*1\r\n*2\r\n{}:3\r\n", bulk("0"), bulk("9")));
    assert_eq!(c.cmd(&["E.COUNT", "7", "t", "IN"]).await, ":1\r\n");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticates_from_a_password_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let secret = write(dir.path(), "node.pass", "s3cret\n");
    let node = TestNode::start_with(|c| c.requirepass_file = Some(secret.clone().into())).await;
    let right = write(dir.path(), "right.pass", "s3cret\n");
    let wrong = write(dir.path(), "wrong.pass", "guess\n");
    let efile = write(dir.path(), "e.csv", "src,type,dst\na,t,b\nb,t,c\n");

    let (code, stdout, stderr) = load(&node, &strings(&["--edges", &efile, "--password-file", &right])).await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stdout.contains(&format!("edges {efile}: 2 rows, 2 loaded, 0 failed")), "{stdout}");
    let args = strings(&["--edges", &efile, "--password-file", &right, "--user", "default"]);
    let (code, _, stderr) = load(&node, &args).await;
    assert_eq!(code, 0, "stderr: {stderr}");

    let (code, stdout, stderr) = load(&node, &strings(&["--edges", &efile, "--password-file", &wrong])).await;
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("authentication failed: WRONGPASS"), "{stderr}");
    assert!(!stderr.contains("guess"), "the password is never printed: {stderr}");
    let (code, _, stderr) = load(&node, &strings(&["--edges", &efile])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the node requires a password") && stderr.contains("--password-file"), "{stderr}");
    let (code, _, stderr) = load(&node, &strings(&["--edges", &efile, "--user", "default"])).await;
    assert_eq!(code, 2, "--user needs --password-file: {stderr}");
    let missing = dir.path().join("nope.pass").display().to_string();
    let (code, _, stderr) = load(&node, &strings(&["--edges", &efile, "--password-file", &missing])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("password file"), "{stderr}");

    let mut c = node.raw().await;
    assert!(c.cmd(&["E.COUNT", "a", "t"]).await.starts_with("-NOAUTH"));
    assert_eq!(c.cmd(&["AUTH", "s3cret"]).await, "+OK\r\n");
    assert_eq!(c.cmd(&["E.COUNT", "a", "t"]).await, ":1\r\n");
    assert_eq!(c.cmd(&["E.COUNT", "c", "t", "IN"]).await, ":1\r\n");
    node.stop().await;
}
