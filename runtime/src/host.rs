//! Facts about this host and process that both binaries ask for.

/// This PC's host name, or `agent` when it has none.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_owned(),
        _ => "agent".to_owned(),
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this process may start programs as another user: it runs as root, or holds
/// `CAP_SETUID` and `CAP_SETGID` (a service user given them as ambient capabilities).
pub fn can_switch_users() -> bool {
    const CAP_SETGID: u32 = 6;
    const CAP_SETUID: u32 = 7;
    is_root()
        || std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| effective_capabilities(&status))
            .is_some_and(|caps| caps & (1 << CAP_SETUID) != 0 && caps & (1 << CAP_SETGID) != 0)
}

/// The `CapEff:` mask of a `/proc/<pid>/status` text.
fn effective_capabilities(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_matches_the_kernels() {
        // The kernel's own view, read without libc.
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let kernel = kernel.trim();
        let expected = if kernel.is_empty() { "agent" } else { kernel };
        assert_eq!(hostname(), expected);
    }

    #[test]
    fn effective_capabilities_are_read_from_proc_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t00000000000000c0\n";
        assert_eq!(effective_capabilities(status), Some(0xc0));
        assert_eq!(effective_capabilities("Name:\tx\n"), None);
        assert_eq!(effective_capabilities("CapEff:\tzz\n"), None);
        // Root can; this test machine runs tests as root or not, either way it agrees.
        if is_root() {
            assert!(can_switch_users());
        }
    }

    #[test]
    fn root_is_uid_zero() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        // Real, effective, saved, filesystem: the second is the effective uid.
        let euid = uid_line.split_whitespace().nth(2).unwrap();
        assert_eq!(is_root(), euid == "0");
    }
}
