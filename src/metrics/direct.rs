//! Column sums of floored distances in few dimensions (the PCA space of
//! `mmd_pca`, 30 components) computed in registers, no GEMM.
//!
//! With `D` this small a distance block's GEMM is bound by writing its
//! `[n, b]` output, and copying and re-reading it cost as much again: the
//! undecided pairs of a bounded `mmd_pca_rank` spent 2.5 ns per distance
//! that way. Here rows of `a` run over `b` in panels of 16 columns laid out
//! coordinate by coordinate; each squared distance stays in a register,
//! is floored and square-rooted there and added into f64 column sums.
//!
//! With AVX-512, blocks of 16 rows accumulate `a.b` by fused multiply-add
//! (16 independent accumulators keep both FMA ports busy; one row at a
//! time waited on the FMA latency, 8 rows still left gaps and 32 spilled)
//! and form `-2 a.b + |a|^2 + |b|^2` with the fused GEMM path's guard:
//! squared distances under the threshold are recomputed from the
//! difference. Elsewhere a portable body accumulates `(a_ik - b_jk)^2`.
//!
//! Rows are summed in fixed chunks, each chunk's column sums added in chunk
//! order, so every column's sum is the same whatever the block, the thread
//! count or the timing.

use super::distance::{exact_sq_dist, SQ_DIST_FLOOR};
use super::team::map_chunks;
use crate::error::Result;

/// Largest dimension that takes this path.
pub(super) const DIRECT_MAX_D: usize = 64;

/// Rows per independently summed chunk.
const ROW_CHUNK: usize = 256;

/// Columns per panel (two AVX2 registers).
const LANES: usize = 16;

/// Adds to `out` (`[b]`) the column sums over the rows of `a` (`[n, d]`
/// row-major, squared norms `a_sq`) of `sqrt(max(|a_i - b_j|^2, 1e-8))`
/// for the rows `b_j` of `b` (`[bn, d]` row-major, squared norms `b_sq`),
/// and with `dev = Some((shift, out2))` the sums of
/// `(|a_i - b_j|^2 - shift)^2` into `out2`. Squared distances under `thr`
/// are recomputed from the difference where the product form is used.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_column_sums(
    a: &[f32],
    a_sq: &[f32],
    b: &[f32],
    b_sq: &[f32],
    d: usize,
    thr: f64,
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
    let mut bsq = vec![0f32; panels * LANES];
    bsq[..m].copy_from_slice(&b_sq[..m]);
    let shift = dev.as_ref().map(|(s, _)| *s);
    let chunks: Vec<(&[f32], &[f32])> = a
        .chunks(ROW_CHUNK * d)
        .zip(a_sq.chunks(ROW_CHUNK))
        .collect();
    let threads = if n * m * d >= 1 << 22 {
        (tch::get_num_threads().max(1) as usize).min(chunks.len())
    } else {
        1
    };
    let (bt, bsq) = (&bt, &bsq);
    let thr = thr as f32;
    let run = |k: usize| {
        let mut o = vec![0f64; m];
        let mut o2 = vec![0f64; if shift.is_some() { m } else { 0 }];
        let (ca, csq) = chunks[k];
        chunk_sums(ca, csq, bt, bsq, d, m, thr, shift, &mut o, &mut o2);
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

/// The column sums of one chunk of rows of `a` against the panels `bt`.
#[allow(clippy::too_many_arguments)]
fn chunk_sums(
    a: &[f32],
    a_sq: &[f32],
    bt: &[f32],
    bsq: &[f32],
    d: usize,
    m: usize,
    thr: f32,
    shift: Option<f32>,
    out: &mut [f64],
    out2: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { chunk_sums_avx512(a, a_sq, bt, bsq, d, m, thr, shift, out, out2) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { chunk_sums_avx2(a, bt, d, m, shift, out, out2) };
            return;
        }
    }
    let _ = (a_sq, bsq, thr);
    chunk_sums_generic(a, bt, d, m, shift, out, out2);
}

/// Rows of `a` per register block of the AVX-512 body: that many
/// independent accumulators keep both FMA ports busy (one accumulator was
/// bound by the FMA latency, 4 cycles per coordinate; 32 spill registers).
const ROWS: usize = 16;

