//! Unit tests of the checks and of extraction, on archives the tests build.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::*;
use crate::check::{CENTRAL_HEADER_SIGNATURE, S_IFIFO};
use crate::error::human_size;

/// What to put in a test archive.
enum Item<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

fn build(dir: &Path, items: &[Item]) -> PathBuf {
    let path = dir.join("test.zip");
    let mut zip = ZipWriter::new(File::create(&path).unwrap());
    let options = SimpleFileOptions::default().unix_permissions(0o644);
    for item in items {
        match item {
            Item::File(name, data) => {
                zip.start_file(*name, options).unwrap();
                zip.write_all(data).unwrap();
            }
            Item::Dir(name) => zip.add_directory(*name, options).unwrap(),
            Item::Symlink(name, target) => zip.add_symlink(*name, *target, options).unwrap(),
        }
    }
    zip.finish().unwrap();
    path
}

/// Rewrites every occurrence of `from` in the file (names in local and central headers).
fn patch(path: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = fs::read(path).unwrap();
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    fs::write(path, bytes).unwrap();
}

/// Finds the central directory header of `name` (its last occurrence in the file).
fn central_header(bytes: &[u8], name: &str) -> usize {
    let name = name.as_bytes();
    let at = (0..=bytes.len() - name.len())
        .rev()
        .find(|&i| &bytes[i..i + name.len()] == name)
        .unwrap();
    let header = at - 46;
    assert_eq!(
        &bytes[header..header + 4],
        &CENTRAL_HEADER_SIGNATURE.to_le_bytes()
    );
    header
}

fn set_unix_mode(path: &Path, name: &str, mode: u32) {
    let mut bytes = fs::read(path).unwrap();
    let header = central_header(&bytes, name);
    bytes[header + 38..header + 42].copy_from_slice(&(mode << 16).to_le_bytes());
    fs::write(path, bytes).unwrap();
}

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn extracts_nested_folders_with_fixed_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(
        tmp.path(),
        &[
            Item::File("scene.pov", b"sphere {}"),
            Item::Dir("textures/"),
            Item::File("textures/wood/oak.png", b"png-bytes"),
            Item::File("./inc//colors.inc", b"#declare X = 1;"),
        ],
    );
    let listed = list(&zip, &limits()).unwrap();
    let paths: Vec<&str> = listed.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "scene.pov",
            "textures",
            "textures/wood/oak.png",
            "inc/colors.inc"
        ]
    );
    assert!(listed[1].is_dir);

    let dest = tmp.path().join("out");
    fs::create_dir(&dest).unwrap();
    let extracted = extract(&zip, &dest, &limits()).unwrap();
    assert_eq!(extracted, listed);
    assert_eq!(
        fs::read(dest.join("textures/wood/oak.png")).unwrap(),
        b"png-bytes"
    );
    assert_eq!(
        fs::read(dest.join("inc/colors.inc")).unwrap(),
        b"#declare X = 1;"
    );
    let mode = |p: &str| fs::metadata(dest.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("scene.pov"), 0o644);
    assert_eq!(mode("textures"), 0o755);
    assert_eq!(mode("textures/wood"), 0o755);
}

#[test]
fn refuses_a_file_that_is_not_a_zip() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notes.zip");
    fs::write(&path, "just some text").unwrap();
    let err = list(&path, &limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::NotAZip(_)), "{err}");
    assert!(err.to_string().contains("not a zip file"), "{err}");
}

#[test]
fn refuses_a_truncated_zip() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(tmp.path(), &[Item::File("a.pov", &[b'x'; 500])]);
    let bytes = fs::read(&zip).unwrap();
    fs::write(&zip, &bytes[..bytes.len() - 30]).unwrap();
    assert!(matches!(
        list(&zip, &limits()),
        Err(ArchiveError::NotAZip(_))
    ));
}

#[test]
fn refuses_damaged_entry_data_on_extraction() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("test.zip");
    let mut zip = ZipWriter::new(File::create(&path).unwrap());
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    zip.start_file("a.pov", stored).unwrap();
    zip.write_all(b"camera { location <0,0,-5> }").unwrap();
    zip.finish().unwrap();
    patch(&path, b"location", b"LOCATION");

    list(&path, &limits()).unwrap();
    let dest = tmp.path().join("out");
    fs::create_dir(&dest).unwrap();
    let err = extract(&path, &dest, &limits()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::Corrupt { ref entry, .. } if entry == "a.pov"),
        "{err}"
    );
}

#[test]
fn refuses_absolute_paths() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["/etc/cron.d/evil", "C:/Windows/evil.pov"] {
        let zip = build(tmp.path(), &[Item::File(name, b"x")]);
        let err = list(&zip, &limits()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::AbsolutePath { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn refuses_parent_components() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["../evil.pov", "a/../../evil.pov", "a/b/.."] {
        let zip = build(
            tmp.path(),
            &[Item::File("ok.pov", b"x"), Item::File(name, b"x")],
        );
        let err = list(&zip, &limits()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::ParentDir { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn refuses_names_and_paths_beyond_file_system_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let long_name = format!("{}.inc", "a".repeat(300));
    let deep = format!("{}x.inc", "dir/".repeat(300));
    let cases = [
        (
            long_name.as_str(),
            "304 bytes long, and file systems allow at most 255",
        ),
        (
            deep.as_str(),
            "1205 bytes long, and at most 1024 are allowed",
        ),
    ];
    for (name, reason) in cases {
        let zip = build(
            tmp.path(),
            &[Item::File("ok.pov", b"x"), Item::File(name, b"x")],
        );
        let err = list(&zip, &limits()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::NameTooLong { .. }),
            "{name}: {err}"
        );
        let message = err.to_string();
        assert!(message.contains(reason), "{message}");
        assert!(message.contains(&name[..20]), "names the entry: {message}");
        assert!(message.len() < 300, "quotes a shortened name: {message}");
    }
    let longest = format!("{}.inc", "b".repeat(MAX_NAME_BYTES - 4));
    let zip = build(tmp.path(), &[Item::File(&longest, b"x")]);
    let dest = tmp.path().join("out");
    fs::create_dir(&dest).unwrap();
    extract(&zip, &dest, &limits()).unwrap();
    assert!(dest.join(&longest).is_file());
}

#[test]
fn refuses_backslashes() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(tmp.path(), &[Item::File("..\\..\\evil.pov", b"x")]);
    let err = list(&zip, &limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::Backslash { .. }), "{err}");
}

#[test]
fn refuses_symlinks_and_never_extracts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(
        tmp.path(),
        &[
            Item::Symlink("textures", "/etc"),
            Item::File("textures/passwd", b"x"),
        ],
    );
    let err = list(&zip, &limits()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::Symlink { ref entry } if entry == "textures"),
        "{err}"
    );

    let dest = tmp.path().join("out");
    fs::create_dir(&dest).unwrap();
    assert!(extract(&zip, &dest, &limits()).is_err());
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 0);
}

