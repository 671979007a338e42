//! A small RGB raster and its PNG form: what the overlay renderer draws into and what the report
//! embeds. Decoding accepts the PNG flavours a browser screenshot or a `progress.png` uses
//! (8/16-bit grey, grey + alpha, RGB, RGBA, palette), so tests can read images back.

use std::io::Cursor;
use std::path::Path;

use crate::error::EvaluationError;

/// An 8-bit RGB image, rows top to bottom, pixels left to right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width` pixels, row-major.
    pub pixels: Vec<[u8; 3]>,
}

impl RgbImage {
    /// An image of one colour.
    pub fn filled(width: usize, height: usize, colour: [u8; 3]) -> RgbImage {
        RgbImage {
            width,
            height,
            pixels: vec![colour; width * height],
        }
    }

    /// The pixel at row `row`, column `col`.
    ///
    /// # Panics
    /// When the position is outside the image (a caller bug, not user input).
    pub fn pixel(&self, row: usize, col: usize) -> [u8; 3] {
        assert!(
            row < self.height && col < self.width,
            "pixel inside the image"
        );
        self.pixels[row * self.width + col]
    }

    /// Encodes the image as an 8-bit RGB PNG.
    pub fn encode_png(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let width = u32::try_from(self.width).expect("report images are far below 2^32 pixels");
        let height = u32::try_from(self.height).expect("report images are far below 2^32 pixels");
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Panels repeat rows and pixels (nearest upsampling): per-row adaptive filters turn a
        // repeated row into zeros, which deflate then shrinks to almost nothing.
        encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        encoder.set_compression(png::Compression::Best);
        let flat: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        encoder
            .write_header()
            .and_then(|mut writer| writer.write_image_data(&flat))
            .expect("writing a well-formed RGB image into memory cannot fail");
        bytes
    }

    /// Decodes a PNG (any colour type; alpha is composited over white; 16-bit is reduced to
    /// 8-bit). `name` names the image in errors.
    ///
    /// # Errors
    /// [`EvaluationError::Io`] (action "decode PNG") when the bytes are not a PNG this decoder
    /// reads.
    pub fn decode_png(bytes: &[u8], name: &Path) -> Result<RgbImage, EvaluationError> {
        let fault = |e: png::DecodingError| EvaluationError::Io {
            path: name.to_path_buf(),
            action: "decode PNG",
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        };
        let mut decoder = png::Decoder::new(Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().map_err(fault)?;
        let mut buffer = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buffer).map_err(fault)?;
        let samples = &buffer[..info.buffer_size()];
        let pixels = to_rgb(samples, info.color_type);
        Ok(RgbImage {
            width: info.width as usize,
            height: info.height as usize,
            pixels,
        })
    }
}

/// Expanded 8-bit samples of one colour type to RGB, alpha composited over white.
fn to_rgb(samples: &[u8], colour: png::ColorType) -> Vec<[u8; 3]> {
    let over_white = |v: u8, a: u8| {
        let blended = (u32::from(v) * u32::from(a) + 255 * (255 - u32::from(a)) + 127) / 255;
        u8::try_from(blended).expect("a blend of two bytes is a byte")
    };
    match colour {
        png::ColorType::Grayscale => samples.iter().map(|&g| [g, g, g]).collect(),
        png::ColorType::GrayscaleAlpha => samples
            .chunks_exact(2)
            .map(|p| [over_white(p[0], p[1]); 3])
            .collect(),
        png::ColorType::Rgba => samples
            .chunks_exact(4)
            .map(|p| [0, 1, 2].map(|i| over_white(p[i], p[3])))
            .collect(),
        // EXPAND turns palettes into RGB(A), so what is left is RGB.
        png::ColorType::Rgb | png::ColorType::Indexed => samples
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_keeps_every_pixel() {
        let mut image = RgbImage::filled(3, 2, [255, 255, 255]);
        image.pixels[1] = [10, 20, 30];
        image.pixels[5] = [200, 0, 7];
        let bytes = image.encode_png();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let back = RgbImage::decode_png(&bytes, Path::new("test")).unwrap();
        assert_eq!(back, image);
        assert_eq!(back.pixel(0, 1), [10, 20, 30]);
        assert_eq!(back.pixel(1, 2), [200, 0, 7]);
    }

    #[test]
    fn rgba_is_composited_over_white() {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, 2, 1);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        // An opaque red pixel, then black at alpha 0 (shows white).
        writer
            .write_image_data(&[255, 0, 0, 255, 0, 0, 0, 0])
            .unwrap();
        drop(writer);
        let image = RgbImage::decode_png(&bytes, Path::new("rgba")).unwrap();
        assert_eq!(image.pixels, vec![[255, 0, 0], [255, 255, 255]]);
    }

    #[test]
    fn bytes_that_are_not_png_name_the_image() {
        let err = RgbImage::decode_png(b"GIF89a", Path::new("progress.png")).unwrap_err();
        assert_eq!(err.to_string(), "progress.png: decode PNG failed");
    }
}
