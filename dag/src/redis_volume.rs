//! The Redis volume: blocks, refs and the changelog in one Redis server
//! or a Redis Cluster, shared by every hydra process pointed at it.
//!
//! Keys (all under a prefix, `hydra` by default, so stores can share a
//! deployment): a block is a hash `PREFIX:b:<cid>` with its bytes (`d`)
//! and when it was last stored (`t`, milliseconds), spread over the
//! cluster's slots; refs (`{PREFIX}:refs`), the changelog (`{PREFIX}:log`)
//! and its counter (`{PREFIX}:seq`) share one hash tag, so a Lua script
//! moves a ref and appends the entry atomically on one node. A write
//! returns only once the master and (when it has any) `replicas` of its
//! replicas hold it (`WAIT`), so a failover loses nothing acknowledged.

mod cluster;

use std::time::Duration;

use bytes::Bytes;
use redis::{Connection, RedisResult, Value};

use crate::block::Block;
use crate::cid::Cid;
use crate::error::{DagError, DagResult};
use crate::identity::Signature;
use crate::refs::{LogEntry, RefName, RefNote, now_ns};
use crate::volume::{BlockInfo, Volume, VolumeStats};

use cluster::{Redis, backend, slot};

/// How long a write waits for its replicas.
const WAIT_MS: u64 = 10_000;
/// Keys per pipeline.
const BATCH: usize = 256;

/// Moves a ref if it holds the expected value, and logs the move. A call
/// retried after a lost reply finds its own token and answers as before.
const CAS_SCRIPT: &str = r#"
local done = redis.call('HGET', KEYS[4], ARGV[1])
if done then
  local sep = string.find(done, ' ', 1, true)
  if sep and string.sub(done, 1, sep - 1) == ARGV[7] then
    return {1, tonumber(string.sub(done, sep + 1))}
  end
end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then cur = '' end
if cur ~= ARGV[2] then return {0, cur} end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
local id = redis.call('INCR', KEYS[3])
redis.call('RPUSH', KEYS[2], cjson.encode({id = id, name = ARGV[1], old = ARGV[2],
  new = ARGV[3], time_ns = ARGV[4], author = ARGV[5], message = ARGV[6], sig = ARGV[8]}))
redis.call('HSET', KEYS[4], ARGV[1], ARGV[7] .. ' ' .. id)
return {1, id}
"#;

/// Blocks, refs and changelog in Redis.
#[derive(Debug)]
pub struct RedisVolume {
    redis: Redis,
    prefix: String,
    /// Replicas a write must reach (capped by what each master has).
    replicas: usize,
}

fn millis() -> i64 {
    now_ns() / 1_000_000
}

