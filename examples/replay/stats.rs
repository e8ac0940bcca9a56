//! Latency summaries shared by the replay and scaling tools: nearest-rank percentiles (the
//! same rule as the peer harness's `bench.py`, so the two sides are read alike), resident
//! memory from `/proc`, and the load average recorded with every run.

use serde::Serialize;

/// Percentiles of one timed loop, in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub n: usize,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    /// Calls per second over the loop's wall time (`n / wall`), when the loop had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_s: Option<f64>,
}

/// Summarizes per-call nanoseconds; `wall_s` is the loop's wall time, if it had one.
pub fn summarize(samples_ns: &mut [u64], wall_s: Option<f64>) -> Summary {
    if samples_ns.is_empty() {
        return Summary::default();
    }
    samples_ns.sort_unstable();
    let n = samples_ns.len();
    let pct = |p: f64| {
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        round2(samples_ns[rank.clamp(1, n) - 1] as f64 / 1000.0)
    };
    let total: u128 = samples_ns.iter().map(|&it| u128::from(it)).sum();
    Summary {
        n,
        p50_us: pct(50.0),
        p90_us: pct(90.0),
        p99_us: pct(99.0),
        p999_us: pct(99.9),
        max_us: round2(samples_ns[n - 1] as f64 / 1000.0),
        mean_us: round2(total as f64 / n as f64 / 1000.0),
        per_s: wall_s.map(|wall| round2(n as f64 / wall)),
        wall_s: wall_s.map(round2),
    }
}

pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Resident memory of process `pid` (`self` for this one) in MiB, from `/proc` (Linux);
/// `None` elsewhere.
pub fn rss_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()?;
    Some(round2(kib / 1024.0))
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank_like_bench_py() {
        // 1..=100 µs: nearest rank p50 is the 50th value, p99 the 99th, p99.9 the 100th.
        let mut samples: Vec<u64> = (1..=100).rev().map(|us| us * 1000).collect();
        let summary = summarize(&mut samples, Some(2.0));
        assert_eq!(summary.n, 100);
        assert_eq!(summary.p50_us, 50.0);
        assert_eq!(summary.p90_us, 90.0);
        assert_eq!(summary.p99_us, 99.0);
        assert_eq!(summary.p999_us, 100.0);
        assert_eq!(summary.max_us, 100.0);
        assert_eq!(summary.mean_us, 50.5);
        assert_eq!(summary.per_s, Some(50.0));
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let summary = summarize(&mut [1500], None);
        assert_eq!((summary.p50_us, summary.p999_us), (1.5, 1.5));
        assert_eq!(summary.per_s, None);
    }

    #[test]
    fn no_samples_summarize_to_zero() {
        assert_eq!(summarize(&mut [], None).n, 0);
    }
}
