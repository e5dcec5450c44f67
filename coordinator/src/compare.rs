//! Measuring frames for the frame checks: what an image looks like ([`look`]: a single colour
//! or not, its size) and how close two renders of one frame are ([`psnr`]). Blocking (decoding
//! and pixel loops); callers run it off the async runtime and outside the scheduler lock.

use std::io::BufReader;
use std::path::Path;

use idlefarm_protocol::ImageFormat;

use crate::schedule::check::Look;

/// Channel values within this many steps (of 255) of each other count as one colour: dithering
/// and JPEG noise do not make a black frame varied.
const FLAT_TOLERANCE: u8 = 2;

/// What `img`, stored in `bytes` bytes, looks like.
pub fn look(img: &image::DynamicImage, bytes: u64) -> Look {
    // Every upload passes here: an 8-bit RGB frame (the usual PNG) is read in place, not copied.
    let converted;
    let rgb = match img.as_rgb8() {
        Some(rgb) => rgb,
        None => {
            converted = img.to_rgb8();
            &converted
        }
    };
    let mut lo = [u8::MAX; 3];
    let mut hi = [u8::MIN; 3];
    for px in rgb.pixels() {
        for c in 0..3 {
            lo[c] = lo[c].min(px[c]);
            hi[c] = hi[c].max(px[c]);
        }
    }
    let flat = (0..3).all(|c| hi[c].saturating_sub(lo[c]) <= FLAT_TOLERANCE);
    Look {
        flat: (flat && !rgb.is_empty()).then(|| [0, 1, 2].map(|c| lo[c] / 2 + hi[c] / 2)),
        bytes,
    }
}

/// Peak signal-to-noise ratio of `b` against `a` over 8-bit RGBA, in decibels: infinite when
/// identical, 0 when the sizes differ.
pub fn psnr(a: &image::DynamicImage, b: &image::DynamicImage) -> f64 {
    if a.width() != b.width() || a.height() != b.height() {
        return 0.0;
    }
    let (a, b) = (a.to_rgba8(), b.to_rgba8());
    let sum: u64 = (a.as_raw().iter().zip(b.as_raw()))
        .map(|(&x, &y)| {
            let d = u64::from(x.abs_diff(y));
            d * d
        })
        .sum();
    if sum == 0 {
        return f64::INFINITY;
    }
    let mse = sum as f64 / a.as_raw().len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// Decodes a stored frame (checked when it was received).
pub fn open(path: &Path, format: ImageFormat) -> image::ImageResult<image::DynamicImage> {
    let file = std::fs::File::open(path).map_err(image::ImageError::IoError)?;
    image::ImageReader::with_format(BufReader::new(file), decoder_format(format)).decode()
}

/// The `image` crate's name for a frame format.
pub fn decoder_format(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, Rgb, RgbImage};

    fn filled(colour: [u8; 3]) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 6, Rgb(colour)))
    }

    #[test]
    fn a_single_colour_is_flat_within_the_tolerance() {
        let mut img = RgbImage::from_pixel(8, 6, Rgb([0, 0, 0]));
        img.put_pixel(3, 3, Rgb([2, 1, 0]));
        let look = look(&DynamicImage::ImageRgb8(img.clone()), 77);
        assert_eq!(look.flat, Some([1, 0, 0]));
        assert_eq!(look.bytes, 77);
        img.put_pixel(4, 4, Rgb([0, 40, 0]));
        assert_eq!(super::look(&DynamicImage::ImageRgb8(img), 77).flat, None);
    }

    #[test]
    fn psnr_is_infinite_for_twins_and_low_for_black_against_grey() {
        let grey = filled([128, 128, 128]);
        assert_eq!(psnr(&grey, &grey), f64::INFINITY);
        let black = filled([0, 0, 0]);
        let db = psnr(&grey, &black);
        assert!((db - 7.2).abs() < 0.1, "{db}");
        let close = filled([129, 128, 128]);
        assert!(psnr(&grey, &close) > 50.0);
        let small = DynamicImage::ImageRgb8(RgbImage::new(4, 4));
        assert_eq!(psnr(&grey, &small), 0.0);
    }
}
