//! Tests: exit_codes — a failure of the machine is not bad input.
//!
//! `/dev/full` stands in for a full disk: every write to it fails with
//! ENOSPC. (The mapping of each errno is unit-tested in `src/error.rs`.)

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use crate::common;

/// A full disk exits with 74 (not the bad-input 2), says so once, and the
/// device is written, not replaced by a renamed temporary file.
#[test]
fn full_disk_exits_74_with_one_message() {
    let full = Path::new("/dev/full");
    if !std::fs::metadata(full).is_ok_and(|m| m.file_type().is_char_device()) {
        println!("skipped: no /dev/full");
        return;
    }
    let d = common::devel();
    let (code, _, err) = common::primeflow(&[
        "split",
        d.to_str().unwrap(),
        "--task",
        "combination",
        "--out",
        "/dev/full",
    ]);
    assert_eq!(code, 74, "{err}");
    assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
    assert!(err.contains("/dev/full"), "{err}");
    let m = std::fs::metadata(full).unwrap();
    assert!(m.file_type().is_char_device(), "/dev/full was replaced");
    // Bad input still exits with 2.
    let (code, _, err) = common::primeflow(&["info", "no-such-file.h5ad"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}
