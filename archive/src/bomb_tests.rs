//! Tests with a real zip bomb: a few MB that unpack to 2 GiB, written by streaming zeros
//! through the compressor so the test never holds it in memory.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use crate::{ArchiveError, Limits, extract, list};

/// What the bomb's large entry unpacks to.
const BOMB_BYTES: u64 = 2 << 30;

/// A project zip with a small scene and `cache/fluid.bin`, which unpacks to [`BOMB_BYTES`].
fn zip_bomb(dir: &Path) -> PathBuf {
    let path = dir.join("bomb.zip");
    let mut zip = ZipWriter::new(File::create(&path).unwrap());
    let options = SimpleFileOptions::default().unix_permissions(0o644);
    zip.start_file("scene.pov", options).unwrap();
    zip.write_all(b"sphere { 0, 1 pigment { rgb 1 } }").unwrap();
    zip.start_file("cache/fluid.bin", options).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..BOMB_BYTES / zeros.len() as u64 {
        zip.write_all(&zeros).unwrap();
    }
    zip.finish().unwrap();
    path
}

/// Offset of `name`'s central directory header (the name's last occurrence in the file).
fn central_header(path: &Path, name: &str) -> (Vec<u8>, usize) {
    let bytes = fs::read(path).unwrap();
    let name = name.as_bytes();
    let at = (0..=bytes.len() - name.len())
        .rev()
        .find(|&i| &bytes[i..i + name.len()] == name)
        .unwrap();
    (bytes, at - 46)
}

#[test]
fn a_zip_bomb_is_refused_by_entry_before_anything_is_unpacked() {
    let tmp = tempfile::tempdir().unwrap();
    let bomb = zip_bomb(tmp.path());
    let zipped = fs::metadata(&bomb).unwrap().len();
    assert!(zipped < 8 << 20, "the bomb is {zipped} bytes");

    let err = list(&bomb, &Limits::default()).unwrap_err();
    let ArchiveError::Bomb {
        ref entry,
        size,
        max_ratio,
        ..
    } = err
    else {
        panic!("{err}");
    };
    assert_eq!(
        (entry.as_str(), size, max_ratio),
        ("cache/fluid.bin", BOMB_BYTES, 100)
    );
    let message = err.to_string();
    assert!(
        message.starts_with("entry \"cache/fluid.bin\" unpacks to 2 GiB from ")
            && message.contains("may expand at most 100:1"),
        "{message}"
    );

    let dest = tmp.path().join("out");
    fs::create_dir(&dest).unwrap();
    assert!(matches!(
        extract(&bomb, &dest, &Limits::default()),
        Err(ArchiveError::Bomb { .. })
    ));
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 0, "nothing unpacked");
}

#[test]
fn a_zip_bomb_that_lies_about_its_size_is_stopped_while_unpacking() {
    let tmp = tempfile::tempdir().unwrap();
    let bomb = zip_bomb(tmp.path());
    // The central directory now claims the entry unpacks to 1 MiB, which passes every check.
    let (mut bytes, header) = central_header(&bomb, "cache/fluid.bin");
    bytes[header + 24..header + 28].copy_from_slice(&(1u32 << 20).to_le_bytes());
    fs::write(&bomb, bytes).unwrap();
    let listed = list(&bomb, &Limits::default()).unwrap();
    assert_eq!(listed[1].size, 1 << 20);

    let dest = tmp.path().join("out");
    fs::create_dir(&dest).unwrap();
    let err = extract(&bomb, &dest, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::Bomb { ref entry, .. } | ArchiveError::Corrupt { ref entry, .. }
                if entry == "cache/fluid.bin"
        ),
        "{err}"
    );
    assert!(
        !dest.join("cache/fluid.bin").exists(),
        "the partial file is removed"
    );
}

#[test]
fn small_entries_may_compress_as_well_as_they_like() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("text.zip");
    let mut zip = ZipWriter::new(File::create(&path).unwrap());
    zip.start_file("blank.inc", SimpleFileOptions::default())
        .unwrap();
    zip.write_all(&vec![b' '; 4 << 20]).unwrap();
    zip.finish().unwrap();
    let dest = tmp.path().join("out");
    fs::create_dir(&dest).unwrap();
    let extracted = extract(&path, &dest, &Limits::default()).unwrap();
    assert_eq!(extracted[0].size, 4 << 20);

    let strict = Limits {
        ratio_floor_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = list(&path, &strict).unwrap_err();
    assert!(
        matches!(err, ArchiveError::Bomb { ref entry, .. } if entry == "blank.inc"),
        "{err}"
    );
}
