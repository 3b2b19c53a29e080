//! Euclidean distances as matrix products and the energy-kernel MMD
//! (metrics.md, "Per-unit metrics", `mmd`):
//!
//! `d(a, b) = sqrt(max(|a|^2 + |b|^2 - 2 a.b, 1e-8))` (geomloss's form), and
//!
//! `MMD(X, Y) = mean_ij d(x_i, y_j) - 1/2 mean_ii' d(x_i, x_i') - 1/2 mean_jj' d(y_j, y_j')`
//!
//! biased (diagonal included, each diagonal term is `sqrt(1e-8) = 1e-4`),
//! uniform weights: half the biased energy distance, what geomloss
//! `SamplesLoss("energy")` returns. Distances are never computed per pair:
//! one `[n, b]` block is one GEMM, its column sums are grouped by reference
//! unit with `index_add`, so the whole MMD matrix of a covariate costs one
//! pass over (predicted cells x reference cells).
//!
//! Precision: with f32 products the squared distance of two (near-)identical
//! cells is dominated by rounding (`~1e-7 (|a|^2 + |b|^2)` instead of 0), which
//! would turn the `1e-4` floor into ~1e-2. Pairs below a rounding threshold
//! are therefore recomputed exactly from their difference. Callers centre the
//! cells first (distances are translation invariant) to keep norms small.
//! Every sum is accumulated in f64.

use tch::{Kind, Tensor};

use super::fused::{add_column_sums, SqDev};
pub use super::points::Points;
use crate::error::{Error, Result};

/// The squared-distance floor of geomloss (`clamp_min(d^2, 1e-8)`).
pub const SQ_DIST_FLOOR: f64 = 1e-8;

/// `|x - y|^2` from the differences in f64, rounded to f32: the exact form
/// the f32 product paths fall back to for near pairs.
pub(super) fn exact_sq_dist(x: impl Iterator<Item = f32>, y: impl Iterator<Item = f32>) -> f32 {
    x.zip(y)
        .map(|(a, b)| {
            let t = a as f64 - b as f64;
            t * t
        })
        .sum::<f64>() as f32
}

/// A squared distance below `DEDUP_TOL * (max|a|^2 + max|b|^2)` is recomputed
/// exactly in f32 mode (f32 rounding of the product form is ~1e-6 of that).
const DEDUP_TOL: f64 = 1e-3;

/// How distance blocks are computed.
#[derive(Debug, Clone, Copy)]
pub struct DistanceOptions {
    /// `Kind::Float` or `Kind::Double` for the products.
    pub kind: Kind,
    /// Columns (reference cells) per block.
    pub block: i64,
}

impl DistanceOptions {
    /// f64 products, 4096 columns per block.
    pub fn f64() -> Self {
        DistanceOptions {
            kind: Kind::Double,
            block: 4096,
        }
    }

    /// f32 products with exact recomputation of near-zero distances.
    pub fn f32() -> Self {
        DistanceOptions {
            kind: Kind::Float,
            block: 4096,
        }
    }
}

/// `[n, b]` distances between `a` (all rows) and rows `start..start+len` of
/// `b`, floored as geomloss does.
fn block(a: &Points, b: &Points, start: i64, len: i64, opts: &DistanceOptions) -> Result<Tensor> {
    distances(a, &b.rows(start, len)?, a.max_sq + b.max_sq, opts)
}

/// `[n, m]` floored distances of the rows of `a` (`[n, D]`) to the rows of
/// `b` (`[m, D]`); `norm_scale` bounds `|a|^2 + |b|^2` for the rounding
/// threshold.
fn distances(a: &Points, b: &Points, norm_scale: f64, opts: &DistanceOptions) -> Result<Tensor> {
    let (ax, bx) = (&a.x, &b.x);
    // d2 = |a|^2 + |b|^2 - 2 a.b  (one GEMM, one broadcast add)
    let mut d2 =
        a.sq.f_unsqueeze(1)?
            .f_addmm(&a.neg2x()?, &bx.f_transpose(0, 1)?)?;
    let _ = d2.f_add_(&b.sq.f_unsqueeze(0)?)?;
    if opts.kind == Kind::Float {
        let thr = DEDUP_TOL * norm_scale;
        // One reduction decides whether any pair needs the exact form.
        if d2.f_min()?.f_double_value(&[])? < thr {
            let near = d2.f_lt(thr)?;
            let idx = near.f_nonzero()?; // [k, 2]
            let i = idx.f_select(1, 0)?;
            let j = idx.f_select(1, 1)?;
            let ai = ax.f_index_select(0, &i)?.f_to_kind(Kind::Double)?;
            let bj = bx.f_index_select(0, &j)?.f_to_kind(Kind::Double)?;
            let exact = ai.f_sub(&bj)?.f_square()?.f_sum_dim_intlist(
                Some(&[1i64][..]),
                false,
                Kind::Double,
            )?;
            let _ = d2.f_index_put_(&[Some(i), Some(j)], &exact.f_to_kind(opts.kind)?, false)?;
        }
    }
    let _ = d2.f_clamp_min_(SQ_DIST_FLOOR)?;
    let _ = d2.f_sqrt_()?;
    Ok(d2)
}

