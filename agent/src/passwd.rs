//! Looks accounts up in the user database with `getpwnam_r` / `getpwuid_r`, which are safe to
//! call from any thread (unlike `getpwnam`).

use std::ffi::{CStr, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// An account from the user database.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: Option<PathBuf>,
}

/// What to look an account up by.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key<'a> {
    Name(&'a CStr),
    Uid(u32),
}

/// The account for `key`, `Ok(None)` when there is none.
pub(crate) fn lookup(key: Key<'_>) -> io::Result<Option<Account>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: every pointer is valid for the duration of the call and `len` is the
        // buffer's real size.
        let rc = unsafe {
            match key {
                Key::Name(name) => libc::getpwnam_r(name.as_ptr(), &mut pwd, ptr, len, &mut result),
                Key::Uid(uid) => libc::getpwuid_r(uid, &mut pwd, ptr, len, &mut result),
            }
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success the string fields point to NUL-terminated strings inside `buf`,
        // which outlives these borrows.
        let text = |p: *const libc::c_char| (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) });
        return Ok(Some(Account {
            name: text(pwd.pw_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: text(pwd.pw_dir).map(|d| PathBuf::from(OsStr::from_bytes(d.to_bytes()))),
        }));
    }
}
