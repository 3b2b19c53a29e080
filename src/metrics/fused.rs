//! Column sums of one distance block in a single pass on the CPU (f32
//! products): the fast path of [`super::distance`].
//!
//! The tensor form of a block (`addmm`, add the other norms, a min reduction
//! for the rounding check, clamp, sqrt, an f64 cast and a column sum) makes
//! seven passes over the `[n, b]` block and dispatches as many libtorch ops;
//! at PCA size (D = 30) those passes, not the GEMM, were most of an
//! evaluation's time. Here libtorch does only the GEMM `a.b^T`; one loop
//! then adds the norms, floors, takes the square root and adds each column
//! into f64 sums, while tracking each row's smallest squared distance. Rows
//! whose minimum falls under the rounding threshold are scanned again and
//! their near pairs recomputed exactly from the difference (f64), as the
//! tensor form does, so both paths give the same distances up to f32
//! rounding of the far pairs.

use tch::{Kind, Tensor};

use super::direct::{self, DIRECT_MAX_D};
use super::distance::{exact_sq_dist, SQ_DIST_FLOOR};
use super::points::host_slice;
use super::team::map_chunks;
use crate::error::Result;

/// Adds to `out` (`[b]`, f64) the column sums over the rows of `a` of
/// `d(a_i, b_j) = sqrt(max(|a_i|^2 + |b_j|^2 - 2 a_i.b_j, 1e-8))`.
///
/// * `a_x`: `[n, D]` f32; `b_x`: `[b, D]`
///   f32 (CPU, contiguous);
/// * `a_sq` (`[n]`), `b_sq` (`[b]`): squared norms (f32); `thr`: squared distances below it are
///   recomputed exactly;
/// * `buf`: scratch, grown as needed and reused across blocks;
/// * `dev`: when given, also adds `(d2 - shift)^2` of every pair (the
///   squared distance, not floored) into its per-column sums (the second
///   moment [`super::mmd_bounds`] needs; exact for the near pairs too).
#[allow(clippy::too_many_arguments)]
pub(super) fn add_column_sums(
    a_x: &Tensor,
    b_x: &Tensor,
    a_sq: &[f32],
    b_sq: &[f32],
    thr: f64,
    buf: &mut Vec<f32>,
    out: &mut [f64],
    mut dev: Option<SqDev<'_>>,
) -> Result<()> {
    let n = a_sq.len();
    let m = b_sq.len();
    if n == 0 || m == 0 {
        return Ok(());
    }
    let d = a_x.size().get(1).copied().unwrap_or(0).max(0) as usize;
    if d <= DIRECT_MAX_D {
        // SAFETY: points are never written after they are built; the
        // slices end with this call.
        if let (Some(a), Some(b)) = unsafe { (host_slice(a_x), host_slice(b_x)) } {
            let dev = dev.map(|v| (v.shift, v.out));
            return direct::add_column_sums(a, a_sq, b, b_sq, d, thr, &mut out[..m], dev);
        }
    }
    // a.b (the scan doubles and negates it: -2 (a.b) is exactly the
    // product of -2 a, so no scaled copy of a is kept), written by the GEMM
    // straight into `buf` (a copy out of a fresh tensor was one more pass
    // over the block and as many freshly faulted pages).
    buf.resize(n * m, 0.0);
    {
        // SAFETY: `buf` holds n * m f32 and outlives `g`, the only access
        // to it until this block ends; `mm_out` writes an `[n, m]`
        // contiguous result of that size in place (no resize).
        let g = unsafe {
            Tensor::f_from_blob(
                buf.as_mut_ptr().cast::<u8>(),
                &[n as i64, m as i64],
                &[],
                Kind::Float,
                tch::Device::Cpu,
            )?
        };
        let _ = a_x.f_mm_out(&g, &b_x.f_transpose(0, 1)?)?;
    }
    let thr32 = thr as f32;
    let out = &mut out[..m];
    let shift = dev.as_ref().map(|d| d.shift);

    // Rows are summed in fixed chunks of ROW_CHUNK (each chunk its own
    // column sums from 0, added in chunk order), so a column's sum does not
    // depend on the block it falls in, the thread count or timing: bounded
    // MMD ranks compare pairs computed against different sets of reference
    // units, and equal inputs must give equal sums. Large blocks spread
    // their chunks over libtorch's thread count.
    let chunks: Vec<&[f32]> = buf.chunks(ROW_CHUNK * m).collect();
    let threads = if n * m >= 1 << 16 {
        (tch::get_num_threads().max(1) as usize).min(chunks.len())
    } else {
        1
    };
    let run = |k: usize| {
        let mut o = vec![0f64; m];
        let mut o2 = vec![0f64; if shift.is_some() { m } else { 0 }];
        let part = chunks[k];
        let first = k * ROW_CHUNK;
        let near = match shift {
            Some(s) => scan::<true>(part, first, m, a_sq, b_sq, thr32, s, &mut o, &mut o2),
            None => scan::<false>(part, first, m, a_sq, b_sq, thr32, 0.0, &mut o, &mut o2),
        };
        (o, o2, near)
    };
    let results = map_chunks(chunks.len(), threads, run)?;
    let mut near_rows: Vec<usize> = Vec::new();
    for (o, o2, near) in results {
        out.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
        if let Some(d) = dev.as_mut() {
            d.out.iter_mut().zip(&o2).for_each(|(a, b)| *a += b);
        }
        near_rows.extend(near);
    }
    if near_rows.is_empty() {
        return Ok(());
    }
    // Near pairs: replace the product-form distance by the exact one,
    // from the difference in f64 on the host.
    let (a_c, b_c) = (a_x.f_contiguous()?, b_x.f_contiguous()?);
    // SAFETY: points are never written after they are built; the slices
    // end with this call.
    let (Some(ax), Some(bx)) = (unsafe { host_slice(&a_c) }, unsafe { host_slice(&b_c) }) else {
        return Err(crate::error::Error::invalid(
            "metrics",
            "internal: fused distances need contiguous f32 CPU points",
        ));
    };
    for &i in &near_rows {
        let ai = &ax[i * d..(i + 1) * d];
        for (j, (&g, &sb)) in buf[i * m..(i + 1) * m].iter().zip(b_sq).enumerate() {
            let approx = -2.0 * g + a_sq[i] + sb;
            if approx >= thr32 {
                continue;
            }
            let exact = exact_sq_dist(ai.iter().copied(), bx[j * d..(j + 1) * d].iter().copied());
            out[j] += floored_sqrt(exact) as f64 - floored_sqrt(approx) as f64;
            if let Some(dv) = dev.as_mut() {
                let (de, da) = ((exact - dv.shift) as f64, (approx - dv.shift) as f64);
                dv.out[j] += de * de - da * da;
            }
        }
    }
    Ok(())
}

