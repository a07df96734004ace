//! `cargo bench -p streamit-server`: the same load as `streamit-server bench`
//! (an embedded server on a fresh SQLite file; POST /api/viewer/token and
//! GET /api/viewer/live under concurrent load on loopback). Prints requests/s
//! and p50/p99. `STREAMIT_BENCH_DURATION` (default 10s) and
//! `STREAMIT_BENCH_CONCURRENCY` (default 32) tune it.

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; the libtest filter arguments do not apply here.
    let duration = std::env::var("STREAMIT_BENCH_DURATION").unwrap_or_else(|_| "10s".into());
    let concurrency = std::env::var("STREAMIT_BENCH_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(streamit_server::bench::run(
        streamit_server::bench::BenchArgs {
            url: None,
            host_id: None,
            duration,
            concurrency,
        },
    ))
}
