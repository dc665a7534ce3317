//! A replicated node's connection-side write path: the writes a connection has queued
//! for its shard group, the replies they owe, and the read fence.
//!
//! Invariants:
//! - Replies leave in request order: pending entries are rendered, in order, after
//!   everything already in the reply buffer and before anything the connection runs next
//!   (see `cmd::execute`).
//! - All of a connection's pending writes go to the group as one proposal, so a pipeline
//!   of writes costs one log entry (and shares its fsync with other connections').
//! - A write's reply states only what is known: its output once committed and applied,
//!   `-MOVED`/`-TRYAGAIN` when it certainly did not commit, `-TIMEOUT` when it may have.

use prism_engine::{Output, Slot, Write};

use crate::cmd::CmdError;
use crate::conn::ConnState;
use crate::node::Node;
use crate::resp::ReplyWriter;

/// Most writes a connection queues before it hands them to the group.
pub const MAX_PENDING: usize = 1024;

/// A direct handler's rendering of its write's output, run once the group answered.
pub type RenderFn = Box<dyn FnOnce(&mut ConnState, &mut ReplyWriter, Output) + Send>;

/// A rendering that also needs the node (EXEC on a replicated shard runs the
/// transaction's connection commands while it renders).
pub type NodeRenderFn = Box<dyn FnOnce(&Node, &mut ConnState, &mut ReplyWriter, Output) + Send>;

/// How a pending entry's reply is written.
pub enum Render {
    /// The write's output as is (a plain write command).
    Output,
    /// An error queued behind earlier writes (no write of its own).
    Error(CmdError),
    /// A direct handler's own rendering of the output (`Ctx::write_then`).
    Custom(RenderFn),
    /// [`Render::Custom`] with the node.
    WithNode(NodeRenderFn),
}

/// One reply a connection owes, and the write it waits for.
pub struct Pending {
    pub write: Option<Write>,
    /// The slot of the write's first key: where `-MOVED` points.
    pub slot: Option<Slot>,
    pub render: Render,
}

/// Proposes the connection's pending writes as one batch, waits for the group, and
/// renders every pending reply in order.
pub async fn commit(node: &Node, conn: &mut ConnState, out: &mut ReplyWriter) {
    let pending = std::mem::take(&mut conn.pending);
    let Some(replica) = node.replica() else {
        // Only a replicated node queues writes.
        return;
    };
    let mut writes = Vec::with_capacity(pending.len());
    let mut renders = Vec::with_capacity(pending.len());
    for p in pending {
        let has_write = p.write.is_some();
        writes.extend(p.write);
        renders.push((has_write, p.slot, p.render));
    }
    let result = if writes.is_empty() {
        Ok(Vec::new())
    } else {
        let started = std::time::Instant::now();
        let result = replica.group.write(writes).await;
        node.cmd_stats.write_commit.record(started.elapsed().as_micros() as u64);
        result.map(|c| {
            conn.last_write_index = conn.last_write_index.max(c.index);
            c.outputs
        })
    };
    conn.clock_mark = None;
    conn.read_now.set(0);
    let (mut outputs, failed) = match result {
        Ok(outputs) => (outputs.into_iter(), None),
        Err(e) => (Vec::new().into_iter(), Some(e)),
    };
    for (has_write, slot, render) in renders {
        let mark = out.buf.len();
        let output = match (&failed, has_write) {
            (_, false) => None,
            (None, true) => Some(outputs.next().unwrap_or(Output::Nil)),
            (Some(e), true) => {
                conn.errors += 1;
                let e = replica.write_error(e, slot);
                let e = match conn.tls {
                    Some(ports) => ports.redirect(e),
                    None => e,
                };
                out.error(&e.0);
                crate::stats::committed_reply(node, conn, out, mark);
                continue;
            }
        };
        match (render, output) {
            (Render::Error(e), _) => out.error(&e.0),
            (Render::Output, Some(o)) => {
                if matches!(o, Output::Err(_)) {
                    conn.errors += 1;
                }
                out.output(&o);
            }
            (Render::Custom(f), Some(o)) => f(conn, out, o),
            (Render::WithNode(f), Some(o)) => f(node, conn, out, o),
            // A render that needs an output always comes with a write.
            (_, None) => out.null(),
        }
        if has_write {
            // errorstats and prism_errors_total count committed writes' errors too.
            crate::stats::committed_reply(node, conn, out, mark);
        }
    }
}

/// Waits for a read fence on the leader; a failure is remembered for this batch's reads.
pub async fn fence(node: &Node, conn: &mut ConnState) {
    let Some(replica) = node.replica() else { return };
    match replica.group.read_fence().await {
        Ok(()) => conn.fenced = true,
        Err(e) => conn.fence_error = Some(e),
    }
    // Not `waited()`: that would drop the fence just taken.
    conn.clock_mark = None;
    conn.read_now.set(0);
}
