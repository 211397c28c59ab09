//! Talking to Redis, one server or a Redis Cluster: which node holds a
//! key's slot, a small pool of connections per node, and retries that
//! ride out redirections and failovers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{Connection, ErrorKind, RedisError, RedisResult, Value};

use crate::error::{DagError, DagResult};

/// Slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// CRC16/XMODEM, the key hash of Redis Cluster.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`: its hash tag (`{…}`) when it has a non-empty one.
pub fn slot(key: &[u8]) -> usize {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    usize::from(crc16(tagged.unwrap_or(key))) % SLOTS
}

/// Who serves which slots.
#[derive(Debug, Default)]
struct Topology {
    /// Master address of each slot (empty: unknown).
    masters: Vec<String>,
    /// Replicas each master has.
    replicas: HashMap<String, usize>,
    /// When a master last reported no replica (looked at again after
    /// [`RECOUNT`], since a replica may still have been connecting).
    counted: HashMap<String, Instant>,
}

/// How long a master's "no replicas" answer stands before it is asked again.
const RECOUNT: Duration = Duration::from_secs(1);

/// A Redis deployment as one client sees it.
pub struct Redis {
    seeds: Vec<String>,
    /// How long an operation keeps retrying while nodes fail over.
    patience: Duration,
    topology: Mutex<Topology>,
    pools: Mutex<HashMap<String, Arc<Mutex<Vec<Connection>>>>>,
    /// Whether the deployment is a cluster (else one server).
    cluster: bool,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("seeds", &self.seeds)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// Whether an error is one that retrying after a topology refresh cures.
fn transient(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Moved
            | ErrorKind::Ask
            | ErrorKind::TryAgain
            | ErrorKind::ClusterDown
            | ErrorKind::MasterDown
            | ErrorKind::IoError
            | ErrorKind::BusyLoadingError
    ) || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.to_string().contains("READONLY")
}

/// A failed Redis call as a block-layer error.
pub fn backend(context: &str, e: impl std::fmt::Display) -> DagError {
    DagError::Other(format!("redis: {context}: {e}"))
}

