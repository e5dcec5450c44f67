//! Landlock confinement of a renderer: what a scene may read, write and reach on the network.
//!
//! A submitted scene is a program (POV-Ray's SDL has `#fopen`/`#read`/`#write`, a `.blend` can
//! carry Python), so a renderer must not read the agent's credentials or the person's files, nor
//! write outside its lease folder. [`Confinement::prepare`] builds the Landlock ruleset in the
//! agent (opening paths and allocating is not allowed in the forked child), and
//! [`Confinement::restrict`] is the one async-signal-safe step the child takes before `exec`:
//! `PR_SET_NO_NEW_PRIVS` and `landlock_restrict_self`.
//!
//! The rules: read (and execute) the system directories and the renderer's own installation,
//! read the job's input, read and write the lease folder (also the renderer's `$HOME` and
//! `$TMPDIR`), write `/dev/null`; no TCP bind or connect where the kernel has Landlock ABI 4.
//! Where the kernel has no Landlock (before 5.13, or disabled at boot) renders still run,
//! unconfined, and the agent says so once in its log.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const CREATE_RULESET_VERSION: libc::c_uint = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
/// Every access right of ABI 1 (bits 0–12: execute … make symlink).
const FS_ABI1: u64 = (1 << 13) - 1;
const FS_REFER: u64 = 1 << 13;
const FS_TRUNCATE: u64 = 1 << 14;
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;

const READ: u64 = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR;

/// System directories every renderer may read: programs, libraries, fonts, locale data,
/// `/proc` and `/sys` for CPU counts, `/dev` for `/dev/urandom`. Not `/home`, `/root`, `/tmp`,
/// `/run`, `/var` or `/srv`, where people's files and the agent's own live.
const SYSTEM_READ: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix", "/gnu",
    "/snap", "/proc", "/sys", "/dev",
];

/// Devices a renderer may open for writing: the null devices, and the GPUs Cycles renders on
/// (plus `/dev/nvidia*`, found when the ruleset is built). Device ioctls stay unrestricted
/// (Landlock ABI 5's `IOCTL_DEV` is not handled) because GPU drivers live on them.
const DEVICE_WRITE: &[&str] = &["/dev/null", "/dev/zero", "/dev/dri", "/dev/kfd"];

/// `struct landlock_ruleset_attr` (ABI 4 layout: the kernel reads only the size it is given).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
}

/// `struct landlock_path_beneath_attr`, packed as in the kernel's header.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// What a renderer may touch.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Read-only (and executable) trees: the renderer's installation, the job's input.
    pub read: Vec<PathBuf>,
    /// Read-write trees: the lease folder.
    pub write: Vec<PathBuf>,
}

/// A ready Landlock ruleset, or the reason there is none.
#[derive(Debug)]
pub struct Confinement {
    ruleset: Option<OwnedFd>,
    abi: i32,
}

/// The Landlock ABI version this kernel offers, or `None` without Landlock.
pub fn abi_version() -> Option<i32> {
    // SAFETY: plain system call; a null attribute with size 0 and the version flag only asks.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    (abi > 0).then_some(abi as i32)
}

