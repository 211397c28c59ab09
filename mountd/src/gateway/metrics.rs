//! `/metrics`: Prometheus text of the gateway's and the store's counters.

use super::*;

/// Prometheus text: requests by endpoint and the store's counts.
pub(super) async fn metrics(State(gw): State<Shared>) -> Response {
    gw.count("metrics");
    let bucket = gw.bucket();
    let stats = blocking(move || bucket.stats().map_err(failure)).await;
    let mut out = String::from(
        "# HELP hydra_gateway_requests_total Requests answered, by endpoint.\n# TYPE hydra_gateway_requests_total counter\n",
    );
    for (i, e) in ENDPOINTS.iter().enumerate() {
        out.push_str(&format!(
            "hydra_gateway_requests_total{{endpoint=\"{e}\"}} {}\n",
            gw.counts[i].load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
    let io = gw.bucket().io_stats();
    let cache = gw.bucket().cache_stats();
    let lookups = cache.hits + cache.misses;
    let ratio = if lookups == 0 {
        0.0
    } else {
        cache.hits as f64 / lookups as f64
    };
    let commits = gw.commits.load(std::sync::atomic::Ordering::Relaxed);
    let commit_s = gw.commit_us.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6;
    for (name, kind, help, value) in [
        (
            "hydra_block_reads_total",
            "counter",
            "Blocks read.",
            io.reads as f64,
        ),
        (
            "hydra_block_read_bytes_total",
            "counter",
            "Bytes of blocks read.",
            io.read_bytes as f64,
        ),
        (
            "hydra_block_writes_total",
            "counter",
            "Blocks written.",
            io.writes as f64,
        ),
        (
            "hydra_block_written_bytes_total",
            "counter",
            "Bytes of blocks written.",
            io.written_bytes as f64,
        ),
        (
            "hydra_block_cache_hits_total",
            "counter",
            "Block reads the cache answered.",
            cache.hits as f64,
        ),
        (
            "hydra_block_cache_misses_total",
            "counter",
            "Block reads that missed the cache.",
            cache.misses as f64,
        ),
        (
            "hydra_block_cache_hit_ratio",
            "gauge",
            "Hits over lookups so far.",
            ratio,
        ),
        (
            "hydra_gateway_commit_seconds_count",
            "counter",
            "Commits made by the gateway.",
            commits as f64,
        ),
        (
            "hydra_gateway_commit_seconds_sum",
            "counter",
            "Time the gateway spent in commits.",
            commit_s,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    if let Some(fs) = &gw.mounted {
        let (count, time) = fs.commit_stats();
        out.push_str(&format!(
            "# HELP hydra_fs_commit_seconds Commits of the mounted filesystem.\n\
             # TYPE hydra_fs_commit_seconds summary\n\
             hydra_fs_commit_seconds_count {count}\n\
             hydra_fs_commit_seconds_sum {}\n",
            time.as_secs_f64()
        ));
    }
    for (name, ops) in &gw.front_ends {
        let front = if name.contains("fuse") { "FUSE" } else { "9P" };
        out.push_str(&format!(
            "# HELP {name} {front} requests served, by operation.\n# TYPE {name} counter\n"
        ));
        for (op, n) in ops.snapshot() {
            out.push_str(&format!("{name}{{op=\"{op}\"}} {n}\n"));
        }
    }
    if let Ok(stats) = stats {
        let sum = |f: fn(&hydra_dag::VolumeStats) -> u64| stats.iter().map(f).sum::<u64>();
        for (name, help, value) in [
            ("hydra_store_blocks", "Blocks stored.", sum(|s| s.blocks)),
            (
                "hydra_store_block_bytes",
                "Bytes of stored blocks.",
                sum(|s| s.block_bytes),
            ),
            ("hydra_store_refs", "Refs.", sum(|s| s.refs)),
            (
                "hydra_store_changelog_entries",
                "Changelog entries.",
                sum(|s| s.log_entries),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            ));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