#[test]
fn refuses_devices_and_pipes() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(
        tmp.path(),
        &[Item::File("scene.pov", b"x"), Item::File("fifo", b"")],
    );
    set_unix_mode(&zip, "fifo", S_IFIFO | 0o644);
    let err = list(&zip, &limits()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::NotRegular { ref entry, kind: "named pipe" } if entry == "fifo"),
        "{err}"
    );
}

#[test]
fn refuses_too_many_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(
        tmp.path(),
        &[
            Item::File("a", b"1"),
            Item::File("b", b"2"),
            Item::File("c", b"3"),
        ],
    );
    let small = Limits {
        max_files: 2,
        ..limits()
    };
    let err = list(&zip, &small).unwrap_err();
    assert!(
        matches!(err, ArchiveError::TooManyFiles { count: 3, limit: 2 }),
        "{err}"
    );
}

#[test]
fn refuses_too_much_declared_data() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(
        tmp.path(),
        &[Item::File("a", &[0; 60]), Item::File("big", &[0; 60])],
    );
    let small = Limits {
        max_total_bytes: 100,
        ..limits()
    };
    let err = list(&zip, &small).unwrap_err();
    assert!(matches!(err, ArchiveError::TooLarge { ref entry, limit: 100 } if entry == "big"));
    assert!(err.to_string().contains("100 bytes"), "{err}");
}

#[test]
fn counts_written_bytes_not_declared_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(tmp.path(), &[Item::File("bomb", &[7; 5000])]);
    // Make the central directory claim the file unpacks to 10 bytes.
    let mut bytes = fs::read(&zip).unwrap();
    let header = central_header(&bytes, "bomb");
    bytes[header + 24..header + 28].copy_from_slice(&10u32.to_le_bytes());
    fs::write(&zip, bytes).unwrap();

    let small = Limits {
        max_total_bytes: 1000,
        ..limits()
    };
    assert_eq!(list(&zip, &small).unwrap()[0].size, 10);
    let dest = tmp.path().join("out");
    fs::create_dir(&dest).unwrap();
    let err = extract(&zip, &dest, &small).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::TooLarge { .. } | ArchiveError::Corrupt { .. }
        ),
        "{err}"
    );
    let left = fs::metadata(dest.join("bomb"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(left <= 1000, "{left} bytes were written");
}

#[test]
fn refuses_paths_that_normalize_to_the_same_file() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(
        tmp.path(),
        &[
            Item::File("a/scene.pov", b"1"),
            Item::File("./a//scene.pov", b"2"),
        ],
    );
    let err = list(&zip, &limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::Duplicate { ref entry } if entry == "a/scene.pov"));
}

#[test]
fn refuses_entries_stored_twice_under_the_same_name() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(
        tmp.path(),
        &[Item::File("scene.pov", b"1"), Item::File("scenf.pov", b"2")],
    );
    patch(&zip, b"scenf.pov", b"scene.pov");
    let err = list(&zip, &limits()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::Duplicate { ref entry } if entry == "scene.pov"),
        "{err}"
    );
}

#[test]
fn refuses_a_file_that_is_also_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(
        tmp.path(),
        &[Item::File("tex", b"1"), Item::File("tex/wood.png", b"2")],
    );
    let err = list(&zip, &limits()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::FileIsFolder { ref file, .. } if file == "tex"),
        "{err}"
    );
}

#[test]
fn refuses_an_archive_without_files() {
    let tmp = tempfile::tempdir().unwrap();
    let only_dirs = build(tmp.path(), &[Item::Dir("textures/")]);
    assert!(matches!(
        list(&only_dirs, &limits()),
        Err(ArchiveError::Empty)
    ));
    let nothing = build(tmp.path(), &[]);
    assert!(matches!(
        list(&nothing, &limits()),
        Err(ArchiveError::Empty)
    ));
}

#[test]
fn never_overwrites_what_is_already_in_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = build(tmp.path(), &[Item::File("inc/colors.inc", b"x")]);
    let dest = tmp.path().join("out");
    fs::create_dir(&dest).unwrap();
    std::os::unix::fs::symlink("/tmp", dest.join("inc")).unwrap();
    let err = extract(&zip, &dest, &limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::Blocked { .. }), "{err}");
}

#[test]
fn sizes_read_well() {
    assert_eq!(DEFAULT_MAX_TOTAL_BYTES, 4 << 30);
    assert_eq!(human_size(8 << 30), "8 GiB");
    assert_eq!(human_size(1536 << 10), "1.5 MiB");
    assert_eq!(human_size(100), "100 bytes");
}
