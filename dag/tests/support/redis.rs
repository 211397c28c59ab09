//! Real `redis-server` processes on loopback for tests: one server, or a
//! Redis Cluster made with `redis-cli --cluster create`; killed on drop.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running deployment.
pub struct Redis {
    _dir: tempfile::TempDir,
    /// `host:port` of every node, masters first as created.
    pub nodes: Vec<String>,
    procs: Vec<Option<Child>>,
}

/// A port for a Redis node, with its cluster bus port (port + 10000)
/// free too. Both lie below the kernel's ephemeral range (32768 up), so
/// the port-0 listeners other tests bind cannot take them meanwhile.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(NEXT.fetch_add(7919, Ordering::Relaxed));
    for i in 0..2768u32 {
        let port = 20_000 + ((seed.wrapping_add(i * 13)) % 2768) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port pair below 32768");
}

fn start(dir: &Path, port: u16, cluster: bool) -> Child {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ])
    .args(["--appendonly", "no", "--protected-mode", "no"])
    .arg("--dir")
    .arg(dir)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if cluster {
        cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1500"])
            .args(["--cluster-replica-validity-factor", "0"])
            .arg("--cluster-config-file")
            .arg(dir.join(format!("nodes-{port}.conf")));
    }
    cmd.spawn()
        .expect("start redis-server (the test command installs the Debian package redis-server)")
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Redis {
    /// One server.
    pub fn single() -> Redis {
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let child = start(dir.path(), port, false);
        wait_for("redis-server", Duration::from_secs(10), || {
            cli(port, &["PING"]).contains("PONG")
        });
        Redis {
            _dir: dir,
            nodes: vec![format!("127.0.0.1:{port}")],
            procs: vec![Some(child)],
        }
    }

    /// A cluster of `masters` masters with `replicas` replicas each.
    pub fn cluster(masters: usize, replicas: usize) -> Redis {
        let dir = tempfile::tempdir().expect("tmp");
        let n = masters * (1 + replicas);
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let procs: Vec<Option<Child>> = ports
            .iter()
            .map(|&p| Some(start(dir.path(), p, true)))
            .collect();
        for &p in &ports {
            wait_for("redis-server", Duration::from_secs(10), || {
                cli(p, &["PING"]).contains("PONG")
            });
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut args = vec!["--cluster".to_string(), "create".to_string()];
        args.extend(nodes.iter().cloned());
        args.extend([
            "--cluster-replicas".to_string(),
            replicas.to_string(),
            "--cluster-yes".to_string(),
        ]);
        let out = Command::new("redis-cli")
            .args(&args)
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for &p in &ports {
            wait_for("the cluster to settle", Duration::from_secs(30), || {
                let info = cli(p, &["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{n}"))
            });
            // Every replica linked to its master, so writes from the start
            // are acknowledged by one.
            wait_for("replicas to link", Duration::from_secs(30), || {
                let info = cli(p, &["INFO", "replication"]);
                info.contains("master_link_status:up")
                    || info.contains(&format!("connected_slaves:{replicas}"))
            });
        }
        Redis {
            _dir: dir,
            nodes,
            procs,
        }
    }

    /// The nodes as a `redis://` URL.
    pub fn url(&self) -> String {
        format!("redis://{}", self.nodes.join(","))
    }

    /// Kills (SIGKILL) the node at `addr`.
    pub fn kill(&mut self, addr: &str) {
        let i = self.nodes.iter().position(|n| n == addr).expect("a node");
        if let Some(mut child) = self.procs[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The master serving `key` now, as `host:port`.
    pub fn master_of(&self, key: &str) -> String {
        let port: u16 = self.nodes[0]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        let slot = cli(port, &["CLUSTER", "KEYSLOT", key]).trim().to_string();
        // CLUSTER NODES: "<id> <ip:port@bus> <flags> <master> ... <slots…>"
        let nodes = cli(port, &["CLUSTER", "NODES"]);
        let slot: u32 = slot.parse().expect("slot");
        for line in nodes.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() < 9 || !parts[2].contains("master") || parts[2].contains("fail") {
                continue;
            }
            for range in &parts[8..] {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>())
                    && (a..=b).contains(&slot)
                {
                    return parts[1].split('@').next().expect("addr").to_string();
                }
            }
        }
        panic!("no master serves slot {slot}: {nodes}");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        for child in self.procs.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
