//! libjpeg-turbo's header reading: `jpeg_read_header(cinfo, TRUE)`, the call browsers,
//! Pillow and ImageMagick make first, through MozJPEG's copy of libjpeg-turbo's decoder
//! (`mozjpeg-sys`, built from source: the same `jdmarker.c` marker reader, 8-bit samples).
//!
//! It reads every marker segment up to the first scan (SOS): the frame header and the tables
//! are parsed, other segments skipped by their lengths, and extraneous bytes between segments
//! skipped with a warning (`JWRN_EXTRANEOUS_DATA`), which is recorded here.

use std::ffi::{c_int, c_ulong, c_void};
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use mozjpeg_sys::{
    J_MESSAGE_CODE, JWRN_EXTRANEOUS_DATA, jpeg_common_struct, jpeg_create_decompress,
    jpeg_decompress_struct, jpeg_destroy_decompress, jpeg_error_mgr, jpeg_mem_src,
    jpeg_read_header, jpeg_std_error,
};

pub use mozjpeg_sys::{
    JERR_BAD_COMPONENT_ID, JERR_BAD_LENGTH, JERR_BAD_PRECISION, JERR_BAD_SAMPLING,
    JERR_COMPONENT_COUNT, JERR_EMPTY_IMAGE, JERR_IMAGE_TOO_BIG, JERR_NO_IMAGE, JERR_NO_SOI,
    JERR_SOF_DUPLICATE, JERR_SOF_NO_SOS, JERR_SOF_UNSUPPORTED, JERR_SOI_DUPLICATE, JERR_SOS_NO_SOF,
    JERR_UNKNOWN_MARKER,
};

/// The largest width or height libjpeg-turbo accepts (`JPEG_MAX_DIMENSION`).
pub const MAX_DIMENSION: u32 = 65_500;

/// One place where libjpeg skipped extraneous bytes: how many, and the marker after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    /// `discarded_bytes`, libjpeg's count.
    pub bytes: u32,
    /// The marker code found after them.
    pub marker: u8,
}

/// What `jpeg_read_header` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `image_width`.
    pub width: u32,
    /// `image_height`.
    pub height: u32,
    /// The places where bytes were skipped before the frame header was read.
    pub skipped: Vec<Skip>,
}

/// Why `jpeg_read_header` failed: libjpeg's message code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// `msg_code` (`JERR_…`).
    pub code: J_MESSAGE_CODE,
    /// The formatted message.
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "libjpeg error {}: {}", self.code, self.message)
    }
}

/// What the callbacks collect, reached through `client_data`.
#[derive(Default)]
struct Collected {
    skipped: Vec<Skip>,
}

/// Reads `data`'s header as libjpeg-turbo does.
pub fn read_header(data: &[u8]) -> Result<Header, Error> {
    let mut collected = Collected::default();
    // SAFETY: the error manager and the decompressor live on this stack frame for the whole
    // call and are destroyed before it returns; libjpeg's errors unwind (mozjpeg-sys's
    // `unwinding` feature builds the C code with unwind tables) to the `catch_unwind` below,
    // past no Rust frame holding a borrow; `client_data` points to `collected`, which
    // outlives the decompressor; `data` outlives the memory source.
    unsafe {
        let mut err: jpeg_error_mgr = mem::zeroed();
        jpeg_std_error(&mut err);
        err.error_exit = Some(error_exit);
        err.emit_message = Some(emit_message);
        let mut cinfo: jpeg_decompress_struct = mem::zeroed();
        cinfo.common.err = &mut err;
        jpeg_create_decompress(&mut cinfo);
        cinfo.common.client_data = (&mut collected as *mut Collected).cast::<c_void>();
        let result = catch_unwind(AssertUnwindSafe(|| {
            jpeg_mem_src(&mut cinfo, data.as_ptr(), data.len() as c_ulong);
            jpeg_read_header(&mut cinfo, 1);
            (cinfo.image_width, cinfo.image_height)
        }));
        jpeg_destroy_decompress(&mut cinfo);
        match result {
            Ok((width, height)) => Ok(Header {
                width,
                height,
                skipped: collected.skipped,
            }),
            Err(payload) => match payload.downcast::<Error>() {
                Ok(error) => Err(*error),
                Err(other) => resume_unwind(other),
            },
        }
    }
}

/// libjpeg's fatal error: unwound to `read_header` (without the panic hook, which a fuzzer
/// sets to abort).
extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    // SAFETY: libjpeg passes its own struct, whose error manager is `read_header`'s.
    let (code, message) = unsafe { message(cinfo) };
    resume_unwind(Box::new(Error { code, message }));
}

/// libjpeg's warnings and traces: the extraneous-data warnings given before the frame header
/// are recorded, the rest ignored.
extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    if level != -1 {
        return;
    }
    // SAFETY: `cinfo` is the decompressor set up by `read_header` (the first field of a
    // `jpeg_decompress_struct`), whose `client_data` is its `Collected`.
    unsafe {
        let err = &mut *cinfo.err;
        if err.msg_code != JWRN_EXTRANEOUS_DATA {
            return;
        }
        let decompress = &*(cinfo as *const jpeg_common_struct).cast::<jpeg_decompress_struct>();
        // The frame header sets the width: warnings after it are about later segments.
        if decompress.image_width != 0 {
            return;
        }
        let params = *err.msg_parm.i();
        let collected = &mut *cinfo.client_data.cast::<Collected>();
        collected.skipped.push(Skip {
            bytes: params[0] as u32,
            marker: params[1] as u8,
        });
    }
}

/// The current message's code and text.
///
/// # Safety
/// `cinfo.err` must point to a live error manager set up by `jpeg_std_error`.
unsafe fn message(cinfo: &mut jpeg_common_struct) -> (J_MESSAGE_CODE, String) {
    // SAFETY: per this function's contract.
    unsafe {
        let err = &*cinfo.err;
        let code = err.msg_code;
        let mut buffer = [0u8; 80];
        if let Some(format) = err.format_message {
            // The binding declares the buffer shared; libjpeg writes the text into it, so it
            // is called as what it is (as the `mozjpeg` crate does).
            type Format = unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &mut [u8; 80]);
            let format = mem::transmute::<
                unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &[u8; 80]),
                Format,
            >(format);
            format(cinfo, &mut buffer);
        }
        let text = buffer.split(|&b| b == 0).next().unwrap_or_default();
        (code, String::from_utf8_lossy(text).into_owned())
    }
}
