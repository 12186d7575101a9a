//! `peer-read PEER FILE`: reads a file's dimensions the way a peer would in a service, for
//! `syscalls.sh`. PEER is one of:
//! * `fs-read+imagesize`: `std::fs::read` then `imagesize::blob_size`;
//! * `imagesize`: `imagesize::size(path)` (its own buffered, seeking reader);
//! * `image`: `image::ImageReader::open(path)` + `into_dimensions()`;
//! * `jpeg-decoder`: `jpeg_decoder::Decoder` over a `BufReader<File>`, `read_info()`.

use std::fs::File;
use std::io::BufReader;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(peer), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: peer-read fs-read+imagesize|imagesize|image|jpeg-decoder FILE");
        std::process::exit(2);
    };
    let dims: Option<(u32, u32)> = match peer.as_str() {
        "fs-read+imagesize" => std::fs::read(&path)
            .ok()
            .and_then(|b| imgchkr_benches::imagesize(&b)),
        "imagesize" => imagesize::size(&path)
            .ok()
            .map(|s| (s.width as u32, s.height as u32)),
        "image" => image::ImageReader::open(&path)
            .ok()
            .and_then(|r| r.into_dimensions().ok()),
        "jpeg-decoder" => {
            let file = File::open(&path).expect("open");
            let mut d = jpeg_decoder::Decoder::new(BufReader::new(file));
            d.read_info()
                .ok()
                .and_then(|()| d.info())
                .map(|i| (u32::from(i.width), u32::from(i.height)))
        }
        other => {
            eprintln!("unknown peer {other}");
            std::process::exit(2);
        }
    };
    println!("{path}: {dims:?}");
}
