//! CPU time of processes and of the machine, from /proc (Linux).

/// User + system CPU time so far of process `pid` (`self`: this one), from /proc/PID/stat
/// (Linux; `None` elsewhere). /proc counts in USER_HZ ticks, which Linux fixes at 100 per
/// second.
pub(super) fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at "state" (field 3);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The CPU time of all of `pids` together (`None` for none, or when one cannot be read).
pub(super) fn processes_cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|pid| process_cpu_seconds(&pid.to_string()))
        .sum()
}

/// (busy, total) ticks of all cores from /proc/stat's first line (Linux; `None` elsewhere).
pub(super) fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = values.iter().take(8).sum();
    // idle + iowait.
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_readings_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_cpu_seconds("self").is_some());
            let me = std::process::id();
            assert!(processes_cpu_seconds(&[me, me]).is_some());
            assert_eq!(processes_cpu_seconds(&[]), None);
            let (busy, total) = machine_cpu_ticks().unwrap();
            assert!(busy <= total);
        }
    }
}