impl RedisVolume {
    /// Connects to the Redis deployment at `nodes` (`host:port`, any node
    /// of a cluster), keeping this store's keys under `prefix`.
    pub fn open(nodes: Vec<String>, prefix: &str, replicas: usize) -> DagResult<RedisVolume> {
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DagError::Other(format!(
                "redis key prefix {prefix:?}: use letters, digits, - and _"
            )));
        }
        Ok(RedisVolume {
            redis: Redis::connect(nodes, Duration::from_secs(30))?,
            prefix: prefix.to_string(),
            replicas,
        })
    }

    /// The addresses of a `redis://HOST:PORT[,HOST:PORT…]` URL.
    pub fn parse_url(url: &str) -> DagResult<Vec<String>> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| DagError::Other(format!("{url:?} is not a redis:// URL")))?;
        let nodes: Vec<String> = rest
            .trim_end_matches('/')
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|n| {
                if n.rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                {
                    Ok(n.to_string())
                } else {
                    Err(DagError::Other(format!(
                        "{n:?} in {url:?} is not HOST:PORT"
                    )))
                }
            })
            .collect::<DagResult<_>>()?;
        if nodes.is_empty() {
            return Err(DagError::Other(format!("{url:?} names no node")));
        }
        Ok(nodes)
    }

    fn block_key(&self, cid: &Cid) -> Vec<u8> {
        let mut k = format!("{}:b:", self.prefix).into_bytes();
        k.extend_from_slice(&cid.to_bytes());
        k
    }

    fn meta_key(&self, what: &str) -> String {
        format!("{{{}}}:{what}", self.prefix)
    }

    /// Waits until `want` replicas (at most `have`) hold this connection's writes.
    fn wait(&self, conn: &mut Connection, have: usize) -> RedisResult<()> {
        let want = self.replicas.min(have);
        if want == 0 {
            return Ok(());
        }
        let acked: usize = redis::cmd("WAIT").arg(want).arg(WAIT_MS).query(conn)?;
        if acked < want {
            return Err(redis::RedisError::from((
                redis::ErrorKind::TryAgain,
                "replicas did not acknowledge the write",
            )));
        }
        Ok(())
    }

    /// Calls `f(block, bytes of memory it takes)` for every stored block
    /// (the memory only when `memory` is asked for, else 0).
    fn scan_blocks(&self, memory: bool, f: &mut dyn FnMut(BlockInfo, u64)) -> DagResult<()> {
        let pattern = format!("{}:b:*", self.prefix);
        let prefix_len = pattern.len() - 1;
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(i)) => Some(*i),
            Some(Value::BulkString(b)) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
            _ => None,
        };
        for node in self.redis.masters() {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) =
                    self.redis.on_node(&node, "list blocks", |c| {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000)
                            .query(c)
                    })?;
                if !keys.is_empty() {
                    let facts: Vec<Value> = self.redis.on_node(&node, "list blocks", |c| {
                        let mut p = redis::pipe();
                        for k in &keys {
                            p.cmd("HGET").arg(k).arg("t");
                            p.cmd("HSTRLEN").arg(k).arg("d");
                            if memory {
                                p.cmd("MEMORY").arg("USAGE").arg(k);
                            }
                        }
                        p.query(c)
                    })?;
                    let per = if memory { 3 } else { 2 };
                    for (k, v) in keys.iter().zip(facts.chunks(per)) {
                        let (Some(cid), Some(stored_ms)) =
                            (cid_of_key(prefix_len, k), int(v.first()))
                        else {
                            continue; // deleted meanwhile
                        };
                        let size = int(v.get(1)).unwrap_or(0) as u64;
                        let used = int(v.get(2)).unwrap_or(0) as u64;
                        f(
                            BlockInfo {
                                cid,
                                size,
                                stored_ms,
                            },
                            used,
                        );
                    }
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}

fn cid_of_key(prefix_len: usize, key: &[u8]) -> Option<Cid> {
    Cid::from_bytes(key.get(prefix_len..)?).ok()
}

impl Volume for RedisVolume {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn get(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        let key = self.block_key(cid);
        let data: Option<Vec<u8>> = self.redis.on_slot(slot(&key), "get a block", |c, _| {
            redis::cmd("HGET").arg(&key).arg("d").query(c)
        })?;
        Ok(data.map(Bytes::from))
    }

    fn get_many(&self, cids: &[Cid]) -> DagResult<Vec<Option<Bytes>>> {
        let keys: Vec<Vec<u8>> = cids.iter().map(|c| self.block_key(c)).collect();
        let mut out = vec![None; cids.len()];
        for (n, chunk) in keys.chunks(BATCH).enumerate() {
            let base = n * BATCH;
            for (s, idx) in self.redis.by_master(chunk) {
                let got: Vec<Option<Vec<u8>>> = self.redis.on_slot(s, "get blocks", |c, _| {
                    let mut p = redis::pipe();
                    for &i in &idx {
                        p.cmd("HGET").arg(&chunk[i]).arg("d");
                    }
                    p.query(c)
                })?;
                for (&i, v) in idx.iter().zip(got) {
                    out[base + i] = v.map(Bytes::from);
                }
            }
        }
        Ok(out)
    }

