// ioredis's `Cluster` against a real fleet: three shards of three `prism` processes
// each, started with `prism cluster up` on a random free port range (issue 6).
//
// The client is unchanged: it discovers masters (Raft leaders) and replicas from
// CLUSTER SLOTS, follows -MOVED, sends READONLY to replicas it reads from, and retries
// after a failover. The last test SIGKILLs one shard's leader while a writer keeps
// writing, then checks that every acknowledged write is readable and that no read ever
// returned a value nobody wrote.
//
// Run with `node --test fleet.test.js`; ioredis is found through NODE_PATH (scripts/test
// installs tests/node/package-lock.json into a cache outside the repo). The binary comes
// from $PRISM_BIN, else the cargo target directory. Every wait is bounded in count and
// time; the fleet is stopped in `after` even when a test failed.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const Redis = require("ioredis");

const ROOT = path.resolve(__dirname, "../..");
const BIN =
  process.env.PRISM_BIN ||
  path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, "target"), "debug", "prism");
const SHARDS = 3;
const REPLICAS = 2;
const NODES = SHARDS * (REPLICAS + 1);
// Slot ranges `prism cluster up` gives three shards (redis-cli's split).
const RANGES = [
  [1, 0, 5460],
  [2, 5461, 10922],
  [3, 10923, 16383],
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// CRC16/XMODEM of the hashed part of a key, mod 16384: the Redis Cluster slot,
// computed here independently of both client and server.
function keyslot(key) {
  let k = Buffer.from(key);
  const open = k.indexOf("{");
  if (open >= 0) {
    const close = k.indexOf("}", open + 1);
    if (close > open + 1) k = k.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of k) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

const shardOf = (key) => RANGES.find(([, a, b]) => keyslot(key) >= a && keyslot(key) <= b)[0];

function ephemeralLow() {
  try {
    const lo = parseInt(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0], 10);
    return Number.isFinite(lo) ? lo : 32768;
  } catch {
    return 32768;
  }
}

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

class Fleet {
  async up() {
    assert.ok(fs.existsSync(BIN), `${BIN} does not exist: run cargo build --workspace first`);
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), "prism-node-fleet-"));
    const errors = [];
    for (let attempt = 0; attempt < 50 && errors.length < 5; attempt++) {
      // Below the ephemeral range (with the +10000 peer and +20000 admin ports): ports
      // there are left in TIME_WAIT by earlier tests' connections, and a listener cannot
      // bind over those.
      const base = 1100 + Math.floor(Math.random() * (ephemeralLow() - 20000 - NODES - 1100));
      let free = true;
      for (let i = 0; i < NODES && free; i++) {
        free = (await portFree(base + i)) && (await portFree(base + 10000 + i));
      }
      if (!free) {
        if (attempt === 49) errors.push(`no free port range found in 50 tries (last base ${base})`);
        continue;
      }
      this.base = base;
      this.dir = path.join(this.root, `fleet-${attempt}`);
      const up = this.cli(["up", "--shards", `${SHARDS}`, "--replicas", `${REPLICAS}`, "--base-port", `${base}`]);
      if (up.status === 0) return;
      errors.push(`${up.stdout}${up.stderr}`);
      this.down();
    }
    throw new Error(`prism cluster up failed:\n${errors.join("\n")}`);
  }

  cli(args, timeout = 120000) {
    const extra = args[0] === "up" ? ["--dir", this.dir, "--", "--threads", "1"] : ["--dir", this.dir];
    return spawnSync(BIN, ["cluster", ...args, ...extra], { encoding: "utf8", timeout, stdio: ["ignore", "pipe", "pipe"] });
  }

  port(node) {
    return this.base + node - 1;
  }

  members(shard) {
    return [1, 2, 3].map((i) => (shard - 1) * (REPLICAS + 1) + i);
  }

  pid(node) {
    try {
      return Number(fs.readFileSync(path.join(this.dir, `node-${node}.pid`), "utf8").trim()) || null;
    } catch {
      return null;
    }
  }

  // INFO raft of one node as an object, or null if it does not answer.
  async raft(node) {
    const c = new Redis({
      port: this.port(node),
      lazyConnect: true,
      connectTimeout: 2000,
      commandTimeout: 2000,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    c.on("error", () => {});
    try {
      await c.connect();
      const text = await c.info("raft");
      return Object.fromEntries(text.split("\r\n").filter((l) => l.includes(":")).map((l) => l.split(":", 2)));
    } catch {
      return null;
    } finally {
      c.disconnect();
    }
  }

  async leader(shard, timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const node of this.members(shard)) {
        if ((await this.raft(node))?.role === "leader") return node;
      }
      await sleep(200);
    }
    throw new Error(`shard ${shard} has no leader after ${timeoutMs} ms`);
  }

  kill(node) {
    process.kill(this.pid(node), "SIGKILL");
  }

  down() {
    if (!this.dir || !fs.existsSync(this.dir)) return;
    const pids = Array.from({ length: NODES }, (_, i) => this.pid(i + 1)).filter(Boolean);
    this.cli(["down"], 30000);
    // Whatever is still one of this fleet's nodes (pids get reused: check the command line).
    for (const pid of pids) {
      try {
        if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(this.dir)) process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

const fleet = new Fleet();
const clients = [];

function cluster(options = {}) {
  const c = new Redis.Cluster(
    [1, 4, 7].map((n) => ({ host: "127.0.0.1", port: fleet.port(n) })),
    {
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
      retryDelayOnTryAgain: 200,
      maxRedirections: 32,
      slotsRefreshTimeout: 2000,
      redisOptions: { connectTimeout: 2000, commandTimeout: 5000, maxRetriesPerRequest: 5 },
      ...options,
    },
  );
  // Errors while a node is down are reported per command; keep the event quiet.
  c.on("error", () => {});
  c.on("node error", () => {});
  clients.push(c);
  return c;
}

async function ready(c) {
  if (c.status === "ready") return;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cluster client not ready: ${c.status}`)), 20000);
    c.once("ready", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// Runs `op` until it answers, bounded in count and time; {ok, value} or {ok: false, error}.
// Error replies other than the transient ones of a failover are answers, not retried.
async function retrying(op, attempts = 20, budgetMs = 20000) {
  const deadline = Date.now() + budgetMs;
  let error;
  for (let i = 0; i < attempts && Date.now() < deadline; i++) {
    try {
      return { ok: true, value: await op() };
    } catch (e) {
      error = e;
      if (e.name === "ReplyError" && !/^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|LOADING)/.test(e.message)) throw e;
      await sleep(100);
    }
  }
  return { ok: false, error };
}

before(async () => {
  await fleet.up();
});

after(() => {
  for (const c of clients) c.disconnect();
  fleet.down();
  if (fleet.root) fs.rmSync(fleet.root, { recursive: true, force: true });
});

test("discovers three masters and six replicas", async () => {
  const c = cluster();
  await ready(c);
  const leaders = [];
  for (const s of [1, 2, 3]) leaders.push(fleet.port(await fleet.leader(s)));
  const ports = (role) => c.nodes(role).map((n) => n.options.port).sort();
  assert.deepEqual(ports("master"), leaders.sort());
  assert.equal(c.nodes("slave").length, 6);
  assert.deepEqual(ports("all"), Array.from({ length: NODES }, (_, i) => fleet.port(i + 1)).sort());
  const info = await c.cluster("INFO");
  assert.match(info, /cluster_state:ok/);
  assert.match(info, /cluster_slots_assigned:16384/);
});

test("SET/GET of 500 keys over every shard", async () => {
  const c = cluster();
  const keys = Array.from({ length: 500 }, (_, i) => `node:k:${i}`);
  const perShard = { 1: 0, 2: 0, 3: 0 };
  for (const k of keys) perShard[shardOf(k)]++;
  for (const s of [1, 2, 3]) assert.ok(perShard[s] > 100, JSON.stringify(perShard));
  for (const [i, k] of keys.entries()) assert.equal(await c.set(k, `v${i}`), "OK");
  for (const [i, k] of keys.entries()) assert.equal(await c.get(k), `v${i}`);
  // Each key is held by its shard's leader: a plain connection there answers it.
  for (const s of [1, 2, 3]) {
    const plain = new Redis({ port: fleet.port(await fleet.leader(s)) });
    try {
      for (const [i, k] of keys.entries()) if (shardOf(k) === s) assert.equal(await plain.get(k), `v${i}`);
    } finally {
      plain.disconnect();
    }
  }
});

test("hash tags keep MSET/MGET in one slot", async () => {
  const c = cluster();
  for (const tag of ["user:1", "user:2", "user:3", "a", "b", "c"]) {
    const keys = ["name", "email", "age"].map((f) => `{node:${tag}}:${f}`);
    assert.equal(new Set(keys.map(keyslot)).size, 1);
    assert.equal(await c.mset(keys[0], tag, keys[1], `${tag}@example.com`, keys[2], "33"), "OK");
    assert.deepEqual(await c.mget(...keys, `{node:${tag}}:absent`), [tag, `${tag}@example.com`, "33", null]);
  }
});

test("a pipeline (one slot, as ioredis requires) and MULTI", async () => {
  const c = cluster();
  for (const tag of ["p1", "p2", "p3", "p4"]) {
    const keys = Array.from({ length: 50 }, (_, i) => `{node:${tag}}:${i}`);
    const p = c.pipeline();
    keys.forEach((k, i) => p.set(k, i).incrby(k, 10));
    const replies = await p.exec();
    assert.deepEqual(replies, keys.flatMap((_, i) => [[null, "OK"], [null, i + 10]]));
    assert.deepEqual(await c.mget(...keys), keys.map((_, i) => `${i + 10}`));
  }
  const tx = await c.multi().set("{node:tx}:a", "1").incr("{node:tx}:a").get("{node:tx}:a").exec();
  assert.deepEqual(tx, [[null, "OK"], [null, 2], [null, "2"]]);
});

test("-CROSSSLOT for keys of two shards through a plain connection", async () => {
  const mine = Array.from({ length: 1000 }, (_, i) => `node:y${i}`).find((k) => shardOf(k) === 1);
  const other = Array.from({ length: 1000 }, (_, i) => `node:x${i}`).find((k) => shardOf(k) === 2);
  const plain = new Redis({ port: fleet.port(await fleet.leader(1)) });
  try {
    await assert.rejects(plain.mget(mine, other), /^ReplyError: CROSSSLOT Keys in request don't hash to the same slot$/);
    await assert.rejects(plain.mset(mine, "1", other, "1"), /^ReplyError: CROSSSLOT/);
    assert.equal(await plain.get(mine), null);
    const leader2 = fleet.port(await fleet.leader(2));
    await assert.rejects(plain.get(other), new RegExp(`^ReplyError: MOVED ${keyslot(other)} 127\\.0\\.0\\.1:${leader2}$`));
  } finally {
    plain.disconnect();
  }
});

test("scaleReads: 'slave' reads from replicas eventually see the writes", async () => {
  const writer = cluster();
  const reader = cluster({ scaleReads: "slave" });
  await ready(reader);
  const keys = Array.from({ length: 60 }, (_, i) => `node:r:${i}`);
  for (const [i, k] of keys.entries()) assert.equal(await writer.set(k, `v${i}`), "OK");
  const pending = new Map(keys.map((k, i) => [k, `v${i}`]));
  const deadline = Date.now() + 20000;
  while (pending.size && Date.now() < deadline) {
    for (const [k, v] of pending) {
      const got = await reader.get(k);
      assert.ok(got === null || got === v, `${k}: ${got}`);
      if (got === v) pending.delete(k);
    }
    await sleep(50);
  }
  assert.equal(pending.size, 0, `never read from the replicas: ${[...pending.keys()].slice(0, 10)}`);
});

test("a leader SIGKILL loses no acknowledged write", async () => {
  const c = cluster();
  await ready(c);
  const victimShard = 3;
  const victim = await fleet.leader(victimShard);
  const keys = Array.from({ length: 3000 }, (_, i) => `node:f:${i}`);
  const value = (k) => `val-${k}`;
  const acked = [];
  const unsure = [];
  const wrong = [];
  let killedAt = -1;
  let afterKill = 0;
  const started = Date.now();
  for (const [i, k] of keys.entries()) {
    if (Date.now() - started > 90000) break;
    if (acked.length === 200 && killedAt < 0) {
      fleet.kill(victim);
      killedAt = i;
    }
    const set = await retrying(() => c.set(k, value(k)));
    if (!set.ok) {
      unsure.push(k);
      continue;
    }
    if (set.value !== "OK") wrong.push(["SET", k, set.value]);
    acked.push(k);
    if (killedAt >= 0 && shardOf(k) === victimShard && ++afterKill >= 100) break;
    if (i % 3 === 0) {
      const back = acked[(i * 7919) % acked.length];
      const got = await retrying(() => c.get(back));
      if (got.ok && got.value !== value(back)) wrong.push(["GET", back, got.value]);
    }
  }
  assert.deepEqual(wrong, []);
  assert.ok(killedAt >= 0, "the writer never reached the kill");
  assert.ok(afterKill >= 100, `only ${afterKill} writes to shard ${victimShard} acknowledged after its leader died`);
  const newLeader = await fleet.leader(victimShard);
  assert.notEqual(newLeader, victim);

  // A fresh client: every acknowledged write is there; an unacknowledged one may be.
  const fresh = cluster();
  for (const k of acked) {
    const got = await retrying(() => fresh.get(k));
    assert.ok(got.ok, `${k}: ${got.error}`);
    assert.equal(got.value, value(k), k);
  }
  for (const k of unsure) {
    const got = await retrying(() => fresh.get(k));
    assert.ok(got.ok && (got.value === null || got.value === value(k)), `${k}: ${got.value}`);
  }

  // The client's topology, refreshed from CLUSTER SLOTS, names the new leader.
  const deadline = Date.now() + 15000;
  let masters = [];
  while (Date.now() < deadline) {
    await new Promise((resolve) => c.refreshSlotsCache(() => resolve()));
    masters = c.nodes("master").map((n) => n.options.port);
    if (masters.includes(fleet.port(newLeader)) && !masters.includes(fleet.port(victim))) break;
    await sleep(200);
  }
  assert.ok(masters.includes(fleet.port(newLeader)), `masters ${masters}, new leader ${fleet.port(newLeader)}`);
  assert.ok(!masters.includes(fleet.port(victim)), `masters ${masters} still name the killed ${fleet.port(victim)}`);
});