/// AVX-512 body, in the product form: for a block of [`ROWS`] rows and one
/// panel of 16 columns, `a_i.b_j` accumulates by fused multiply-add (one
/// instruction per coordinate, the difference form needs two), then
/// `d2 = -2 a.b + |a|^2 + |b|^2` as in [`super::fused`], and lanes under
/// `thr` are recomputed from the difference in f64 (the same guard). This
/// path's sums differ from the portable one's in the last bits; every call
/// on a machine takes the same path.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn chunk_sums_avx512(
    a: &[f32],
    a_sq: &[f32],
    bt: &[f32],
    bsq: &[f32],
    d: usize,
    m: usize,
    thr: f32,
    shift: Option<f32>,
    out: &mut [f64],
    out2: &mut [f64],
) {
    use std::arch::x86_64::*;
    const _: () = assert!(LANES == 16);
    let n = a_sq.len();
    for (p, panel) in bt.chunks_exact(d * LANES).enumerate() {
        let j0 = p * LANES;
        let lanes = LANES.min(m - j0);
        let ctx = Panel {
            panel,
            // SAFETY: `bsq` holds LANES floats per panel.
            bsq: _mm512_loadu_ps(bsq.as_ptr().add(j0)),
            valid: if lanes == LANES {
                u16::MAX
            } else {
                (1u16 << lanes) - 1
            },
            d,
            thr,
            shift,
        };
        let mut sums = Sums::new();
        let mut i = 0;
        while i + ROWS <= n {
            rows_avx512::<ROWS>(
                &a[i * d..(i + ROWS) * d],
                &a_sq[i..i + ROWS],
                &ctx,
                &mut sums,
            );
            i += ROWS;
        }
        while i < n {
            rows_avx512::<1>(&a[i * d..(i + 1) * d], &a_sq[i..i + 1], &ctx, &mut sums);
            i += 1;
        }
        let mut v = [0f64; LANES];
        _mm512_storeu_pd(v.as_mut_ptr(), sums.s_lo);
        _mm512_storeu_pd(v.as_mut_ptr().add(8), sums.s_hi);
        out[j0..j0 + lanes]
            .iter_mut()
            .zip(&v)
            .for_each(|(o, s)| *o += s);
        if shift.is_some() {
            _mm512_storeu_pd(v.as_mut_ptr(), sums.q_lo);
            _mm512_storeu_pd(v.as_mut_ptr().add(8), sums.q_hi);
            out2[j0..j0 + lanes]
                .iter_mut()
                .zip(&v)
                .for_each(|(o, s)| *o += s);
        }
    }
}

/// One panel of 16 columns as the AVX-512 body reads it.
#[cfg(target_arch = "x86_64")]
struct Panel<'a> {
    /// `[d, 16]` coordinates.
    panel: &'a [f32],
    /// The columns' squared norms (0 in padded lanes).
    bsq: std::arch::x86_64::__m512,
    /// Lanes that are real columns.
    valid: u16,
    d: usize,
    thr: f32,
    shift: Option<f32>,
}

/// A panel's running f64 sums (lanes 0-7 and 8-15).
#[cfg(target_arch = "x86_64")]
struct Sums {
    s_lo: std::arch::x86_64::__m512d,
    s_hi: std::arch::x86_64::__m512d,
    q_lo: std::arch::x86_64::__m512d,
    q_hi: std::arch::x86_64::__m512d,
}

#[cfg(target_arch = "x86_64")]
impl Sums {
    #[target_feature(enable = "avx512f")]
    unsafe fn new() -> Self {
        use std::arch::x86_64::_mm512_setzero_pd;
        Sums {
            s_lo: _mm512_setzero_pd(),
            s_hi: _mm512_setzero_pd(),
            q_lo: _mm512_setzero_pd(),
            q_hi: _mm512_setzero_pd(),
        }
    }
}

/// `R` rows (`a`: `[R, d]`, norms `a_sq`) against one panel, their
/// distances added into `sums` row by row (`R` only groups the rows: each
/// distance and the order of the adds are the same for any `R`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn rows_avx512<const R: usize>(a: &[f32], a_sq: &[f32], c: &Panel<'_>, sums: &mut Sums) {
    use std::arch::x86_64::*;
    let d = c.d;
    let mut acc = [_mm512_setzero_ps(); R];
    for k in 0..d {
        // SAFETY: the panel holds d * 16 floats; `a` holds R * d.
        let y = _mm512_loadu_ps(c.panel.as_ptr().add(k * LANES));
        for (r, v) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*a.get_unchecked(r * d + k));
            *v = _mm512_fmadd_ps(x, y, *v);
        }
    }
    let floor = _mm512_set1_ps(SQ_DIST_FLOOR as f32);
    let thr = _mm512_set1_ps(c.thr);
    for (r, &g) in acc.iter().enumerate() {
        // -2 g + |a|^2 + |b|^2, rounded as the fused scan rounds it.
        let mut d2 = _mm512_add_ps(
            _mm512_fmadd_ps(g, _mm512_set1_ps(-2.0), _mm512_set1_ps(a_sq[r])),
            c.bsq,
        );
        let near = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(d2, thr) & c.valid;
        if near != 0 {
            d2 = exact_lanes(d2, near, &a[r * d..(r + 1) * d], c.panel);
        }
        let (lo, hi) = halves(sqrt_nr(_mm512_max_ps(d2, floor)));
        sums.s_lo = _mm512_add_pd(sums.s_lo, lo);
        sums.s_hi = _mm512_add_pd(sums.s_hi, hi);
        if let Some(sh) = c.shift {
            let (lo, hi) = halves(_mm512_sub_ps(d2, _mm512_set1_ps(sh)));
            sums.q_lo = _mm512_add_pd(sums.q_lo, _mm512_mul_pd(lo, lo));
            sums.q_hi = _mm512_add_pd(sums.q_hi, _mm512_mul_pd(hi, hi));
        }
    }
}