impl Redis {
    /// Connects to the deployment that `seeds` (`host:port`) belong to.
    pub fn connect(seeds: Vec<String>, patience: Duration) -> DagResult<Redis> {
        if seeds.is_empty() {
            return Err(DagError::Other("redis: no node addresses given".into()));
        }
        let mut redis = Redis {
            seeds,
            patience,
            topology: Mutex::new(Topology::default()),
            pools: Mutex::new(HashMap::new()),
            cluster: false,
        };
        let mut last = None;
        for seed in redis.seeds.clone() {
            match redis.with_node(&seed, |c| {
                redis::cmd("INFO").arg("cluster").query::<String>(c)
            }) {
                Ok(info) => {
                    redis.cluster = info.contains("cluster_enabled:1");
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(backend(
                &format!("cannot reach {}", redis.seeds.join(",")),
                e,
            ));
        }
        redis.refresh()?;
        Ok(redis)
    }

    /// Runs `f` on a pooled connection to `addr`.
    fn with_node<T>(
        &self,
        addr: &str,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let pool = {
            let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            pools.entry(addr.to_string()).or_default().clone()
        };
        let taken = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => {
                let client = redis::Client::open(format!("redis://{addr}/"))?;
                let c = client.get_connection_with_timeout(Duration::from_secs(2))?;
                c.set_read_timeout(Some(Duration::from_secs(10)))?;
                c.set_write_timeout(Some(Duration::from_secs(10)))?;
                c
            }
        };
        let result = f(&mut conn);
        // A connection that failed may be half-read: drop it.
        let keep = match &result {
            Ok(_) => true,
            Err(e) => !transient(e) && !conn_broken(e),
        };
        if keep {
            pool.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        }
        result
    }

    /// Reloads who serves which slots.
    fn refresh(&self) -> DagResult<()> {
        let mut topology = Topology {
            masters: vec![String::new(); SLOTS],
            ..Topology::default()
        };
        if !self.cluster {
            let addr = self.seeds[0].clone();
            let replicas = self
                .connected_replicas(&addr)
                .map_err(|e| backend("INFO replication", e))?;
            topology.masters = vec![addr.clone(); SLOTS];
            topology.replicas.insert(addr, replicas);
            *self.topology.lock().unwrap_or_else(|e| e.into_inner()) = topology;
            return Ok(());
        }
        let mut candidates: Vec<String> = {
            let known = self.topology.lock().unwrap_or_else(|e| e.into_inner());
            let mut v: Vec<String> = known.replicas.keys().cloned().collect();
            v.extend(self.seeds.iter().cloned());
            v
        };
        candidates.dedup();
        let mut last = None;
        for node in candidates {
            match self.with_node(&node, |c| {
                redis::cmd("CLUSTER").arg("SLOTS").query::<Value>(c)
            }) {
                Ok(Value::Array(ranges)) if !ranges.is_empty() => {
                    for range in ranges {
                        let Value::Array(parts) = range else { continue };
                        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(master)) =
                            (parts.first(), parts.get(1), parts.get(2))
                        else {
                            continue;
                        };
                        let Some(addr) = node_addr(master) else {
                            continue;
                        };
                        for s in *start as usize..=(*end as usize).min(SLOTS - 1) {
                            topology.masters[s] = addr.clone();
                        }
                        topology.replicas.insert(addr, 0);
                    }
                    // Each master's own count of live replicas (what WAIT
                    // can count on); a slot map may lag behind it.
                    for (addr, replicas) in topology.replicas.iter_mut() {
                        *replicas = self.connected_replicas(addr).unwrap_or(0);
                    }
                    *self.topology.lock().unwrap_or_else(|e| e.into_inner()) = topology;
                    return Ok(());
                }
                Ok(_) => last = Some("no slots assigned".to_string()),
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(backend(
            "cannot learn the cluster's slots",
            last.unwrap_or_else(|| "no node answered".into()),
        ))
    }

    /// How many replicas are connected to the master at `addr`.
    fn connected_replicas(&self, addr: &str) -> RedisResult<usize> {
        let info = self.with_node(addr, |c| {
            redis::cmd("INFO").arg("replication").query::<String>(c)
        })?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }

    /// The master serving `slot`, and how many replicas it has. A master
    /// that had none is asked again now and then: a write must wait for a
    /// replica that connected since.
    fn master_of(&self, slot: usize) -> Option<(String, usize)> {
        let (addr, replicas, recount) = {
            let mut t = self.topology.lock().unwrap_or_else(|e| e.into_inner());
            let addr = t.masters.get(slot).filter(|a| !a.is_empty())?.clone();
            let replicas = t.replicas.get(&addr).copied().unwrap_or(0);
            let now = Instant::now();
            let stale = t
                .counted
                .get(&addr)
                .is_none_or(|at| now.duration_since(*at) >= RECOUNT);
            let recount = replicas == 0 && stale;
            if recount {
                t.counted.insert(addr.clone(), now);
            }
            (addr, replicas, recount)
        };
        if !recount {
            return Some((addr, replicas));
        }
        let replicas = self.connected_replicas(&addr).unwrap_or(0);
        let mut t = self.topology.lock().unwrap_or_else(|e| e.into_inner());
        if t.masters.get(slot) == Some(&addr) {
            t.replicas.insert(addr.clone(), replicas);
        }
        Some((addr, replicas))
    }

    /// Runs `f(connection, replicas)` on the master of `slot`, retrying
    /// through redirections and failovers for up to the patience.
    pub fn on_slot<T>(
        &self,
        slot: usize,
        what: &str,
        mut f: impl FnMut(&mut Connection, usize) -> RedisResult<T>,
    ) -> DagResult<T> {
        let deadline = Instant::now() + self.patience;
        let mut pause = Duration::from_millis(50);
        loop {
            let result = match self.master_of(slot) {
                Some((addr, replicas)) => self.with_node(&addr, |c| f(c, replicas)),
                None => Err(RedisError::from((
                    ErrorKind::ClusterDown,
                    "slot not served",
                ))),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) && Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                    let _ = self.refresh();
                }
                Err(e) => return Err(backend(what, e)),
            }
        }
    }

    /// Groups `keys` (by index) by the slot's master, for batching.
    pub fn by_master(&self, keys: &[Vec<u8>]) -> Vec<(usize, Vec<usize>)> {
        let mut groups: HashMap<String, (usize, Vec<usize>)> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let s = slot(key);
            let addr = self.master_of(s).map(|(a, _)| a).unwrap_or_default();
            groups
                .entry(addr)
                .or_insert_with(|| (s, Vec::new()))
                .1
                .push(i);
        }
        groups.into_values().collect()
    }

    /// Every master's address.
    pub fn masters(&self) -> Vec<String> {
        let t = self.topology.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<String> = t
            .masters
            .iter()
            .filter(|a| !a.is_empty())
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Runs `f` on the node at `addr` (for per-node scans), retrying while
    /// it is unreachable within the patience.
    pub fn on_node<T>(
        &self,
        addr: &str,
        what: &str,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> DagResult<T> {
        let deadline = Instant::now() + self.patience;
        loop {
            match self.with_node(addr, &mut f) {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(backend(what, e)),
            }
        }
    }
}

fn conn_broken(e: &RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error()
}

/// `host:port` of a CLUSTER SLOTS node entry.
fn node_addr(v: &Value) -> Option<String> {
    let Value::Array(parts) = v else { return None };
    let host = match parts.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let Value::Int(port) = parts.get(1)? else {
        return None;
    };
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_what_redis_computes() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        assert_eq!(slot(b"{}x"), usize::from(crc16(b"{}x")) % SLOTS);
    }
}
