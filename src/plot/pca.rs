//! PCA for the Figure 1 view: fitted on reference cells with libtorch's SVD.
//!
//! With `X` `[n, m]` (cells x genes) and its column mean `mu` `[m]`, the
//! centred matrix factorises as `X - mu = U S V^T`; the first `k` columns of
//! `V` are the components `[k, m]` and a cell projects to
//! `(x - mu) V_k` `[k]`. The explained-variance ratio of component `j` is
//! `S_j^2 / sum S^2`. Each component's sign is fixed so its largest-magnitude
//! loading is positive, making the view deterministic. At most `max_cells`
//! cells (a seeded random subset) are used for the fit.

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// A fitted PCA.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Column means of the fitted cells, `[m]`.
    pub mean: Vec<f32>,
    /// Components, `[k, m]` row-major (each of unit norm).
    pub components: Array2<f32>,
    /// Fraction of the variance each component explains, `[k]`.
    pub explained_variance_ratio: Vec<f64>,
}

impl Pca {
    /// Fits `k` components on the rows of `x` `[n, m]` (at most `max_cells`
    /// of them, chosen with `seed`).
    pub fn fit(x: ArrayView2<f32>, k: usize, max_cells: usize, seed: u64) -> Result<Pca> {
        let (n, m) = x.dim();
        if n < 2 || m < 1 {
            return Err(Error::invalid(
                "PCA",
                format!("needs at least 2 cells and 1 gene, got {n} x {m}"),
            ));
        }
        let rows: Vec<usize> = if n > max_cells.max(2) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut v = rand::seq::index::sample(&mut rng, n, max_cells.max(2)).into_vec();
            v.sort_unstable();
            v
        } else {
            (0..n).collect()
        };
        let sub = x.select(Axis(0), &rows);
        let nf = sub.nrows();
        let data: Vec<f32> = sub.iter().copied().collect();
        let t = Tensor::f_from_slice(&data)?
            .f_view([nf as i64, m as i64])?
            .f_to_kind(Kind::Double)?;
        let mu = t.f_mean_dim(Some(&[0i64][..]), true, Kind::Double)?; // [1, m]
        let xc = t.f_sub(&mu)?;
        let (_u, s, v) = xc.f_svd(true, true)?; // s [r], v [m, r]
        let r = s.size().first().copied().unwrap_or(0) as usize;
        let k = k.min(r).max(1);
        let s: Vec<f64> = Vec::<f64>::try_from(&s)?;
        let total: f64 = s.iter().map(|x| x * x).sum();
        let vk = v
            .f_narrow(1, 0, k as i64)?
            .f_transpose(0, 1)?
            .f_contiguous()?; // [k, m]
        let comps: Vec<f64> = Vec::<f64>::try_from(&vk.f_flatten(0, -1)?)?;
        let mut components = Array2::<f32>::zeros((k, m));
        for j in 0..k {
            let row = &comps[j * m..(j + 1) * m];
            let (imax, _) = row.iter().enumerate().fold((0, 0.0f64), |acc, (i, &v)| {
                if v.abs() > acc.1 {
                    (i, v.abs())
                } else {
                    acc
                }
            });
            let sign = if row[imax] < 0.0 { -1.0 } else { 1.0 };
            for (c, &v) in components.row_mut(j).iter_mut().zip(row) {
                *c = (sign * v) as f32;
            }
        }
        let mean: Vec<f32> = Vec::<f64>::try_from(&mu.f_flatten(0, -1)?)?
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let explained_variance_ratio = s
            .iter()
            .take(k)
            .map(|x| if total > 0.0 { x * x / total } else { 0.0 })
            .collect();
        Ok(Pca {
            mean,
            components,
            explained_variance_ratio,
        })
    }

    /// Projects the rows of `x` `[n, m]` -> `[n, k]`.
    pub fn project(&self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        let m = self.mean.len();
        if x.ncols() != m {
            return Err(Error::Mismatch(format!(
                "PCA was fitted on {m} genes, the data has {}",
                x.ncols()
            )));
        }
        let k = self.components.nrows();
        let mut out = Array2::<f32>::zeros((x.nrows(), k));
        for (i, row) in x.axis_iter(Axis(0)).enumerate() {
            for j in 0..k {
                let mut acc = 0f64;
                for ((&v, &mu), &c) in row
                    .iter()
                    .zip(&self.mean)
                    .zip(self.components.row(j).iter())
                {
                    acc += ((v - mu) * c) as f64;
                }
                out[[i, j]] = acc as f32;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_main_axis() {
        // Points along (1, 1, 0) with small noise along (1, -1, 0): the first
        // component is (1, 1, 0)/sqrt(2) (sign fixed positive).
        let mut x = Array2::<f32>::zeros((50, 3));
        for i in 0..50 {
            let t = i as f32 - 25.0;
            let e = if i % 2 == 0 { 0.1 } else { -0.1 };
            x[[i, 0]] = t + e;
            x[[i, 1]] = t - e;
        }
        let p = Pca::fit(x.view(), 2, 1000, 0).unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (p.components[[0, 0]] - h).abs() < 1e-3 && (p.components[[0, 1]] - h).abs() < 1e-3,
            "{:?}",
            p.components
        );
        assert!(p.explained_variance_ratio[0] > 0.99);
        let z = p.project(x.view()).unwrap();
        assert_eq!(z.dim(), (50, 2));
        // First point: t = -25, mean t = -0.5, so (x - mean) . c1 = -24.5 * sqrt(2)
        // (the +-0.1 noise nearly cancels along c1).
        assert!(
            (z[[0, 0]] + 24.5 * std::f32::consts::SQRT_2).abs() < 1e-2,
            "{}",
            z[[0, 0]]
        );
    }
}
