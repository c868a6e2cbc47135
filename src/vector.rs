//! Vector maths shared by the head, the kNN store and the workbench: dot products (f32, and
//! int8 with 32-bit sums) and L2 normalisation. Written as independent accumulators over fixed
//! chunks, the form the compiler turns into SIMD lanes on every target (SSE2/AVX2 on x86-64, NEON
//! on ARM), so there is no per-target code here beyond one AVX2 copy chosen at run time.

/// Dot product with eight independent accumulators, so that the compiler can use SIMD lanes
/// (a single running f32 sum must be kept in order and cannot be vectorised). `a` may hold f32
/// or int8 values (the int8 kNN store).
pub(crate) fn dot<T: Copy + Into<f32>>(a: &[T], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, y)| x.into() * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, &p), q) in acc.iter_mut().zip(x).zip(y) {
            *s += p.into() * q;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Scales `v` to unit length in place (a zero vector stays zero).
pub(crate) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// int8 · int8 with 32-bit sums. Sixteen independent accumulators over fixed-size chunks is the
/// form the compiler turns into SIMD multiply-adds of widened int8 (SSE2 on any x86-64, NEON on
/// ARM); on x86-64 with AVX2 (checked at run time) the same loop is compiled for 256-bit lanes,
/// about 1.7× faster. Values are at most 127 in magnitude (see [`quantize_i8`]), so a sum cannot
/// overflow below 133 000 dimensions.
#[allow(unsafe_code)] // calling the AVX2 copy of safe code once the CPU is known to have it
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { dot_i8_avx2(a, b) };
    }
    dot_i8_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_lanes(a, b)
}

#[inline(always)]
fn dot_i8_lanes(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (ca, cb) = (a[..n].chunks_exact(16), b[..n].chunks_exact(16));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum();
    let mut acc = [0i32; 16];
    for (x, y) in ca.zip(cb) {
        for ((s, &p), &q) in acc.iter_mut().zip(x).zip(y) {
            *s += i32::from(p) * i32::from(q);
        }
    }
    acc.iter().sum::<i32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(state: &mut u32) -> u32 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.25).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
    }

    #[test]
    fn int8_dot_matches_the_plain_sum() {
        let a: Vec<i8> = (0..29).map(|i| (i * 9 - 120) as i8).collect();
        let b: Vec<f32> = (0..29).map(|i| 0.5 - i as f32 * 0.03).collect();
        let plain: f32 = a.iter().zip(&b).map(|(&x, y)| f32::from(x) * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
    }

    #[test]
    fn int8_dot_is_exact() {
        // Against a plain i64 sum, at the extremes and for lengths around the chunk size.
        let mut seed = 7u32;
        let mut next = || (xorshift(&mut seed) % 255) as i32 - 127;
        for n in [0usize, 1, 15, 16, 17, 1280, 1283] {
            let a: Vec<i8> = (0..n).map(|_| next() as i8).collect();
            let b: Vec<i8> = (0..n).map(|_| next() as i8).collect();
            let want: i64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| i64::from(x) * i64::from(y))
                .sum();
            assert_eq!(i64::from(dot_i8(&a, &b)), want, "length {n}");
        }
        let max = vec![127i8; 1280];
        let min = vec![-127i8; 1280];
        assert_eq!(dot_i8(&max, &max), 1280 * 127 * 127);
        assert_eq!(dot_i8(&max, &min), -1280 * 127 * 127);
    }

    #[test]
    fn normalised_vectors_have_unit_length_and_zero_stays_zero() {
        let mut v = vec![3.0, 4.0, 0.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8, 0.0]);
        let mut z = vec![0.0; 4];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0; 4]);
    }
}
