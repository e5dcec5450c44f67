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
    fn root_is_uid_zero() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        // Real, effective, saved, filesystem: the second is the effective uid.
        let euid = uid_line.split_whitespace().nth(2).unwrap();
        assert_eq!(is_root(), euid == "0");
    }
}
