//! Eviction order, declines and the parsing of budget values.

use std::time::{Duration, SystemTime};

use super::*;

/// A cached input of `bytes` bytes, last used `age` ago.
fn cached(dir: &Path, digit: char, bytes: usize, age: Duration) -> String {
    let hash: String = std::iter::repeat_n(digit, 64).collect();
    let path = dir.join(&hash);
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("scene.pov"), vec![b'x'; bytes]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
    hash
}

fn plenty() -> Space {
    Space {
        total: 1 << 40,
        available: 1 << 39,
    }
}

#[test]
fn least_recently_used_inputs_go_first_and_only_as_many_as_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let old = cached(tmp.path(), 'a', 4000, Duration::from_secs(3000));
    let older = cached(tmp.path(), 'b', 4000, Duration::from_secs(5000));
    let recent = cached(tmp.path(), 'c', 4000, Duration::from_secs(10));
    let budget = DiskBudget {
        max_cache: 12_000,
        min_free: MinFree::Bytes(0),
    };
    // 12,000 cached + 5,000 needed: the two oldest must go, the recent one stays.
    let evicted = budget
        .make_room(tmp.path(), 5000, &["d".repeat(64).as_str()], plenty())
        .unwrap();
    assert_eq!(evicted, [tmp.path().join(&older), tmp.path().join(&old)]);
    assert!(tmp.path().join(&recent).is_dir());

    touch(&tmp.path().join(&recent));
    let none = budget.make_room(tmp.path(), 1000, &[], plenty()).unwrap();
    assert!(none.is_empty(), "{none:?}");
}

#[test]
fn the_input_being_prepared_is_never_evicted() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = cached(tmp.path(), 'a', 4000, Duration::from_secs(9000));
    let other = cached(tmp.path(), 'b', 4000, Duration::from_secs(10));
    let budget = DiskBudget {
        max_cache: 9000,
        min_free: MinFree::Bytes(0),
    };
    let evicted = budget
        .make_room(tmp.path(), 2000, &[keep.as_str()], plenty())
        .unwrap();
    assert_eq!(evicted, [tmp.path().join(&other)]);
}

#[test]
fn an_input_that_cannot_fit_evicts_nothing_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let a = cached(tmp.path(), 'a', 4000, Duration::from_secs(100));
    let budget = DiskBudget {
        max_cache: 10 << 20,
        min_free: MinFree::Bytes(0),
    };
    let err = budget
        .make_room(tmp.path(), 11 << 20, &[], plenty())
        .unwrap_err();
    assert!(
        err.0
            .starts_with("its input needs 11.0 MiB and this PC's disk budget leaves 10.0 MiB")
            && err.0.contains("cache limit 10.0 MiB"),
        "{err}"
    );
    assert!(tmp.path().join(&a).is_dir(), "nothing was evicted");

    // The cache limit is fine, but the disk must keep 10 % free.
    let tight = Space {
        total: 100 << 20,
        available: 12 << 20,
    };
    let budget = DiskBudget::default();
    let err = budget
        .make_room(tmp.path(), 5 << 20, &[], tight)
        .unwrap_err();
    assert!(err.0.contains("10% of the disk kept free"), "{err}");
    assert!(budget.make_room(tmp.path(), 1 << 20, &[], tight).is_ok());
}

#[test]
fn budget_values_parse_and_mistakes_are_named() {
    assert_eq!(MinFree::parse("10%"), Ok(MinFree::Percent(10.0)));
    assert_eq!(MinFree::parse("0%"), Ok(MinFree::Percent(0.0)));
    assert_eq!(MinFree::parse("20G"), Ok(MinFree::Bytes(20 << 30)));
    assert_eq!(MinFree::Percent(10.0).bytes(1000), 100);
    for bad in ["150%", "-5%", "100%", "lots", "", "ten%"] {
        let err = MinFree::parse(bad).unwrap_err();
        assert!(err.contains(bad.trim()), "{bad}: {err}");
    }
    assert!(Space::of(Path::new("/")).unwrap().total > 0);
}
