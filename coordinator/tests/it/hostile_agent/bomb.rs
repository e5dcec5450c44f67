//! A decompression bomb as a PNG: a small file whose header declares a huge 8-bit grey image
//! and whose one IDAT chunk inflates to all of its (zero) pixels, about 1,000 bytes per byte
//! sent. Built by hand (fixed-Huffman deflate of back-references) so no compressor has to
//! chew through the pixels. Shared with the `hostile_upload` benchmark.

/// A `w`×`h` grey PNG of zeros; `complete: false` cuts the pixel data in half (the header still
/// declares `w`×`h`), so a full decode fails while a header check does not.
pub fn png_bomb(w: u32, h: u32, complete: bool) -> Vec<u8> {
    let total = u64::from(h) * (u64::from(w) + 1);
    let mut bits = Bits::default();
    bits.put(1, 1); // final block
    bits.put(1, 2); // fixed Huffman codes
    bits.put_code(0x30, 8); // literal 0
    let rest = total - 1;
    let matches = if complete { rest / 258 } else { rest / 516 };
    for _ in 0..matches {
        bits.put_code(0xC5, 8); // length 258 (symbol 285)
        bits.put_code(0, 5); // distance 1
    }
    let mut zlib = vec![0x78, 0x01];
    if complete {
        for _ in 0..rest % 258 {
            bits.put_code(0x30, 8);
        }
        bits.put_code(0, 7); // end of block
        zlib.extend(bits.finish());
        let adler = ((total % 65521) << 16) | 1;
        zlib.extend((adler as u32).to_be_bytes());
    } else {
        zlib.extend(bits.finish());
    }
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit grey, deflate, adaptive filters, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    out.extend(kind);
    out.extend(data);
    let mut crc = !0u32;
    for &b in kind.iter().chain(data) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    out.extend((!crc).to_be_bytes());
}

/// A deflate bit stream: values go in least significant bit first, Huffman codes most
/// significant bit first.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    len: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        self.acc |= u64::from(value) << self.len;
        self.len += len;
        while self.len >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    fn put_code(&mut self, code: u32, len: u32) {
        let reversed = (0..len).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
        self.put(reversed, len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}