    fn has(&self, cid: &Cid) -> DagResult<bool> {
        let key = self.block_key(cid);
        self.redis.on_slot(slot(&key), "look up a block", |c, _| {
            redis::cmd("HEXISTS").arg(&key).arg("d").query(c)
        })
    }

    fn put_many(&self, blocks: &[Block]) -> DagResult<()> {
        let now = millis();
        for chunk in blocks.chunks(BATCH) {
            let keys: Vec<Vec<u8>> = chunk.iter().map(|b| self.block_key(b.cid())).collect();
            for (s, idx) in self.redis.by_master(&keys) {
                self.redis.on_slot(s, "store blocks", |c, replicas| {
                    let mut p = redis::pipe();
                    for &i in &idx {
                        // The time always (GC's grace counts from the last
                        // store); the bytes only when absent.
                        p.cmd("HSET").arg(&keys[i]).arg("t").arg(now).ignore();
                        p.cmd("HSETNX")
                            .arg(&keys[i])
                            .arg("d")
                            .arg(chunk[i].data().as_ref())
                            .ignore();
                    }
                    p.query::<()>(c)?;
                    self.wait(c, replicas)
                })?;
            }
        }
        Ok(())
    }

    fn delete_many(&self, cids: &[Cid]) -> DagResult<u64> {
        let keys: Vec<Vec<u8>> = cids.iter().map(|c| self.block_key(c)).collect();
        let mut removed = 0u64;
        for chunk in keys.chunks(BATCH) {
            for (s, idx) in self.redis.by_master(chunk) {
                removed += self.redis.on_slot(s, "delete blocks", |c, replicas| {
                    let mut p = redis::pipe();
                    for &i in &idx {
                        p.cmd("DEL").arg(&chunk[i]);
                    }
                    let counts: Vec<u64> = p.query(c)?;
                    self.wait(c, replicas)?;
                    Ok(counts.iter().sum::<u64>())
                })?;
            }
        }
        Ok(removed)
    }

    fn for_each_block(&self, f: &mut dyn FnMut(BlockInfo)) -> DagResult<()> {
        self.scan_blocks(false, &mut |info, _| f(info))
    }

    fn get_ref(&self, name: &RefName) -> DagResult<Option<Cid>> {
        let key = self.meta_key("refs");
        let text: Option<String> =
            self.redis
                .on_slot(slot(key.as_bytes()), "read a ref", |c, _| {
                    redis::cmd("HGET").arg(&key).arg(name.as_str()).query(c)
                })?;
        text.map(|t| t.parse::<Cid>().map_err(|e| backend("a stored ref", e)))
            .transpose()
    }