/// Columns per block so that a block of `rows` rows is about 1 MiB of f32
/// (it stays in cache through the elementwise passes after the GEMM), at
/// most `max` and at least 64.
fn cache_block(rows: i64, max: i64) -> i64 {
    ((1 << 18) / rows.max(1)).clamp(64, max.max(64))
}

/// Columns per block for points of dimension `d`: few dimensions take the
/// direct path ([`super::direct`]), which keeps no `[n, b]` block and
/// takes the largest.
fn block_for(rows: i64, d: i64, max: i64) -> i64 {
    if d as usize <= super::direct::DIRECT_MAX_D {
        max.max(64)
    } else {
        cache_block(rows, max)
    }
}

/// Sums of `d(a_i, b_j)` over all `i` and over the `j` of each group of `b`.
///
/// * `groups`: `[m]` int64 group of each row of `b` (in `0..n_groups`).
/// * returns `[n_groups]` f64.
pub fn cross_sums(
    a: &Points,
    b: &Points,
    groups: &Tensor,
    n_groups: i64,
    opts: &DistanceOptions,
) -> Result<Tensor> {
    let m = b.len();
    if groups.size() != [m] {
        return Err(Error::Mismatch(format!(
            "{m} reference cells but {:?} group labels",
            groups.size()
        )));
    }
    if let (Some(a_sq), Some(b_sq)) = (&a.host_sq, &b.host_sq) {
        let groups: Vec<i64> = Vec::<i64>::try_from(&groups.f_to_kind(Kind::Int64)?)?;
        let mut acc = vec![0f64; n_groups.max(0) as usize];
        let step = block_for(a.len(), a.x.size()[1], opts.block);
        let mut cols = vec![0f64; step as usize];
        let mut buf = Vec::new();
        let thr = DEDUP_TOL * (a.max_sq + b.max_sq);
        for start in (0..m).step_by(step as usize) {
            let len = step.min(m - start);
            let (s, e) = (start as usize, (start + len) as usize);
            cols.iter_mut().for_each(|c| *c = 0.0);
            let bx = b.x.f_narrow(0, start, len)?;
            add_column_sums(&a.x, &bx, a_sq, &b_sq[s..e], thr, &mut buf, &mut cols, None)?;
            for (&g, &c) in groups[s..e].iter().zip(&cols) {
                let slot = usize::try_from(g).ok().and_then(|g| acc.get_mut(g));
                match slot {
                    Some(slot) => *slot += c,
                    None => {
                        return Err(Error::Mismatch(format!(
                            "group label {g} is outside 0..{n_groups}"
                        )))
                    }
                }
            }
        }
        return Ok(Tensor::f_from_slice(&acc)?);
    }
    let mut acc = Tensor::f_zeros([n_groups], (Kind::Double, a.x.device()))?;
    if a.is_empty() {
        return Ok(acc);
    }
    let step = cache_block(a.len(), opts.block);
    for start in (0..m).step_by(step as usize) {
        let len = step.min(m - start);
        let d = block(a, b, start, len, opts)?;
        let col = d.f_sum_dim_intlist(Some(&[0i64][..]), false, Kind::Double)?; // [len]
        let _ = acc.f_index_add_(0, &groups.f_narrow(0, start, len)?, &col)?;
    }
    Ok(acc)
}

/// Rows per tile of [`self_sum`]: the distance matrix is symmetric, so only
/// tiles on or above the diagonal are computed (about half the products).
const SELF_TILE: i64 = 256;

/// `sum_ii' d(a_i, a_i')` over all ordered pairs, diagonal included.
pub fn self_sum(a: &Points, opts: &DistanceOptions) -> Result<f64> {
    Ok(self_sums(a, opts, None)?.0)
}

