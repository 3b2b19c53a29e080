//! Column sums of floored distances in few dimensions (the PCA space of
//! `mmd_pca`, 30 components) from the differences themselves, no GEMM.
//!
//! With `D` this small a distance block's GEMM is bound by writing its
//! `[n, b]` output, and copying and re-reading it cost as much again: the
//! undecided pairs of a bounded `mmd_pca_rank` spent 2.5 ns per distance
//! that way. Here each row of `a` runs over `b` in panels of 16 columns
//! laid out coordinate by coordinate, accumulating `(a_ik - b_jk)^2` in
//! registers, then floors, takes the square root and adds into f64 column
//! sums. Differences need no rounding guard (the product form does).
//!
//! Rows are summed in fixed chunks, each chunk's column sums added in chunk
//! order, so every column's sum is the same whatever the block, the thread
//! count or the timing.

use super::distance::SQ_DIST_FLOOR;
use super::fused::map_chunks;
use crate::error::Result;

/// Largest dimension that takes this path.
pub(super) const DIRECT_MAX_D: usize = 64;

/// Rows per independently summed chunk.
const ROW_CHUNK: usize = 256;

/// Columns per panel (two AVX2 registers).
const LANES: usize = 16;

/// Adds to `out` (`[b]`) the column sums over the rows of `a` (`[n, d]`
/// row-major) of `sqrt(max(|a_i - b_j|^2, 1e-8))` for the rows `b_j` of `b`
/// (`[bn, d]` row-major), and with `dev = Some((shift, out2))` the sums of
/// `(|a_i - b_j|^2 - shift)^2` into `out2`.
pub(super) fn add_column_sums(
    a: &[f32],
    b: &[f32],
    d: usize,
    out: &mut [f64],
    mut dev: Option<(f32, &mut [f64])>,
) -> Result<()> {
    let d = d.max(1);
    let (n, m) = (a.len() / d, b.len() / d);
    if n == 0 || m == 0 {
        return Ok(());
    }
    // Panels of LANES columns: `[panel][k][lane]`, so the inner loop over
    // a row's d coordinates reads one contiguous vector per coordinate and
    // keeps the panel's squared distances in a register. The last panel
    // is padded with zeros (its padded lanes are never added).
    let panels = m.div_ceil(LANES);
    let mut bt = vec![0f32; panels * d * LANES];
    for (j, row) in b.chunks_exact(d).enumerate() {
        let (p, l) = (j / LANES, j % LANES);
        for (k, &v) in row.iter().enumerate() {
            bt[(p * d + k) * LANES + l] = v;
        }
    }
    let shift = dev.as_ref().map(|(s, _)| *s);
    let chunks: Vec<&[f32]> = a.chunks(ROW_CHUNK * d).collect();
    let threads = if n * m * d >= 1 << 22 {
        (tch::get_num_threads().max(1) as usize).min(chunks.len())
    } else {
        1
    };
    let bt = &bt;
    let run = |k: usize| {
        let mut o = vec![0f64; m];
        let mut o2 = vec![0f64; if shift.is_some() { m } else { 0 }];
        chunk_sums(chunks[k], bt, d, m, shift, &mut o, &mut o2);
        (o, o2)
    };
    let results = map_chunks(chunks.len(), threads, run)?;
    for (o, o2) in results {
        out.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        if let Some((_, d2)) = dev.as_mut() {
            d2.iter_mut().zip(&o2).for_each(|(a, b)| *a += b);
        }
    }
    Ok(())
}

/// The column sums of one chunk of rows of `a` against `bt` (`[d, m]`).
fn chunk_sums(
    a: &[f32],
    bt: &[f32],
    d: usize,
    m: usize,
    shift: Option<f32>,
    out: &mut [f64],
    out2: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { chunk_sums_avx512(a, bt, d, m, shift, out, out2) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { chunk_sums_avx2(a, bt, d, m, shift, out, out2) };
            return;
        }
    }
    chunk_sums_generic(a, bt, d, m, shift, out, out2);
}