    fn cas_ref(
        &self,
        name: &RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &RefNote,
    ) -> DagResult<LogEntry> {
        let keys = [
            self.meta_key("refs"),
            self.meta_key("log"),
            self.meta_key("seq"),
            self.meta_key("last"),
        ];
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let token = format!(
            "{}-{}-{}",
            std::process::id(),
            now_ns(),
            CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let text = |c: Option<&Cid>| c.map(Cid::to_string).unwrap_or_default();
        let entry = LogEntry::from_note(0, name, expected.copied(), new.copied(), note);
        let signature = entry
            .signature
            .map(|s| data_encoding::HEXLOWER.encode(&s.to_bytes()))
            .unwrap_or_default();
        let script = redis::Script::new(CAS_SCRIPT);
        let (ok, value): (i64, Value) =
            self.redis
                .on_slot(slot(keys[0].as_bytes()), "move a ref", |c, replicas| {
                    let mut inv = script.prepare_invoke();
                    for k in &keys {
                        inv.key(k);
                    }
                    inv.arg(name.as_str())
                        .arg(text(expected))
                        .arg(text(new))
                        .arg(entry.time_ns.to_string())
                        .arg(&note.author)
                        .arg(&note.message)
                        .arg(&token)
                        .arg(&signature);
                    let r: (i64, Value) = inv.invoke(c)?;
                    self.wait(c, replicas)?;
                    Ok(r)
                })?;
        if ok == 0 {
            let actual = match value {
                Value::BulkString(b) if !b.is_empty() => Some(
                    String::from_utf8_lossy(&b)
                        .parse::<Cid>()
                        .map_err(|e| backend("a stored ref", e))?,
                ),
                _ => None,
            };
            return Err(DagError::RefConflict {
                name: name.to_string(),
                expected: expected.copied(),
                actual,
            });
        }
        let id = match value {
            Value::Int(i) => i as u64,
            _ => return Err(backend("move a ref", "the script returned no id")),
        };
        Ok(LogEntry { id, ..entry })
    }

    fn list_refs(&self) -> DagResult<Vec<(RefName, Cid)>> {
        let key = self.meta_key("refs");
        let all: Vec<(String, String)> =
            self.redis
                .on_slot(slot(key.as_bytes()), "list refs", |c, _| {
                    redis::cmd("HGETALL").arg(&key).query(c)
                })?;
        let mut out = all
            .into_iter()
            .map(|(n, c)| {
                Ok((
                    RefName::new(n)?,
                    c.parse::<Cid>().map_err(|e| backend("a stored ref", e))?,
                ))
            })
            .collect::<DagResult<Vec<_>>>()?;
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(out)
    }

    fn log(&self, name: Option<&RefName>, limit: usize) -> DagResult<Vec<LogEntry>> {
        let key = self.meta_key("log");
        let mut out = Vec::new();
        let page: isize = 512;
        let mut end: isize = -1;
        while out.len() < limit {
            let start = end - page + 1;
            let raw: Vec<String> =
                self.redis
                    .on_slot(slot(key.as_bytes()), "read the changelog", |c, _| {
                        redis::cmd("LRANGE").arg(&key).arg(start).arg(end).query(c)
                    })?;
            if raw.is_empty() {
                break;
            }
            for text in raw.iter().rev() {
                let entry = decode_entry(text)?;
                if name.is_none_or(|n| *n == entry.name) {
                    out.push(entry);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            if (raw.len() as isize) < page {
                break;
            }
            end = start - 1;
        }
        Ok(out)
    }

    fn stats(&self) -> DagResult<VolumeStats> {
        let mut stats = VolumeStats::default();
        self.scan_blocks(true, &mut |b, used| {
            stats.blocks += 1;
            stats.block_bytes += b.size;
            stats.stored_bytes += used.max(b.size);
        })?;
        let refs = self.meta_key("refs");
        let log = self.meta_key("log");
        let (r, l): (u64, u64) =
            self.redis
                .on_slot(slot(refs.as_bytes()), "count refs", |c, _| {
                    redis::pipe()
                        .cmd("HLEN")
                        .arg(&refs)
                        .cmd("LLEN")
                        .arg(&log)
                        .query(c)
                })?;
        stats.refs = r;
        stats.log_entries = l;
        Ok(stats)
    }

    fn preferred_concurrency(&self) -> usize {
        4 * self.redis.masters().len().max(1)
    }
}

/// A changelog entry as the script wrote it (JSON; CIDs as text).
fn decode_entry(text: &str) -> DagResult<LogEntry> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| backend("a changelog entry", e))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let cid = |k: &str| -> DagResult<Option<Cid>> {
        let t = s(k);
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<Cid>()
            .map(Some)
            .map_err(|e| backend("a changelog entry", e))
    };
    Ok(LogEntry {
        id: v.get("id").and_then(serde_json::Value::as_u64).unwrap_or(0),
        name: RefName::new(s("name"))?,
        old: cid("old")?,
        new: cid("new")?,
        time_ns: s("time_ns").parse().unwrap_or(0),
        author: s("author"),
        message: s("message"),
        signature: data_encoding::HEXLOWER
            .decode(s("sig").as_bytes())
            .ok()
            .and_then(|b| Signature::from_bytes(&b)),
    })
}