impl Confinement {
    /// Builds the ruleset for `access` plus the system directories. Without Landlock in the
    /// kernel the confinement does nothing (and [`Confinement::is_active`] is false); any other
    /// failure is an error, because an unconfined renderer must be a known state, not an
    /// accident.
    pub fn prepare(access: &Access) -> io::Result<Confinement> {
        let Some(abi) = abi_version() else {
            return Ok(Confinement {
                ruleset: None,
                abi: 0,
            });
        };
        let mut fs = FS_ABI1;
        if abi >= 2 {
            fs |= FS_REFER;
        }
        if abi >= 3 {
            fs |= FS_TRUNCATE;
        }
        let attr = RulesetAttr {
            handled_access_fs: fs,
            handled_access_net: NET_BIND_TCP | NET_CONNECT_TCP,
        };
        // Before ABI 4 the kernel knows only the first field, and refuses a larger size.
        let size = if abi >= 4 {
            std::mem::size_of::<RulesetAttr>()
        } else {
            std::mem::size_of::<u64>()
        };
        // SAFETY: `attr` outlives the call and `size` does not exceed it.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size,
                0u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let everything = fs;
        // A directory's rights that make no sense on a file are refused by the kernel there.
        let file_rights = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | (fs & FS_TRUNCATE);
        for dir in SYSTEM_READ {
            allow(&ruleset, Path::new(dir), READ, file_rights, false)?;
        }
        let nvidia = std::fs::read_dir("/dev")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .is_some_and(|name| name.as_bytes().starts_with(b"nvidia"))
            });
        let devices = DEVICE_WRITE.iter().map(PathBuf::from).chain(nvidia);
        for dev in devices {
            let rights = FS_READ_FILE | FS_READ_DIR | FS_WRITE_FILE | (fs & FS_TRUNCATE);
            allow(&ruleset, &dev, rights, file_rights, false)?;
        }
        for path in &access.read {
            allow(&ruleset, path, READ, file_rights, true)?;
        }
        for path in &access.write {
            allow(&ruleset, path, everything, file_rights, true)?;
        }
        Ok(Confinement {
            ruleset: Some(ruleset),
            abi,
        })
    }

    /// Whether renders are really confined (the kernel has Landlock).
    pub fn is_active(&self) -> bool {
        self.ruleset.is_some()
    }

    /// Whether the network rules are in force too (Landlock ABI 4, Linux 6.7).
    pub fn blocks_tcp(&self) -> bool {
        self.is_active() && self.abi >= 4
    }

    /// The raw ruleset descriptor for [`restrict_self`], `-1` when inactive.
    pub fn raw_fd(&self) -> libc::c_int {
        self.ruleset.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }
}

/// The confinement for one render: `program`'s installation and `input` readable, `out_dir`
/// writable. `None` (after one logged warning per agent) where the kernel lacks Landlock.
pub fn for_render(program: &Path, input: &Path, out_dir: &Path) -> io::Result<Option<Confinement>> {
    let mut read = vec![input.to_path_buf()];
    // A Blender unpacked from its tarball keeps its Python and add-ons beside the executable.
    if let Some(dir) = find_program(program)
        .and_then(|p| p.canonicalize().ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        read.push(dir);
    }
    let confinement = Confinement::prepare(&Access {
        read,
        write: vec![out_dir.to_path_buf()],
    })?;
    if confinement.is_active() {
        return Ok(Some(confinement));
    }
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "this kernel has no Landlock (Linux 5.13 or later with `landlock` in the `lsm=` boot \
             list): renderers run unconfined and a scene can read and write whatever the render \
             user can"
        );
    });
    Ok(None)
}

/// `program` itself when it names a path, else the first match on `$PATH`.
fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Confines the calling process with the ruleset `fd` (from [`Confinement::raw_fd`]); `-1`
/// does nothing. Only async-signal-safe system calls: meant for the child between fork and exec.
pub fn restrict_self(fd: libc::c_int) -> io::Result<()> {
    if fd < 0 {
        return Ok(());
    }
    // SAFETY: plain system calls on an open descriptor.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Adds a rule giving `rights` beneath `path` (`file_rights` masks them when it is a file).
/// A system path that does not exist is skipped; a job path that does not exist is an error.
fn allow(
    ruleset: &OwnedFd,
    path: &Path,
    rights: u64,
    file_rights: u64,
    required: bool,
) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: a valid C string; O_PATH opens without reading.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        if !required && err.kind() == io::ErrorKind::NotFound {
            return Ok(());
        }
        return Err(io::Error::new(
            err.kind(),
            format!(
                "cannot open {} for the renderer's confinement: {err}",
                path.display()
            ),
        ));
    }
    // SAFETY: `open` just returned this descriptor.
    let parent = unsafe { OwnedFd::from_raw_fd(fd) };
    let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
    let attr = PathBeneathAttr {
        allowed_access: if is_dir { rights } else { rights & file_rights },
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: `attr` and both descriptors are valid for the call.
    let done = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if done != 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(
            err.kind(),
            format!("cannot add a Landlock rule for {}: {err}", path.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_job_path_is_an_error_and_a_missing_system_path_is_not() {
        if abi_version().is_none() {
            eprintln!("SKIPPED: this kernel has no Landlock; nothing to check");
            return;
        }
        let missing = PathBuf::from("/nonexistent-idlefarm-input");
        let err = Confinement::prepare(&Access {
            read: vec![missing],
            write: Vec::new(),
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-idlefarm-input"),
            "{err}"
        );
        // /gnu and /snap are in the system list and absent on most machines.
        let ok = Confinement::prepare(&Access::default()).unwrap();
        assert!(ok.is_active());
        assert!(ok.raw_fd() >= 0);
    }
}