/// Rows per independently summed chunk of a block (see `add_column_sums`).
const ROW_CHUNK: usize = 256;

/// The optional second sum of [`add_column_sums`]: `sum (d2 - shift)^2`
/// per column, added into `out` (`[b]`).
pub(super) struct SqDev<'a> {
    pub shift: f32,
    pub out: &'a mut [f64],
}

/// Adds the floored distances of the rows `block` (`[k, m]` products
/// `a.b`, the first being row `first` of `a`) into `out` (and with `DEV`
/// their `(d2 - shift)^2` into `out2`); returns the rows with a squared
/// distance under `thr`.
#[allow(clippy::too_many_arguments)]
fn scan<const DEV: bool>(
    block: &[f32],
    first: usize,
    m: usize,
    a_sq: &[f32],
    b_sq: &[f32],
    thr: f32,
    shift: f32,
    out: &mut [f64],
    out2: &mut [f64],
) -> Vec<usize> {
    let mut near_rows = Vec::new();
    for (k, row) in block.chunks_exact(m).enumerate() {
        let i = first + k;
        let sa = a_sq[i];
        // Branch-free body (an integer flag instead of a float min) so the
        // loop vectorises.
        let mut near = 0u32;
        if DEV {
            for (((&g, &sb), o), o2) in row
                .iter()
                .zip(b_sq)
                .zip(out.iter_mut())
                .zip(out2.iter_mut())
            {
                let d2 = -2.0 * g + sa + sb;
                near |= (d2 < thr) as u32;
                *o += floored_sqrt(d2) as f64;
                let e = (d2 - shift) as f64;
                *o2 += e * e;
            }
        } else {
            for ((&g, &sb), o) in row.iter().zip(b_sq).zip(out.iter_mut()) {
                let d2 = -2.0 * g + sa + sb;
                near |= (d2 < thr) as u32;
                *o += floored_sqrt(d2) as f64;
            }
        }
        if near != 0 {
            near_rows.push(i);
        }
    }
    near_rows
}

/// `sqrt(max(d2, 1e-8))` in f32 (a select, not `f32::max`, so the scan
/// loop vectorises).
#[inline]
fn floored_sqrt(d2: f32) -> f32 {
    let floor = SQ_DIST_FLOOR as f32;
    (if d2 > floor { d2 } else { floor }).sqrt()
}
