//! Thumbnails for the web pages: a small JPEG made once from each stored frame, so a page
//! showing a job's frame grid loads kilobytes instead of full-size PNGs.

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, RgbImage};

/// Thumbnails are at most this wide; narrower frames keep their size.
pub const MAX_WIDTH: u32 = 320;

/// JPEG quality of thumbnails (1–100).
pub const QUALITY: u8 = 80;

/// Why a thumbnail could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// The JPEG encoder refused the image.
    #[error("cannot encode the thumbnail as JPEG: {0}")]
    Encode(#[from] image::ImageError),
}

/// The thumbnail's size for a frame of `width` × `height`: scaled down to [`MAX_WIDTH`] with the
/// aspect ratio kept, never scaled up, never zero.
pub fn size(width: u32, height: u32) -> (u32, u32) {
    if width <= MAX_WIDTH {
        return (width.max(1), height.max(1));
    }
    let scaled =
        (u64::from(height) * u64::from(MAX_WIDTH) + u64::from(width) / 2) / u64::from(width);
    (MAX_WIDTH, u32::try_from(scaled).unwrap_or(u32::MAX).max(1))
}

/// Encodes a decoded frame as a thumbnail JPEG.
pub fn encode(img: &DynamicImage) -> Result<Vec<u8>, ThumbnailError> {
    let (w, h) = size(img.width(), img.height());
    let small = if (w, h) == (img.width(), img.height()) {
        flatten(img)
    } else {
        // A box filter: averages every source pixel, so it is fast and does not alias on the
        // large reductions thumbnails need.
        flatten(&img.thumbnail_exact(w, h))
    };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, QUALITY).encode_image(&small)?;
    Ok(jpeg)
}

/// 8-bit RGB for the JPEG encoder. Transparent pixels are composited over black, as a viewer
/// of premultiplied output would show them, so whatever colour a renderer left under zero
/// alpha never shows.
fn flatten(img: &DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over = |c: u8| ((u16::from(c) * u16::from(a) + 127) / 255) as u8;
        image::Rgb([over(r), over(g), over(b)])
    })
}

#[cfg(test)]
mod tests {
    use image::{ImageBuffer, Rgb, Rgba};

    use super::*;

    fn decode(jpeg: &[u8]) -> DynamicImage {
        image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).unwrap()
    }

    /// A frame whose left half is red and right half blue, so scaling errors show.
    fn halves(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(ImageBuffer::from_fn(w, h, |x, _| {
            if x < w / 2 {
                Rgb([230, 20, 20])
            } else {
                Rgb([20, 20, 230])
            }
        }))
    }

    fn close(a: [u8; 3], b: [u8; 3]) -> bool {
        a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 24)
    }

    #[test]
    fn a_wide_frame_shrinks_to_320_wide_with_its_aspect_ratio() {
        let thumb = decode(&encode(&halves(1920, 1080)).unwrap());
        assert_eq!((thumb.width(), thumb.height()), (320, 180));
        let px = thumb.to_rgb8();
        assert!(close(px.get_pixel(40, 90).0, [230, 20, 20]));
        assert!(close(px.get_pixel(280, 90).0, [20, 20, 230]));
    }

    #[test]
    fn a_tall_frame_keeps_its_aspect_ratio_too() {
        let thumb = decode(&encode(&halves(1080, 1920)).unwrap());
        assert_eq!((thumb.width(), thumb.height()), (320, 569));
        assert_eq!(size(1000, 3001), (320, 960));
    }

    #[test]
    fn small_frames_are_never_scaled_up() {
        for (w, h) in [(16, 9), (1, 1), (320, 240), (3, 200)] {
            let thumb = decode(&encode(&halves(w, h)).unwrap());
            assert_eq!((thumb.width(), thumb.height()), (w, h));
        }
    }

    #[test]
    fn a_very_flat_frame_keeps_at_least_one_row() {
        assert_eq!(size(10_000, 1), (320, 1));
        let thumb = decode(&encode(&halves(4000, 2)).unwrap());
        assert_eq!((thumb.width(), thumb.height()), (320, 1));
    }

    #[test]
    fn transparency_and_sixteen_bit_frames_become_plain_rgb() {
        // Fully transparent green on the left must not show as green.
        let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(640, 100, |x, _| {
            if x < 320 {
                Rgba([0, 255, 0, 0])
            } else {
                Rgba([250, 250, 250, 255])
            }
        }));
        let px = decode(&encode(&rgba).unwrap()).to_rgb8();
        assert!(close(px.get_pixel(40, 25).0, [0, 0, 0]));
        assert!(close(px.get_pixel(280, 25).0, [250, 250, 250]));

        let deep =
            DynamicImage::ImageRgb16(ImageBuffer::from_pixel(400, 300, Rgb([65535u16, 32768, 0])));
        let thumb = decode(&encode(&deep).unwrap());
        assert_eq!((thumb.width(), thumb.height()), (320, 240));
        assert!(close(thumb.to_rgb8().get_pixel(10, 10).0, [255, 128, 0]));
    }

    #[test]
    fn thumbnails_are_much_smaller_than_the_frame() {
        let frame = halves(1920, 1080);
        let jpeg = encode(&frame).unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8]), "JPEG magic");
        assert!(jpeg.len() < 30_000, "{} bytes", jpeg.len());
    }
}