/// [`self_sum`], and with `shift` (f32 CPU points only) also
/// `sum_ii' (|a_i - a_i'|^2 - shift)^2` over the same pairs (NaN without).
pub(super) fn self_sums(
    a: &Points,
    opts: &DistanceOptions,
    shift: Option<f64>,
) -> Result<(f64, f64)> {
    let n = a.len();
    let mut total = 0.0;
    let mut total2 = 0.0;
    let tile = SELF_TILE.min(opts.block.max(1));
    if let Some(sq) = &a.host_sq {
        let thr = DEDUP_TOL * 2.0 * a.max_sq;
        let mut buf = Vec::new();
        let mut cols = Vec::new();
        let mut cols2 = Vec::new();
        for r0 in (0..n).step_by(tile as usize) {
            let rows = tile.min(n - r0);
            let r = a.rows(r0, rows)?;
            let step = block_for(rows, a.x.size()[1], opts.block).max(tile);
            let r_sq = &sq[r0 as usize..(r0 + rows) as usize];
            for c0 in (r0..n).step_by(step as usize) {
                let len = step.min(n - c0);
                let (s, e) = (c0 as usize, (c0 + len) as usize);
                cols.clear();
                cols.resize(len as usize, 0f64);
                cols2.clear();
                cols2.resize(if shift.is_some() { len as usize } else { 0 }, 0f64);
                let cx = a.x.f_narrow(0, c0, len)?;
                let dev = shift.map(|sh| SqDev {
                    shift: sh as f32,
                    out: &mut cols2[..],
                });
                add_column_sums(&r.x, &cx, r_sq, &sq[s..e], thr, &mut buf, &mut cols, dev)?;
                // The diagonal tile counts once, the tiles to its right
                // twice (their mirror images below the diagonal).
                let fold = |c: &[f64]| {
                    let all: f64 = c.iter().sum();
                    if c0 == r0 {
                        let diag: f64 = c[..(rows as usize).min(c.len())].iter().sum();
                        diag + 2.0 * (all - diag)
                    } else {
                        2.0 * all
                    }
                };
                total += fold(&cols);
                total2 += fold(&cols2);
            }
        }
        return Ok((total, if shift.is_some() { total2 } else { f64::NAN }));
    }
    for r0 in (0..n).step_by(tile as usize) {
        let rows = tile.min(n - r0);
        let r = a.rows(r0, rows)?;
        // Columns from r0 on, in blocks: the diagonal tile counts once, the
        // tiles to its right twice (their mirror images below the diagonal).
        let step = cache_block(rows, opts.block).max(tile);
        for c0 in (r0..n).step_by(step as usize) {
            let cols = step.min(n - c0);
            let d = distances(&r, &a.rows(c0, cols)?, 2.0 * a.max_sq, opts)?;
            let all = d.f_sum(Kind::Double)?.f_double_value(&[])?;
            if c0 == r0 {
                let diag = d
                    .f_narrow(1, 0, rows)?
                    .f_sum(Kind::Double)?
                    .f_double_value(&[])?;
                total += diag + 2.0 * (all - diag);
            } else {
                total += 2.0 * all;
            }
        }
    }
    Ok((total, f64::NAN))
}

/// MMD from the three distance sums of metrics.md's formula.
pub fn mmd_from_sums(cross: f64, self_x: f64, self_y: f64, n: usize, m: usize) -> f64 {
    let (n, m) = (n as f64, m as f64);
    cross / (n * m) - 0.5 * self_x / (n * n) - 0.5 * self_y / (m * m)
}

/// Energy MMD of two cell sets (`x`: `[n, D]`, `y`: `[m, D]`), centred on
/// the mean of `y` first. NaN when either set is empty.
pub fn energy_mmd(x: &Tensor, y: &Tensor, opts: &DistanceOptions) -> Result<f64> {
    let (n, m) = (x.size()[0], y.size()[0]);
    if n == 0 || m == 0 {
        return Ok(f64::NAN);
    }
    let c = y
        .f_to_kind(Kind::Double)?
        .f_mean_dim(Some(&[0i64][..]), true, Kind::Double)?;
    let px = Points::new(&x.f_to_kind(Kind::Double)?.f_sub(&c)?, opts)?;
    let py = Points::new(&y.f_to_kind(Kind::Double)?.f_sub(&c)?, opts)?;
    let zeros = Tensor::f_zeros([m], (Kind::Int64, y.device()))?;
    let cross = cross_sums(&px, &py, &zeros, 1, opts)?.f_double_value(&[0])?;
    Ok(mmd_from_sums(
        cross,
        self_sum(&px, opts)?,
        self_sum(&py, opts)?,
        n as usize,
        m as usize,
    ))
}
