//! The reference decoders imgchkr's header probe is checked against, each reduced to what it
//! says about a file's header: libjpeg-turbo's `jpeg_read_header` ([`libjpeg`]), libwebp's
//! `WebPGetFeatures` ([`webp()`]), the `png` crate's `read_info` ([`png()`]) and the `gif` crate's
//! first frame ([`gif()`]). Used by the corpus tests and the differential fuzz targets; never
//! by imgchkr itself.

pub mod libjpeg;

/// What the `png` crate reads before the image data (every chunk up to the first IDAT, CRCs
/// included): the IHDR's width and height.
pub fn png(data: &[u8]) -> Result<(u32, u32), String> {
    let reader = ::png::Decoder::new(std::io::Cursor::new(data))
        .read_info()
        .map_err(|e| e.to_string())?;
    let info = reader.info();
    Ok((info.width, info.height))
}

/// What the `gif` crate reads up to the first frame's image descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gif {
    /// The logical screen's width and height.
    pub screen: (u32, u32),
    /// The first frame's left, top, width and height.
    pub frame: (u32, u32, u32, u32),
}

impl Gif {
    /// The canvas a browser allocates (Chromium's GIF reader): the screen, grown to hold the
    /// first frame.
    pub fn canvas(&self) -> (u32, u32) {
        let (left, top, width, height) = self.frame;
        (
            self.screen.0.max(left + width),
            self.screen.1.max(top + height),
        )
    }
}

/// The `gif` crate's reading of the screen and the first frame's descriptor (it does not
/// decode the frame's data).
pub fn gif(data: &[u8]) -> Result<Gif, String> {
    let mut options = ::gif::DecodeOptions::new();
    options.set_color_output(::gif::ColorOutput::Indexed);
    let mut decoder = options
        .read_info(std::io::Cursor::new(data))
        .map_err(|e| e.to_string())?;
    let screen = (u32::from(decoder.width()), u32::from(decoder.height()));
    let frame = decoder
        .next_frame_info()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no frame".to_owned())?;
    Ok(Gif {
        screen,
        frame: (
            u32::from(frame.left),
            u32::from(frame.top),
            u32::from(frame.width),
            u32::from(frame.height),
        ),
    })
}

/// libwebp's `WebPGetFeatures`: the canvas width and height, or `None` where libwebp refuses
/// the headers (it reads the RIFF header, VP8X, and for a still image the chunks up to the
/// bitstream and that bitstream's header, checking the canvas against it).
pub fn webp(data: &[u8]) -> Option<(u32, u32)> {
    let features = ::webp::BitstreamFeatures::new(data)?;
    Some((features.width(), features.height()))
}
