//! Local files: confinement to the image directory, non-regular files, reads of headers only.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::*;
use imgchkr_core::{ImageDir, Policy, validate_file};

struct Fixture {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    images: ImageDir,
}

/// `root/images` is the image directory; `root/secret.jpg` lies outside it.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("images");
    fs::create_dir_all(root.join("sub")).unwrap();
    let good = jpeg(&[&app0(), &sof(0xC0, 8, 600, 800, 3)]);
    fs::write(root.join("small.jpg"), &good).unwrap();
    fs::write(root.join("sub/inner.jpg"), &good).unwrap();
    fs::write(tmp.path().join("secret.jpg"), &good).unwrap();
    let images = ImageDir::open(&root).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        images,
    }
}

fn texts(f: &Fixture, path: &str) -> Vec<String> {
    f.images.validate(path, &Policy::default()).error_texts()
}

#[test]
fn files_inside_are_read_by_relative_or_absolute_path() {
    let f = fixture();
    assert!(texts(&f, "small.jpg").is_empty());
    assert!(texts(&f, "sub/inner.jpg").is_empty());
    assert!(texts(&f, "sub/../small.jpg").is_empty());
    assert!(texts(&f, "./sub/./inner.jpg").is_empty());
    let absolute = f.root.join("sub/inner.jpg");
    assert!(texts(&f, absolute.to_str().unwrap()).is_empty());
    let canonical = fs::canonicalize(&f.root).unwrap().join("small.jpg");
    assert!(texts(&f, canonical.to_str().unwrap()).is_empty());
    let report = f.images.validate("small.jpg", &Policy::default());
    assert_eq!(report.dimensions(), Some((800, 600)));
}

#[test]
fn escapes_are_refused_with_the_path_as_given() {
    let f = fixture();
    symlink("../secret.jpg", f.root.join("escape.jpg")).unwrap();
    symlink("/etc/passwd", f.root.join("passwd.jpg")).unwrap();
    symlink(f.root.parent().unwrap(), f.root.join("up")).unwrap();
    let outside = f.root.parent().unwrap().join("secret.jpg");
    let outside = outside.to_str().unwrap();
    for path in [
        "../secret.jpg",
        "sub/../../secret.jpg",
        "escape.jpg",
        "passwd.jpg",
        "up/secret.jpg",
        outside,
        "/etc/passwd",
    ] {
        assert_eq!(
            texts(&f, path),
            [format!("Path is outside the image directory: {path}")],
            "{path}"
        );
    }
}

#[test]
fn missing_files() {
    let f = fixture();
    symlink("nowhere.jpg", f.root.join("dangling.jpg")).unwrap();
    for path in [
        "nope.jpg",
        "sub/nope.jpg",
        "nodir/x.jpg",
        "small.jpg/x",
        "dangling.jpg",
    ] {
        assert_eq!(
            texts(&f, path),
            [format!("File not found: {path}")],
            "{path}"
        );
    }
}

#[test]
fn directories_fifos_devices_and_sockets_are_not_regular_files() {
    let f = fixture();
    // A FIFO with no writer: opening it for a blocking read would hang forever.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        f.root.join("fifo.jpg"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(f.root.join("sock.jpg")).unwrap();
    symlink("sub", f.root.join("dirlink")).unwrap();
    for path in ["sub", ".", "fifo.jpg", "sock.jpg", "dirlink"] {
        assert_eq!(
            texts(&f, path),
            [format!("Not a regular file: {path}")],
            "{path}"
        );
    }
    let root = f.root.to_str().unwrap();
    assert_eq!(texts(&f, root), [format!("Not a regular file: {root}")]);
    // A character device inside the directory (needs root to create: CI runs as root, and a
    // run without it fails here rather than skip the case).
    let zero = f.root.join("zero.jpg");
    let dev = rustix::fs::makedev(1, 5);
    match rustix::fs::mknodat(
        rustix::fs::CWD,
        &zero,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::RUSR,
        dev,
    ) {
        Ok(()) => assert_eq!(texts(&f, "zero.jpg"), ["Not a regular file: zero.jpg"]),
        Err(e) => panic!("mknod of a character device failed (run the tests as root): {e}"),
    }
    // And one outside any image directory, as `imgchkr check` sees it.
    let report =
        imgchkr_core::validate_file(Path::new("/dev/null"), "/dev/null", &Policy::default());
    assert_eq!(report.error_texts(), ["Not a regular file: /dev/null"]);
}

