//! Which SIMD instruction sets the running CPU has, detected once.
//!
//! Kernels are compiled for several levels (`#[target_feature]`) and the
//! best one is chosen at run time; the binary never assumes more than the
//! x86-64 (or aarch64) baseline. NEON is part of the aarch64 baseline.

use std::sync::atomic::{AtomicU8, Ordering};

/// A family of kernels; each [`crate::Kernel`] has a scalar entry and may
/// have faster ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Portable Rust, the reference every other level is tested against.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// aarch64 NEON (always present there).
    Neon,
}

const UNKNOWN: u8 = u8::MAX;
static DETECTED: AtomicU8 = AtomicU8::new(UNKNOWN);

impl SimdLevel {
    /// All levels.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Neon];

    /// The best level this CPU supports (detected on first call, then cached).
    #[inline]
    pub fn detect() -> SimdLevel {
        let v = DETECTED.load(Ordering::Relaxed);
        if v != UNKNOWN {
            return Self::from_u8(v);
        }
        let level = Self::probe();
        DETECTED.store(level as u8, Ordering::Relaxed);
        level
    }

    /// Whether this CPU can run kernels of `self`.
    pub fn available(self) -> bool {
        self == SimdLevel::Scalar || self == Self::detect()
    }

    fn probe() -> SimdLevel {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return SimdLevel::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            return SimdLevel::Neon;
        }
        #[allow(unreachable_code)]
        SimdLevel::Scalar
    }

    fn from_u8(v: u8) -> SimdLevel {
        match v {
            1 => SimdLevel::Avx2,
            2 => SimdLevel::Neon,
            _ => SimdLevel::Scalar,
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_ktile;

#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
