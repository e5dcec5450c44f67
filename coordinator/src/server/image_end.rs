//! Where a PNG or JPEG stream ends, found by walking its structure (PNG chunks up to `IEND`;
//! JPEG segments and entropy-coded data up to the end-of-image marker) without decoding it. A
//! frame is stored cut there, so bytes an agent appends after the image (HTML, anything) are
//! never kept nor served as the image.

use std::io::{self, Read};

use idlefarm_protocol::ImageFormat;

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// The length of the image at the start of `input`: the offset just past PNG's `IEND` chunk or
/// JPEG's end-of-image marker. The error says, for a person, why there is no such end.
pub fn image_end(input: impl Read, format: ImageFormat) -> Result<u64, String> {
    let mut r = Counted {
        inner: input,
        pos: 0,
    };
    match format {
        ImageFormat::Png => png_end(&mut r),
        ImageFormat::Jpeg => jpeg_end(&mut r),
    }
}

fn png_end(r: &mut Counted<impl Read>) -> Result<u64, String> {
    let truncated = "it ends before its IEND chunk";
    let mut signature = [0u8; 8];
    r.exact(&mut signature).map_err(|_| "it is too short")?;
    if &signature != PNG_SIGNATURE {
        return Err("it does not start with the PNG signature".into());
    }
    loop {
        let mut head = [0u8; 8];
        r.exact(&mut head).map_err(|_| truncated)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if len > 0x7FFF_FFFF {
            return Err("a chunk length is out of range".into());
        }
        r.skip(u64::from(len) + 4).map_err(|_| truncated)?;
        if &head[4..] == b"IEND" {
            return Ok(r.pos);
        }
    }
}

fn jpeg_end(r: &mut Counted<impl Read>) -> Result<u64, String> {
    let truncated = "it ends before its end-of-image marker";
    let mut soi = [0u8; 2];
    r.exact(&mut soi).map_err(|_| "it is too short")?;
    if soi != [0xFF, 0xD8] {
        return Err("it does not start with a JPEG start-of-image marker".into());
    }
    let mut marker = next_marker(r).map_err(|_| truncated)??;
    loop {
        marker = match marker {
            0xD9 => return Ok(r.pos),
            0xD8 => return Err("it has a second start-of-image marker".into()),
            // Markers without a segment.
            0x01 | 0xD0..=0xD7 => next_marker(r).map_err(|_| truncated)??,
            _ => {
                let mut len = [0u8; 2];
                r.exact(&mut len).map_err(|_| truncated)?;
                let len = u16::from_be_bytes(len);
                if len < 2 {
                    return Err(format!("segment 0x{marker:02X} has a length below 2"));
                }
                r.skip(u64::from(len) - 2).map_err(|_| truncated)?;
                if marker == 0xDA {
                    scan_entropy_coded(r).map_err(|_| truncated)?
                } else {
                    next_marker(r).map_err(|_| truncated)??
                }
            }
        };
    }
}

/// Reads the `0xFF` that must start the next marker (and any fill bytes); returns the marker.
fn next_marker(r: &mut Counted<impl Read>) -> io::Result<Result<u8, String>> {
    if r.byte()? != 0xFF {
        return Ok(Err("it has data between segments".into()));
    }
    loop {
        match r.byte()? {
            0xFF => continue,
            m => return Ok(Ok(m)),
        }
    }
}

/// Skips a scan's entropy-coded data (where `0xFF 0x00` is a data byte and restart markers are
/// part of the scan); returns the marker that ends it.
fn scan_entropy_coded(r: &mut Counted<impl Read>) -> io::Result<u8> {
    loop {
        if r.byte()? != 0xFF {
            continue;
        }
        loop {
            match r.byte()? {
                0xFF => continue,
                0x00 | 0xD0..=0xD7 => break,
                m => return Ok(m),
            }
        }
    }
}

/// A reader that knows how far it has read.
struct Counted<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Counted<R> {
    fn exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let skipped = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.pos += skipped;
        if skipped < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(format: image::ImageFormat) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8 * 6, y as u8 * 8, 90]));
        let mut out = io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn end(bytes: &[u8], format: ImageFormat) -> Result<u64, String> {
        image_end(io::BufReader::new(bytes), format)
    }

    #[test]
    fn a_png_ends_after_its_iend_chunk_whatever_follows() {
        let png = encoded(image::ImageFormat::Png);
        let mut padded = png.clone();
        padded.extend(b"<html><script>alert(1)</script></html>".repeat(100));
        assert_eq!(end(&padded, ImageFormat::Png), Ok(png.len() as u64));
        assert_eq!(end(&png, ImageFormat::Png), Ok(png.len() as u64));
        let cut = end(&png[..png.len() - 6], ImageFormat::Png);
        assert_eq!(cut, Err("it ends before its IEND chunk".into()));
        assert!(end(b"GIF89a", ImageFormat::Png).is_err());
    }

    #[test]
    fn a_jpeg_ends_at_its_end_of_image_marker_not_at_one_inside_a_segment() {
        let jpeg = encoded(image::ImageFormat::Jpeg);
        // A comment segment holding an end-of-image marker's bytes, right after the SOI.
        let comment = [0xFF, 0xFE, 0x00, 0x06, 0xFF, 0xD9, 0xFF, 0xD9];
        let mut tricky = jpeg[..2].to_vec();
        tricky.extend(comment);
        tricky.extend(&jpeg[2..]);
        let len = tricky.len() as u64;
        tricky.extend([0xFF, 0xD9, 0xFF, 0xD8]);
        tricky.extend(vec![0x42; 5000]);
        assert_eq!(end(&tricky, ImageFormat::Jpeg), Ok(len));
        assert_eq!(end(&jpeg, ImageFormat::Jpeg), Ok(jpeg.len() as u64));
        assert!(end(&jpeg[..jpeg.len() - 2], ImageFormat::Jpeg).is_err());
        assert!(end(&[0xFF, 0xD8, 0x12], ImageFormat::Jpeg).is_err());
    }
}