#[test]
fn unreadable_files() {
    let f = fixture();
    let locked = f.root.join("locked.jpg");
    fs::copy(f.root.join("small.jpg"), &locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    if !rustix::process::geteuid().is_root() {
        assert_eq!(texts(&f, "locked.jpg"), ["Permission denied: locked.jpg"]);
        return;
    }
    // Root reads mode-000 files, so run the check again in a child process as `nobody`.
    use std::os::unix::process::CommandExt;
    for dir in [f.root.parent().unwrap(), f.root.as_path()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "unreadable_files_as_nobody", "--test-threads=1"])
        .env(UNREADABLE_DIR, &f.root)
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(status.success(), "the check as nobody failed: {status}");
}

const UNREADABLE_DIR: &str = "IMGCHKR_TEST_UNREADABLE_DIR";

/// The child half of `unreadable_files`: does nothing unless that test started it.
#[test]
fn unreadable_files_as_nobody() {
    let Some(root) = std::env::var_os(UNREADABLE_DIR) else {
        return;
    };
    let images = ImageDir::open(root).unwrap();
    let report = images.validate("locked.jpg", &Policy::default());
    assert_eq!(report.error_texts(), ["Permission denied: locked.jpg"]);
}

#[test]
fn reads_only_the_header_of_a_file_with_large_metadata() {
    let f = fixture();
    let file = jpeg(&[
        &app0(),
        &segment(0xE1, &vec![0xAB; 60_000]),
        &segment(0xE2, &vec![0xCD; 40_000]),
        &dqt(),
        &sof(0xC0, 8, 3000, 4000, 3),
        &dht(),
        &scan_and_eoi(),
    ]);
    fs::write(f.root.join("camera.jpg"), &file).unwrap();
    let report = f.images.validate("camera.jpg", &Policy::default());
    assert_eq!(report.dimensions(), Some((4000, 3000)));
    assert_eq!(report.size, Some(file.len() as u64));
    assert!(report.bytes_read < 4096, "read {} bytes", report.bytes_read);
}

#[test]
fn size_limit_is_inclusive_and_header_checks_still_run() {
    let f = fixture();
    let mut exact = jpeg(&[&sof(0xC0, 8, 1200, 1000, 1)]);
    exact.resize(10_485_760, 0);
    fs::write(f.root.join("exact.jpg"), &exact).unwrap();
    assert_eq!(
        texts(&f, "exact.jpg"),
        ["Image height exceeds maximum (1200/1000)"]
    );
    exact.push(0);
    fs::write(f.root.join("over.jpg"), &exact).unwrap();
    assert_eq!(
        texts(&f, "over.jpg"),
        [
            "File size exceeds maximum (10485761/10485760)",
            "Image height exceeds maximum (1200/1000)"
        ]
    );
}

#[test]
fn unconfined_validation_for_the_command_line() {
    let f = fixture();
    let path = f.root.parent().unwrap().join("secret.jpg");
    let report = validate_file(&path, "secret.jpg", &Policy::default());
    assert!(report.is_valid());
    let missing = validate_file(
        Path::new("/definitely/not/here.jpg"),
        "here.jpg",
        &Policy::default(),
    );
    assert_eq!(missing.error_texts(), ["File not found: here.jpg"]);
    assert_eq!(missing.format(), None);
    let dir = validate_file(&f.root, "images", &Policy::default());
    assert_eq!(dir.error_texts(), ["Not a regular file: images"]);
    let null = validate_file(Path::new("/dev/null"), "/dev/null", &Policy::default());
    assert_eq!(null.error_texts(), ["Not a regular file: /dev/null"]);
}