/// `sqrt(x)` for `x >= 1e-8` to about one unit in the last place: the
/// 14-bit reciprocal square root and one Newton step (five pipelined
/// instructions instead of the divider's `vsqrtps`; a little faster here,
/// within this VM's noise: 0.53-0.55 vs 0.60-0.65 ns per distance).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn sqrt_nr(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let r = _mm512_rsqrt14_ps(x);
    let y = _mm512_mul_ps(x, r);
    // y (1 + e / 2) with e = 1 - y r, the Newton step for 1 / sqrt(x) times x.
    let e = _mm512_fnmadd_ps(y, r, _mm512_set1_ps(1.0));
    _mm512_fmadd_ps(_mm512_mul_ps(y, _mm512_set1_ps(0.5)), e, y)
}

/// `d2` with the lanes in `near` replaced by `|x - b_l|^2` computed from
/// the difference in f64 (rounded to f32), `b_l` being lane `l` of the
/// panel (`[d, 16]`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exact_lanes(
    d2: std::arch::x86_64::__m512,
    near: u16,
    x: &[f32],
    panel: &[f32],
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let mut v = [0f32; LANES];
    _mm512_storeu_ps(v.as_mut_ptr(), d2);
    for (l, slot) in v.iter_mut().enumerate() {
        if near & (1 << l) != 0 {
            *slot = exact_sq_dist(x.iter().copied(), panel.chunks_exact(LANES).map(|c| c[l]));
        }
    }
    _mm512_loadu_ps(v.as_ptr())
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
        let (n, m, d) = (603, 70, 5);
        let a: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 101) as f32) * 0.1).collect();
        let b: Vec<f32> = (0..m * d).map(|i| ((i * 53 % 97) as f32) * 0.1).collect();
        let sq = |x: &[f32]| -> Vec<f32> {
            x.chunks_exact(d)
                .map(|r| r.iter().map(|v| v * v).sum())
                .collect()
        };
        let (a_sq, b_sq) = (sq(&a), sq(&b));
        let thr = 1e-3 * 2.0 * 100.0;
        let mut out = vec![0f64; m];
        let mut out2 = vec![0f64; m];
        add_column_sums(
            &a,
            &a_sq,
            &b,
            &b_sq,
            d,
            thr,
            &mut out,
            Some((3.0, &mut out2)),
        )
        .unwrap();
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
            let (bs, bq) = (&b[s * d..e * d], &b_sq[s..e]);
            add_column_sums(&a, &a_sq, bs, bq, d, thr, &mut part, None).unwrap();
            for (j, v) in (s..e).zip(&part) {
                assert_eq!(v.to_bits(), out[j].to_bits(), "column {j}");
            }
        }
    }

    #[test]
    fn near_pairs_are_recomputed_from_the_difference() {
        // Rows of `a` at 1e-3 from rows of `b`, far from the origin: the
        // product form alone loses every digit of such a distance (its
        // rounding is ~1e-7 of |a|^2 + |b|^2, here ~1e-3 of the 1e-6 d2).
        let d = 30;
        let b: Vec<f32> = (0..9 * d)
            .map(|i| 20.0 + ((i * 29 % 31) as f32) * 0.5)
            .collect();
        let mut a = b.clone();
        for r in 0..9 {
            a[r * d] += 1e-3;
        }
        let sq = |x: &[f32]| -> Vec<f32> {
            x.chunks_exact(d)
                .map(|r| r.iter().map(|v| v * v).sum())
                .collect()
        };
        let (a_sq, b_sq) = (sq(&a), sq(&b));
        let thr = 1e-3 * (a_sq.iter().fold(0f32, |m, &v| m.max(v)) as f64) * 2.0;
        for j in 0..9 {
            let mut out = [0f64; 1];
            let (aj, bj) = (&a[j * d..(j + 1) * d], &b[j * d..(j + 1) * d]);
            add_column_sums(
                aj,
                &a_sq[j..j + 1],
                bj,
                &b_sq[j..j + 1],
                d,
                thr,
                &mut out,
                None,
            )
            .unwrap();
            let want = (aj[0] as f64 - bj[0] as f64).abs();
            assert!(
                (out[0] - want).abs() <= 1e-6 * want,
                "{j}: {} vs {want}",
                out[0]
            );
        }
    }
}
