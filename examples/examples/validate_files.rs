//! Validates image files with a custom [`Policy`], using `imgchkr-core` alone (no runtime, no
//! network): at most 2000 × 2000 px, JPEG or PNG, 10 MiB. Prints one verdict line per path:
//!
//! ```text
//! photo.jpg: valid (jpeg 1200x800)
//! huge.png: invalid: Image width exceeds maximum (4000/2000)
//! ```
//!
//! Exits 0 when every file is valid, 1 when any is invalid, 2 without arguments.
//!
//! Run it from the workspace root:
//!
//! ```text
//! cargo run --example validate_files -- path/to/a.jpg path/to/b.png
//! ```

use std::path::Path;
use std::process::ExitCode;

use imgchkr_core::{Formats, Policy, validate_file};

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: validate_files PATH...");
        return ExitCode::from(2);
    }

    // `Policy` is non-exhaustive: start from the defaults and change what differs.
    let mut policy = Policy::default();
    policy.max_width = 2000;
    policy.max_height = 2000;
    policy.formats = match "jpeg,png".parse::<Formats>() {
        Ok(formats) => formats,
        Err(e) => {
            eprintln!("bad format list: {e}");
            return ExitCode::from(2);
        }
    };

    let mut all_valid = true;
    for path in &paths {
        // Header-only: reads a few bytes of each file, never decodes pixels.
        let report = validate_file(Path::new(path), path, &policy);
        if report.is_valid() {
            let format = report.format().map_or("?", |f| f.name());
            let (w, h) = report.dimensions().unwrap_or_default();
            println!("{path}: valid ({format} {w}x{h})");
        } else {
            all_valid = false;
            println!("{path}: invalid: {}", report.error_texts().join("; "));
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
