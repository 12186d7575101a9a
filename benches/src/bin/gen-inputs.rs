//! `gen-inputs DIR`: writes the bench inputs as `DIR/<name>.jpg`.

fn main() {
    let dir = std::env::args_os().nth(1).expect("usage: gen-inputs DIR");
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).expect("create dir");
    for input in imgchkr_benches::inputs() {
        let path = dir.join(format!("{}.jpg", input.name));
        std::fs::write(&path, &input.bytes).expect("write");
        println!("{} {} bytes", path.display(), input.bytes.len());
    }
}
