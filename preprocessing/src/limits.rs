//! The memory ceiling: the most bytes one volume (an image read from disk, a resampled case, a
//! resampled prediction) may take, checked before the volume is allocated so that a forged
//! header or an absurd spacing gives a clear error instead of exhausting the machine.
//!
//! The ceiling is, in order of precedence: what [`set_volume_ceiling`] set (the binary's
//! `--max-volume-gb`), the environment variable [`CEILING_ENV`] (in GB), or a quarter of the
//! memory this process may use (the smallest of physical memory, the address-space limit
//! `ulimit -v` and the cgroup's `memory.max`), since a stage holds a few volumes at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Environment variable holding the ceiling in GB (10^9 bytes), e.g. `AUTOSEG_MAX_VOLUME_GB=40`.
pub const CEILING_ENV: &str = "AUTOSEG_MAX_VOLUME_GB";

/// Bytes per GB as the ceiling is given and reported (decimal, as disk sizes are).
const GB: f64 = 1e9;
/// The default ceiling when the machine's memory cannot be read (Linux `/proc` missing).
const FALLBACK_CEILING: u64 = 16_000_000_000;

/// Set by [`set_volume_ceiling`]; 0 = not set.
static SET_CEILING: AtomicU64 = AtomicU64::new(0);
/// The ceiling from the environment or the machine, computed once.
static DEFAULT_CEILING: OnceLock<u64> = OnceLock::new();

/// A volume would need more memory than the ceiling allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "needs {} of memory, above the per-volume ceiling of {}; if the machine has the memory, raise the ceiling with --max-volume-gb or {CEILING_ENV}",
    gb(u128::from(*bytes)), gb(u128::from(*ceiling))
)]
pub struct OverCeiling {
    /// Bytes the volume needs (saturating at `u64::MAX`).
    pub bytes: u64,
    /// The ceiling in force.
    pub ceiling: u64,
}

/// Sets the ceiling for this process (bytes; overrides the environment and the default).
pub fn set_volume_ceiling(bytes: u64) {
    SET_CEILING.store(bytes.max(1), Ordering::Relaxed);
}

/// The ceiling in force, in bytes.
pub fn volume_ceiling() -> u64 {
    match SET_CEILING.load(Ordering::Relaxed) {
        0 => *DEFAULT_CEILING.get_or_init(default_ceiling),
        set => set,
    }
}

/// Refuses `bytes` above the ceiling.
///
/// # Errors
/// [`OverCeiling`] with the bytes asked for and the ceiling.
pub fn check_volume_bytes(bytes: u128) -> Result<(), OverCeiling> {
    let ceiling = volume_ceiling();
    if bytes > u128::from(ceiling) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        return Err(OverCeiling { bytes, ceiling });
    }
    Ok(())
}

/// Bytes of `channels` volumes of `shape` with `bytes_per_voxel` each, without overflow
/// (saturating at `u128::MAX`, which every ceiling refuses).
pub fn volume_bytes(channels: usize, shape: [usize; 3], bytes_per_voxel: usize) -> u128 {
    shape
        .iter()
        .chain([&channels, &bytes_per_voxel])
        .fold(1u128, |acc, &n| acc.saturating_mul(n as u128))
}

/// `bytes` in GB with one decimal (two below 1 GB), e.g. `80.5 GB`.
pub fn gb(bytes: u128) -> String {
    let value = bytes as f64 / GB;
    if value < 1.0 {
        format!("{value:.2} GB")
    } else {
        format!("{value:.1} GB")
    }
}

/// Parses a ceiling in GB (a positive finite number) into bytes.
///
/// # Errors
/// A text naming the value when it is not a positive number.
pub fn parse_gb(text: &str) -> Result<u64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok((v * GB).min(u64::MAX as f64) as u64),
        _ => Err(format!("{text:?} is not a positive number of GB")),
    }
}

fn default_ceiling() -> u64 {
    if let Ok(text) = std::env::var(CEILING_ENV) {
        match parse_gb(&text) {
            Ok(bytes) => return bytes,
            Err(reason) => tracing::warn!("{CEILING_ENV} ignored: {reason}"),
        }
    }
    usable_memory().map_or(FALLBACK_CEILING, |bytes| bytes / 4)
}

/// The memory this process may use: the smallest of physical memory, `ulimit -v` and the
/// cgroup v2 `memory.max`, each where Linux reports it.
fn usable_memory() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let physical = read("/proc/meminfo").and_then(|t| meminfo_total(&t));
    let address_space = read("/proc/self/limits").and_then(|t| address_space_limit(&t));
    let cgroup = read("/sys/fs/cgroup/memory.max").and_then(|t| t.trim().parse::<u64>().ok());
    [physical, address_space, cgroup]
        .into_iter()
        .flatten()
        .min()
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The soft `Max address space` of `/proc/self/limits`, in bytes (`None` when unlimited).
fn address_space_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max address space"))?;
    let soft = line["Max address space".len()..]
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let meminfo = "MemTotal:       24570000 kB\nMemFree:  100 kB\n";
        assert_eq!(meminfo_total(meminfo), Some(24_570_000 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max address space         8589934592           unlimited            bytes     \n";
        assert_eq!(address_space_limit(limits), Some(8_589_934_592));
        let unlimited =
            "Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(address_space_limit(unlimited), None);
    }

    #[test]
    fn sizes_do_not_overflow_and_read_as_gb() {
        assert_eq!(volume_bytes(2, [3, 4, 5], 4), 480);
        assert_eq!(volume_bytes(1, [usize::MAX; 3], 8), u128::MAX);
        assert_eq!(gb(80_530_636_800), "80.5 GB");
        assert_eq!(gb(250_000_000), "0.25 GB");
        assert_eq!(parse_gb("2.5"), Ok(2_500_000_000));
        assert!(parse_gb("-1").is_err() && parse_gb("lots").is_err());
        let text = OverCeiling {
            bytes: 80_530_636_800,
            ceiling: 6_000_000_000,
        }
        .to_string();
        assert!(text.starts_with("needs 80.5 GB of memory, above the per-volume ceiling of 6.0 GB"));
        assert!(text.contains("--max-volume-gb") && text.contains(CEILING_ENV));
    }
}
