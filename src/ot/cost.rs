//! Cost matrices between point clouds, batched over conditions, and their
//! per-condition scaling (ott's `scale_cost`).
//!
//! Squared Euclidean cost (ott's `costs.SqEuclidean`, CellFlow's default):
//!
//! `C_ij = |x_i - y_j|^2 = |x_i|^2 + |y_j|^2 - 2 x_i . y_j`
//!
//! computed as one batched GEMM per call. Both clouds of a condition are
//! first centred on their joint mean (distances are translation invariant),
//! which keeps the norms, and so the f32 cancellation error of the product
//! form, small; negative round-off is clamped to 0.

use tch::{Kind, Tensor};

use super::config::ScaleCost;
use crate::error::{Error, Result};

/// The kind the OT code computes in for an input of kind `k`: f64 stays
/// f64, everything else becomes f32.
pub(crate) fn solve_kind(k: Kind) -> Kind {
    if k == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// Squared Euclidean costs `x [C, n, d]`, `y [C, k, d]` -> `[C, n, k]`, in
/// f64 when `x` is f64 and f32 otherwise, on `x`'s device.
pub fn sq_euclidean(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (xs, ys) = (x.size(), y.size());
    if xs.len() != 3 || ys.len() != 3 || xs[0] != ys[0] || xs[2] != ys[2] {
        return Err(Error::Mismatch(format!(
            "OT point clouds must be x [C, n, d] and y [C, k, d] with the same C and d, got \
             x {xs:?} and y {ys:?}"
        )));
    }
    let kind = solve_kind(x.kind());
    let x = x.f_to_kind(kind)?;
    let y = y.f_to_kind(kind)?.f_to_device(x.device())?;
    if xs[1] == 0 || ys[1] == 0 {
        return Ok(Tensor::f_zeros([xs[0], xs[1], ys[1]], (kind, x.device()))?);
    }
    let centre = Tensor::f_cat(&[&x, &y], 1)?.f_mean_dim(Some(&[1i64][..]), true, kind)?; // [C, 1, d]
    let x = x.f_sub(&centre)?; // [C, n, d]
    let y = y.f_sub(&centre)?; // [C, k, d]
    let xsq = x
        .f_square()?
        .f_sum_dim_intlist(Some(&[2i64][..]), false, kind)?; // [C, n]
    let ysq = y
        .f_square()?
        .f_sum_dim_intlist(Some(&[2i64][..]), false, kind)?; // [C, k]
    let norms = xsq.f_unsqueeze(2)?.f_add(&ysq.f_unsqueeze(1)?)?; // [C, n, k]
    let cost = norms.f_baddbmm(&x, &y.f_transpose(1, 2)?, 1.0, -2.0)?; // [C, n, k]
    Ok(cost.f_clamp_min(0.0)?)
}

/// The divisor of each condition's cost under `how`: `cost [C, n, k]` ->
/// `[C]` (same kind). A statistic that is 0 or not finite (e.g. the mean of
/// an all-zero cost) becomes 1, leaving that condition unscaled.
pub fn cost_scale(cost: &Tensor, how: ScaleCost) -> Result<Tensor> {
    let s = cost.size();
    if s.len() != 3 {
        return Err(Error::Mismatch(format!(
            "OT cost must be [C, n, k], got {s:?}"
        )));
    }
    let kind = cost.kind();
    let flat = cost.f_reshape([s[0], s[1] * s[2]])?; // [C, n k]
    let stat = match how {
        ScaleCost::Mean => flat.f_mean_dim(Some(&[1i64][..]), false, kind)?,
        ScaleCost::MaxCost => flat.f_amax([1i64], false)?,
        ScaleCost::Median => flat.f_quantile_scalar(0.5, 1, false, "linear")?,
        ScaleCost::Constant(v) => Tensor::f_full([s[0]], v, (kind, cost.device()))?,
    }; // [C]
    let usable = stat.f_isfinite()?.f_logical_and(&stat.f_gt(0.0)?)?; // [C]
    Ok(stat.f_where_scalarother(&usable, 1.0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(x: &[[f64; 2]], y: &[[f64; 2]]) -> Vec<f64> {
        let mut v = Vec::new();
        for a in x {
            for b in y {
                v.push((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2));
            }
        }
        v
    }

    #[test]
    fn sq_euclidean_matches_the_definition() {
        let x = [[1.0, 2.0], [-0.5, 0.25], [3.0, -1.0]];
        let y = [[0.0, 0.0], [1.0, 2.0]];
        let xt = Tensor::from_slice(x.as_flattened()).reshape([1, 3, 2]);
        let yt = Tensor::from_slice(y.as_flattened()).reshape([1, 2, 2]);
        let c = sq_euclidean(&xt, &yt).unwrap();
        assert_eq!(c.size(), [1, 3, 2]);
        assert_eq!(c.kind(), Kind::Double);
        let got = Vec::<f64>::try_from(c.reshape([-1])).unwrap();
        for (g, w) in got.iter().zip(brute(&x, &y)) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
        // f32 inputs far from the origin: centring keeps the error small.
        let off = Tensor::from_slice(&[1000.0f32, -2000.0]).reshape([1, 1, 2]);
        let c32 = sq_euclidean(
            &(xt.to_kind(Kind::Float) + &off),
            &(yt.to_kind(Kind::Float) + &off),
        )
        .unwrap();
        assert_eq!(c32.kind(), Kind::Float);
        let d = (c32.to_kind(Kind::Double) - &c)
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-4, "{d}");
    }

    #[test]
    fn shapes_are_checked() {
        let x = Tensor::zeros([2, 3, 4], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::zeros([2, 3, 5], (Kind::Float, tch::Device::Cpu));
        let e = sq_euclidean(&x, &y).unwrap_err().to_string();
        assert!(e.contains("[2, 3, 4]") && e.contains("[2, 3, 5]"), "{e}");
        assert!(cost_scale(&x.reshape([6, 4]), ScaleCost::Mean).is_err());
    }

    #[test]
    fn scale_per_condition() {
        // Two conditions: [[1, 2], [3, 10]] and all zeros.
        let c = Tensor::from_slice(&[1.0, 2.0, 3.0, 10.0, 0.0, 0.0, 0.0, 0.0]).reshape([2, 2, 2]);
        let get = |h| Vec::<f64>::try_from(cost_scale(&c, h).unwrap()).unwrap();
        assert_eq!(get(ScaleCost::Mean), [4.0, 1.0]);
        assert_eq!(get(ScaleCost::MaxCost), [10.0, 1.0]);
        assert_eq!(get(ScaleCost::Median), [2.5, 1.0]);
        assert_eq!(get(ScaleCost::Constant(2.0)), [2.0, 2.0]);
    }
}
