//! `validate-one FILE...`: validates each file with `imgchkr_core::validate_file` (the
//! default policy) and prints dimensions and bytes read: a stand-in for `imgchkr check` in
//! `syscalls.sh`.

use imgchkr_core::{Policy, validate_file};

fn main() {
    let policy = Policy::default();
    for arg in std::env::args().skip(1) {
        let report = validate_file(arg.as_ref(), &arg, &policy);
        println!(
            "{arg}: {:?}, {} bytes read, errors {:?}",
            report.dimensions(),
            report.bytes_read,
            report.error_texts()
        );
    }
}
