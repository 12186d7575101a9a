//! `imgchkr check`: JSON lines, human lines, exit statuses.

mod common;

use std::process::Command;

use common::{jpeg_header, real_jpeg, real_png};
use serde_json::{Value, json};

fn check(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_imgchkr"))
        .current_dir(dir)
        .arg("check")
        .args(args)
        .env_remove("IMGCHKR_MAX_WIDTH")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn json_lines_in_argument_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.jpg"), real_jpeg(32, 16)).unwrap();
    std::fs::write(dir.path().join("big.jpg"), jpeg_header(1800, 1200)).unwrap();
    std::fs::write(dir.path().join("pic.jpg"), real_png(5, 5)).unwrap();
    std::fs::write(dir.path().join("trunc.jpg"), [0xFF, 0xD8, 0xFF]).unwrap();
    let (code, out, _) = check(
        dir.path(),
        &[
            "--json",
            "ok.jpg",
            "big.jpg",
            "missing.jpg",
            "pic.jpg",
            "trunc.jpg",
        ],
    );
    assert_eq!(code, Some(1));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[0],
        json!({"path": "ok.jpg", "valid": true, "format": "jpeg", "width": 32, "height": 16, "errors": []})
    );
    assert_eq!(
        lines[1],
        json!({"path": "big.jpg", "valid": false, "format": "jpeg", "width": 1800, "height": 1200,
               "errors": ["Image width exceeds maximum (1800/1000)", "Image height exceeds maximum (1200/1000)"]})
    );
    assert_eq!(
        lines[2],
        json!({"path": "missing.jpg", "valid": false, "format": null, "width": null, "height": null,
               "errors": ["File not found: missing.jpg"]})
    );
    assert_eq!(lines[3]["format"], "png");
    assert_eq!(lines[3]["valid"], false);
    assert_eq!(lines[3]["errors"][0], "Not a JPEG (png)");
    assert_eq!(lines[4]["format"], "jpeg");
    assert!(lines[4]["width"].is_null());
    assert!(
        lines[4]["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("Invalid JPEG header")
    );
}

#[test]
fn exit_statuses_limits_and_human_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.jpg"), jpeg_header(1800, 1200)).unwrap();
    let (code, out, _) = check(
        dir.path(),
        &[
            "--json",
            "--max-width",
            "2000",
            "--max-height",
            "1200",
            "big.jpg",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = check(dir.path(), &["big.jpg"]);
    assert_eq!(code, Some(1));
    assert_eq!(out.lines().count(), 1);
    assert!(out.contains("big.jpg") && out.contains("Image width exceeds maximum (1800/1000)"));
    let (code, _, _) = check(dir.path(), &["--max-bytes", "10", "big.jpg"]);
    assert_eq!(code, Some(1));
    let (code, _, err) = check(dir.path(), &[]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, _) = check(dir.path(), &["--bogus", "big.jpg"]);
    assert_eq!(code, Some(2));
}

#[test]
fn formats_and_decode_verification_widen_and_deepen_the_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pic.png"), real_png(5, 4)).unwrap();
    let jpeg = real_jpeg(64, 48);
    std::fs::write(dir.path().join("cut.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();

    // Default: JPEG only, yet the PNG's format and dimensions are reported.
    let (code, out, _) = check(dir.path(), &["--json", "pic.png"]);
    assert_eq!(code, Some(1));
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        line,
        json!({"path": "pic.png", "valid": false, "format": "png", "width": 5, "height": 4,
               "errors": ["Not a JPEG (png)"]})
    );
    let (code, out, _) = check(dir.path(), &["--json", "--formats", "jpeg,png", "pic.png"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = check(dir.path(), &["--json", "--formats", "gif,webp", "pic.png"]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("Format not allowed (png); allowed: gif, webp"),
        "{out}"
    );
    let (code, _, err) = check(dir.path(), &["--formats", "tiff", "pic.png"]);
    assert_eq!(code, Some(2), "{err}");

    // Header-only passes a JPEG cut inside its scan; --verify decode fails it.
    let (code, _, _) = check(dir.path(), &["cut.jpg"]);
    assert_eq!(code, Some(0));
    let (code, out, _) = check(dir.path(), &["--json", "--verify", "decode", "cut.jpg"]);
    assert_eq!(code, Some(1));
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        line["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("Corrupt image data: "),
        "{out}"
    );
}

/// A real JPEG with `junk` inserted right after its first segment (APP0), where the next
/// marker should start.
fn with_junk_after_app0(jpeg: &[u8], junk: &[u8]) -> (Vec<u8>, usize) {
    let at = 4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    let mut out = jpeg[..at].to_vec();
    out.extend_from_slice(junk);
    out.extend_from_slice(&jpeg[at..]);
    (out, at)
}

#[test]
fn extraneous_bytes_warn_by_default_and_fail_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    let (junk, at) = with_junk_after_app0(&real_jpeg(32, 16), b"hello");
    std::fs::write(dir.path().join("junk.jpg"), &junk).unwrap();
    std::fs::write(dir.path().join("ok.jpg"), real_jpeg(8, 8)).unwrap();
    // The marker after the junk is the encoder's second segment's.
    let next = junk[at + 5 + 1];
    let warning = format!("Skipped 5 extraneous bytes at offset {at} before marker 0xFF{next:02X}");

    // Default: libjpeg's reading, valid, with the warning; a clean file's line has no
    // `warnings` field at all.
    let (code, out, _) = check(dir.path(), &["--json", "junk.jpg", "ok.jpg"]);
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        json!({"path": "junk.jpg", "valid": true, "format": "jpeg", "width": 32, "height": 16,
               "errors": [], "warnings": [warning]})
    );
    assert_eq!(
        lines[1],
        json!({"path": "ok.jpg", "valid": true, "format": "jpeg", "width": 8, "height": 8, "errors": []})
    );
    let (code, out, _) = check(dir.path(), &["junk.jpg"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out.trim(),
        format!("junk.jpg: valid (jpeg 32x16) (warning: {warning})")
    );

    // --strict: today's T.81 refusal, no warning.
    let (code, out, _) = check(dir.path(), &["--json", "--strict", "junk.jpg", "ok.jpg"]);
    assert_eq!(code, Some(1), "{out}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["valid"], false);
    assert_eq!(
        lines[0]["errors"],
        json!([format!(
            "Invalid JPEG header: expected a marker at offset {at}, found 0x68"
        )])
    );
    assert!(lines[0].get("warnings").is_none(), "{out}");
    assert_eq!(lines[1]["valid"], true);
}