/// AVX-512 body: one panel of 16 columns is one register, the squared
/// distance accumulates by fused multiply-add (one rounding per
/// coordinate instead of two: this path's sums differ from the portable
/// one's in the last bits, and every call on a machine takes the same path).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chunk_sums_avx512(
    a: &[f32],
    bt: &[f32],
    d: usize,
    m: usize,
    shift: Option<f32>,
    out: &mut [f64],
    out2: &mut [f64],
) {
    use std::arch::x86_64::*;
    const _: () = assert!(LANES == 16);
    let floor = _mm512_set1_ps(SQ_DIST_FLOOR as f32);
    let shv = _mm512_set1_ps(shift.unwrap_or(0.0));
    for (p, panel) in bt.chunks_exact(d * LANES).enumerate() {
        let (mut s_lo, mut s_hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let (mut q_lo, mut q_hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        for row in a.chunks_exact(d) {
            let mut acc = _mm512_setzero_ps();
            for (&x, col) in row.iter().zip(panel.chunks_exact(LANES)) {
                // SAFETY: `col` holds exactly LANES = 16 floats.
                let y = _mm512_loadu_ps(col.as_ptr());
                let t = _mm512_sub_ps(_mm512_set1_ps(x), y);
                acc = _mm512_fmadd_ps(t, t, acc);
            }
            let dist = _mm512_sqrt_ps(_mm512_max_ps(acc, floor));
            let (lo, hi) = halves(dist);
            s_lo = _mm512_add_pd(s_lo, lo);
            s_hi = _mm512_add_pd(s_hi, hi);
            if shift.is_some() {
                let (lo, hi) = halves(_mm512_sub_ps(acc, shv));
                q_lo = _mm512_add_pd(q_lo, _mm512_mul_pd(lo, lo));
                q_hi = _mm512_add_pd(q_hi, _mm512_mul_pd(hi, hi));
            }
        }
        let mut sums = [0f64; LANES];
        _mm512_storeu_pd(sums.as_mut_ptr(), s_lo);
        _mm512_storeu_pd(sums.as_mut_ptr().add(8), s_hi);
        let j0 = p * LANES;
        let lanes = LANES.min(m - j0);
        out[j0..j0 + lanes]
            .iter_mut()
            .zip(&sums)
            .for_each(|(o, s)| *o += s);
        if shift.is_some() {
            _mm512_storeu_pd(sums.as_mut_ptr(), q_lo);
            _mm512_storeu_pd(sums.as_mut_ptr().add(8), q_hi);
            out2[j0..j0 + lanes]
                .iter_mut()
                .zip(&sums)
                .for_each(|(o, s)| *o += s);
        }
    }
}

/// The 16 floats of `v` as two vectors of 8 doubles (lanes 0-7, 8-15).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn halves(
    v: std::arch::x86_64::__m512,
) -> (std::arch::x86_64::__m512d, std::arch::x86_64::__m512d) {
    use std::arch::x86_64::*;
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    (_mm512_cvtps_pd(lo), _mm512_cvtps_pd(hi))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_sums_avx2(
    a: &[f32],
    bt: &[f32],
    d: usize,
    m: usize,
    shift: Option<f32>,
    out: &mut [f64],
    out2: &mut [f64],
) {
    chunk_sums_generic(a, bt, d, m, shift, out, out2);
}

/// Vectorisable body (compiled twice: baseline and AVX2 + FMA; both round
/// alike: no fused multiply-add is formed from `t * t + acc` unless
/// written as one, and it is not).
#[inline(always)]
fn chunk_sums_generic(
    a: &[f32],
    bt: &[f32],
    d: usize,
    m: usize,
    shift: Option<f32>,
    out: &mut [f64],
    out2: &mut [f64],
) {
    let floor = SQ_DIST_FLOOR as f32;
    // Panel by panel, every row of the chunk: the panel's sums stay in
    // registers and its coordinates in L1 (row by row over all columns
    // streamed the f64 sums through L2 once per row).
    for (p, panel) in bt.chunks_exact(d * LANES).enumerate() {
        let mut sums = [0f64; LANES];
        let mut sums2 = [0f64; LANES];
        for row in a.chunks_exact(d) {
            let mut acc = [0f32; LANES];
            for (&x, col) in row.iter().zip(panel.chunks_exact(LANES)) {
                for (s, &y) in acc.iter_mut().zip(col) {
                    let t = x - y;
                    *s += t * t;
                }
            }
            for (o, &s) in sums.iter_mut().zip(&acc) {
                *o += (if s > floor { s } else { floor }).sqrt() as f64;
            }
            if let Some(sh) = shift {
                for (o, &s) in sums2.iter_mut().zip(&acc) {
                    let e = (s - sh) as f64;
                    *o += e * e;
                }
            }
        }
        let j0 = p * LANES;
        let lanes = LANES.min(m - j0);
        out[j0..j0 + lanes]
            .iter_mut()
            .zip(&sums)
            .for_each(|(o, s)| *o += s);
        if shift.is_some() {
            out2[j0..j0 + lanes]
                .iter_mut()
                .zip(&sums2)
                .for_each(|(o, s)| *o += s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_pairwise_and_do_not_depend_on_blocks() {
        let (n, m, d) = (600, 70, 5);
        let a: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 101) as f32) * 0.1).collect();
        let b: Vec<f32> = (0..m * d).map(|i| ((i * 53 % 97) as f32) * 0.1).collect();
        let mut out = vec![0f64; m];
        let mut out2 = vec![0f64; m];
        add_column_sums(&a, &b, d, &mut out, Some((3.0, &mut out2))).unwrap();
        for j in 0..m {
            let (mut want, mut want2) = (0f64, 0f64);
            for i in 0..n {
                let z: f64 = (0..d)
                    .map(|k| (a[i * d + k] as f64 - b[j * d + k] as f64).powi(2))
                    .sum();
                want += z.max(1e-8).sqrt();
                want2 += (z - 3.0) * (z - 3.0);
            }
            assert!(
                (out[j] - want).abs() <= 1e-5 * want,
                "{j}: {} vs {want}",
                out[j]
            );
            assert!((out2[j] - want2).abs() <= 1e-4 * want2.max(1.0));
        }
        // Column 10 alone, and columns 7..20: the same bits.
        for (s, e) in [(10, 11), (7, 20)] {
            let mut part = vec![0f64; e - s];
            add_column_sums(&a, &b[s * d..e * d], d, &mut part, None).unwrap();
            for (j, v) in (s..e).zip(&part) {
                assert_eq!(v.to_bits(), out[j].to_bits(), "column {j}");
            }
        }
    }
}
