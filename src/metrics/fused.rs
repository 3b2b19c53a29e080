//! Column sums of one distance block in a single pass on the CPU (f32
//! products): the fast path of [`super::distance`].
//!
//! The tensor form of a block (`addmm`, add the other norms, a min reduction
//! for the rounding check, clamp, sqrt, an f64 cast and a column sum) makes
//! seven passes over the `[n, b]` block and dispatches as many libtorch ops;
//! at PCA size (D = 30) those passes, not the GEMM, were most of an
//! evaluation's time. Here libtorch does only the GEMM `-2 a.b^T`; one loop
//! then adds the norms, floors, takes the square root and adds each column
//! into f64 sums, while tracking each row's smallest squared distance. Rows
//! whose minimum falls under the rounding threshold are scanned again and
//! their near pairs recomputed exactly from the difference (f64), as the
//! tensor form does, so both paths give the same distances up to f32
//! rounding of the far pairs.

use tch::{Kind, Tensor};

use super::distance::SQ_DIST_FLOOR;
use crate::error::Result;

/// Adds to `out` (`[b]`, f64) the column sums over the rows of `a` of
/// `d(a_i, b_j) = sqrt(max(|a_i|^2 + |b_j|^2 - 2 a_i.b_j, 1e-8))`.
///
/// * `a_neg2x`: `[n, D]` f32, `-2 a`; `a_x`: `[n, D]` f32; `b_x`: `[b, D]`
///   f32 (CPU, contiguous);
/// * `a_sq` (`[n]`), `b_sq` (`[b]`): squared norms (f32); `thr`: squared distances below it are
///   recomputed exactly;
/// * `buf`: scratch, grown as needed and reused across blocks.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_column_sums(
    a_neg2x: &Tensor,
    a_x: &Tensor,
    b_x: &Tensor,
    a_sq: &[f32],
    b_sq: &[f32],
    thr: f64,
    buf: &mut Vec<f32>,
    out: &mut [f64],
) -> Result<()> {
    let n = a_sq.len();
    let m = b_sq.len();
    if n == 0 || m == 0 {
        return Ok(());
    }
    let g = a_neg2x.f_mm(&b_x.f_transpose(0, 1)?)?.f_contiguous()?; // [n, m]
    buf.resize(n * m, 0.0);
    g.f_copy_data(buf.as_mut_slice(), n * m)?;
    let thr32 = thr as f32;
    let out = &mut out[..m];

    // Rows split over libtorch's thread count (each part its own column
    // sums, added in part order: the result does not depend on timing).
    let parts = if n * m >= 1 << 16 {
        (tch::get_num_threads().max(1) as usize).min(n)
    } else {
        1
    };
    let rows_per = n.div_ceil(parts);
    let mut near_rows: Vec<usize> = Vec::new();
    if parts <= 1 {
        near_rows = scan(buf, 0, m, a_sq, b_sq, thr32, out);
    } else {
        let results: Vec<(Vec<f64>, Vec<usize>)> = std::thread::scope(|sc| {
            let handles: Vec<_> = buf
                .chunks(rows_per * m)
                .enumerate()
                .map(|(k, part)| {
                    sc.spawn(move || {
                        let mut o = vec![0f64; m];
                        let near = scan(part, k * rows_per, m, a_sq, b_sq, thr32, &mut o);
                        (o, near)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| (Vec::new(), Vec::new())))
                .collect()
        });
        for (o, near) in results {
            if o.len() != m {
                return Err(crate::error::Error::invalid(
                    "metrics",
                    "internal: a distance worker thread failed",
                ));
            }
            out.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            near_rows.extend(near);
        }
    }
    if near_rows.is_empty() {
        return Ok(());
    }
    // Near pairs: replace the product-form distance by the exact one.
    let mut pi: Vec<i64> = Vec::new();
    let mut pj: Vec<i64> = Vec::new();
    let mut approx: Vec<f64> = Vec::new();
    for &i in &near_rows {
        for (j, (&g, &sb)) in buf[i * m..(i + 1) * m].iter().zip(b_sq).enumerate() {
            let d2 = g + a_sq[i] + sb;
            if d2 < thr32 {
                pi.push(i as i64);
                pj.push(j as i64);
                approx.push(floored_sqrt(d2) as f64);
            }
        }
    }
    let ii = Tensor::f_from_slice(&pi)?;
    let jj = Tensor::f_from_slice(&pj)?;
    let ai = a_x.f_index_select(0, &ii)?.f_to_kind(Kind::Double)?;
    let bj = b_x.f_index_select(0, &jj)?.f_to_kind(Kind::Double)?;
    let exact = ai
        .f_sub(&bj)?
        .f_square()?
        .f_sum_dim_intlist(Some(&[1i64][..]), false, Kind::Double)?
        .f_to_kind(Kind::Float)?;
    let exact: Vec<f32> = Vec::<f32>::try_from(&exact)?;
    for ((&j, &e), &a) in pj.iter().zip(&exact).zip(&approx) {
        out[j as usize] += floored_sqrt(e) as f64 - a;
    }
    Ok(())
}

/// Adds the floored distances of the rows `block` (`[k, m]` products
/// `-2 a.b`, the first being row `first` of `a`) into `out`; returns the
/// rows with a squared distance under `thr`.
fn scan(
    block: &[f32],
    first: usize,
    m: usize,
    a_sq: &[f32],
    b_sq: &[f32],
    thr: f32,
    out: &mut [f64],
) -> Vec<usize> {
    let mut near_rows = Vec::new();
    for (k, row) in block.chunks_exact(m).enumerate() {
        let i = first + k;
        let sa = a_sq[i];
        // Branch-free body (an integer flag instead of a float min) so the
        // loop vectorises.
        let mut near = 0u32;
        for ((&g, &sb), o) in row.iter().zip(b_sq).zip(out.iter_mut()) {
            let d2 = g + sa + sb;
            near |= (d2 < thr) as u32;
            *o += floored_sqrt(d2) as f64;
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
