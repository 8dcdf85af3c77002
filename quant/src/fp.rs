//! Scalar float helpers shared by the block types: f16/bf16 conversion and
//! ggml's `nearest_int`.

use half::f16;

/// f16 bits (little-endian bytes) to f32; exact.
#[inline(always)]
pub(crate) fn f16_to_f32(b: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// f32 to f16 bytes, round to nearest even (what F16C, numpy and ggml do).
#[inline(always)]
pub(crate) fn f32_to_f16(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_bits().to_le_bytes()
}

/// bf16 bits to f32; exact.
#[inline(always)]
pub(crate) fn bf16_to_f32(b: [u8; 2]) -> f32 {
    f32::from_bits((u16::from_le_bytes(b) as u32) << 16)
}

/// f32 to bf16 bits as ggml's `ggml_compute_fp32_to_bf16` (and gguf-py):
/// NaN forced quiet, otherwise round to nearest even.
#[inline(always)]
pub(crate) fn f32_to_bf16(x: f32) -> [u8; 2] {
    let u = x.to_bits();
    let h = if (u & 0x7fff_ffff) > 0x7f80_0000 {
        (u >> 16) | 64
    } else {
        ((u as u64 + (0x7fff + ((u >> 16) & 1)) as u64) >> 16) as u32
    };
    (h as u16).to_le_bytes()
}

/// ggml's `nearest_int`: round to nearest, ties to even, via the 1.5*2^23
/// trick. Valid for |x| <= 4194303, as in ggml.
#[inline(always)]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12582912.0f32;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// Reads a little-endian f32 at `b[0..4]`.
#[inline(always)]
pub(crate) fn read_f32(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_is_round_half_even() {
        for &(x, want) in &[
            (0.5f32, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (3.49, 3),
            (-3.51, -4),
            (126.7, 127),
        ] {
            assert_eq!(nearest_int(x), want, "{x}");
            assert_eq!(x.round_ties_even() as i32, want, "{x}");
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80u16.to_le_bytes());
        // 1 + 2^-8 is halfway between two bf16 values: ties to even (down).
        assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0), 0x3f80u16.to_le_bytes());
        assert_eq!(f32_to_bf16(1.0 + 3.0 / 256.0), 0x3f82u16.to_le_bytes());
        assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
    }
}
