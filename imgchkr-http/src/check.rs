//! `imgchkr check`: validates local files with the service's rules and texts.

use std::io::{self, Write};
use std::path::Path;

use imgchkr_core::{Policy, Report, validate_file};
use serde::Serialize;

use crate::cli::CheckArgs;

/// One line of `--json` output.
#[derive(Debug, Serialize)]
pub struct CheckLine<'a> {
    /// The argument as given.
    pub path: &'a str,
    /// The verdict.
    pub valid: bool,
    /// The detected format, `null` when unknown.
    pub format: Option<&'static str>,
    /// From the header, `null` when unreadable.
    pub width: Option<u32>,
    /// From the header, `null` when unreadable.
    pub height: Option<u32>,
    /// The failure texts, empty when valid.
    pub errors: Vec<String>,
    /// What the header probe tolerated (JPEG bytes skipped as libjpeg skips them); left out
    /// when there is nothing to say, so that the lines of clean files keep their shape. A
    /// warning never makes a file invalid.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl<'a> CheckLine<'a> {
    /// The line for `report` on `path`.
    pub fn new(path: &'a str, report: &Report) -> CheckLine<'a> {
        let dims = report.dimensions();
        CheckLine {
            path,
            valid: report.is_valid(),
            format: report.format().map(|f| f.name()),
            width: dims.map(|d| d.0),
            height: dims.map(|d| d.1),
            errors: report.error_texts(),
            warnings: report.warnings(),
        }
    }

    /// The human-readable line.
    pub fn human(&self) -> String {
        let what = match (self.format, self.width, self.height) {
            (Some(format), Some(w), Some(h)) => format!(" ({format} {w}x{h})"),
            (Some(format), _, _) => format!(" ({format})"),
            _ => String::new(),
        };
        let verdict = if self.valid {
            format!("{}: valid{what}", self.path)
        } else {
            format!("{}: invalid{what}: {}", self.path, self.errors.join("; "))
        };
        if self.warnings.is_empty() {
            verdict
        } else {
            format!("{verdict} (warning: {})", self.warnings.join("; "))
        }
    }
}

/// Checks every path in order, printing one line each; returns the exit status (0 when all
/// are valid, 1 otherwise).
pub fn run(args: &CheckArgs, out: &mut impl Write) -> io::Result<u8> {
    let policy: Policy = args.limits.policy();
    let mut all_valid = true;
    for path in &args.paths {
        let display = path.to_string_lossy();
        let report = validate_file(Path::new(path), &display, &policy);
        let line = CheckLine::new(&display, &report);
        all_valid &= line.valid;
        if args.json {
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "{}", line.human())?;
        }
    }
    out.flush()?;
    Ok(if all_valid { 0 } else { 1 })
}
