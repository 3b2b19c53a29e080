//! The `pca` aggregation (metrics.md): PCA fitted on the reference matrix (all
//! its cells, controls included), centred with the reference mean, keeping
//! `k` components (30 in the paper); reference and prediction are projected
//! with the same centring and loadings.
//!
//! The components are the top-`k` eigenvectors of the `[G, G]` covariance,
//! accumulated over row chunks (f64 sums of f32 or f64 chunk products) and
//! decomposed with libtorch's `linalg_eigh` in f64: deterministic, no random
//! start. Each component's sign is fixed so that its largest-|loading| gene is
//! positive (signs do not change distances, hence MMD).
//!
//! This is the crate's one PCA: the metrics' `pca` space, the PCA flow
//! spaces' statistics (`model::stats`) and the Figure 1 view
//! (`plot::pca_view`, fitted on a seeded subsample) all use it.

use ndarray::Array2;
use tch::{Device, Kind, Tensor};

use super::aggregate::rows_tensor;
use super::source::RowSource;
use crate::error::{Error, Result};

/// Cells per chunk while accumulating the covariance.
const CHUNK: usize = 4096;

/// A fitted PCA.
#[derive(Debug)]
pub struct Pca {
    /// `[G]` f64 mean of the reference cells.
    pub mean: Tensor,
    /// `[G, k]` f64 loadings (orthonormal columns, descending variance).
    pub components: Tensor,
    /// `k` variances along the components (ddof = 1).
    pub explained_variance: Vec<f64>,
    /// The total variance of the fitted cells (trace of the covariance).
    pub total_variance: f64,
}

impl Pca {
    /// Fits `k` components on the rows `rows` of `x` (`[n_cells, G]`, dense
    /// or CSR: densified [`CHUNK`] rows at a time).
    /// `kind` is the chunk product type (`Float` is about 2x faster on CPU;
    /// sums are f64 either way).
    pub fn fit(
        x: &crate::anndata::Expr,
        rows: &[usize],
        k: usize,
        kind: Kind,
        device: Device,
    ) -> Result<Pca> {
        Self::fit_source(&RowSource::Memory(x), rows, k, kind, device)
    }

    /// As [`fit`](Self::fit), reading the cells from `x` (in memory or
    /// streamed from the file, 4,096 rows at a time).
    pub fn fit_source(
        x: &RowSource,
        rows: &[usize],
        k: usize,
        kind: Kind,
        device: Device,
    ) -> Result<Pca> {
        let g = x.n_genes();
        let n = rows.len();
        if k > g {
            return Err(Error::invalid(
                "pca_components",
                format!("{k} components requested but the data has only {g} genes"),
            ));
        }
        if n < 2 {
            return Err(Error::invalid(
                "pca",
                format!("the reference has {n} cells; PCA needs at least 2"),
            ));
        }
        // Pass 1: the mean.
        let mut sum = Tensor::f_zeros([g as i64], (Kind::Double, device))?;
        for chunk in rows.chunks(CHUNK) {
            let t = x.tensor(chunk, None, device)?;
            sum = sum.f_add(&t.f_sum_dim_intlist(Some(&[0i64][..]), false, Kind::Double)?)?;
        }
        let mean = sum.f_div_scalar(n as f64)?;
        // Pass 2: the covariance of the centred cells.
        let mean_k = mean.f_to_kind(kind)?.f_unsqueeze(0)?;
        let cov = Tensor::f_zeros([g as i64, g as i64], (Kind::Double, device))?;
        // `eigh("L")` reads the lower triangle only, so only the gene blocks
        // on and below the diagonal are multiplied (10 of 16 for 4 blocks).
        // Each block's product lands in one reused buffer and is added in
        // place (fresh 16-32 MB tensors per chunk were mostly page zeroing).
        let blocks = if g >= 1024 { 4 } else { 1 };
        let bs = g.div_ceil(blocks) as i64;
        let spans: Vec<(i64, i64)> = (0..blocks as i64)
            .map(|b| (b * bs, bs.min(g as i64 - b * bs)))
            .filter(|&(_, l)| l > 0)
            .collect();
        let prod = Tensor::f_empty([bs, bs], (kind, device))?;
        for chunk in rows.chunks(CHUNK) {
            let mut t = x.tensor(chunk, None, device)?.f_to_kind(kind)?;
            let _ = t.f_sub_(&mean_k)?;
            for (bi, &(r0, rl)) in spans.iter().enumerate() {
                let tr = t.f_narrow(1, r0, rl)?.f_transpose(0, 1)?;
                for &(c0, cl) in &spans[..=bi] {
                    let out = prod.f_narrow(0, 0, rl)?.f_narrow(1, 0, cl)?;
                    let _ = tr.f_mm_out(&out, &t.f_narrow(1, c0, cl)?)?;
                    let _ = cov.f_narrow(0, r0, rl)?.f_narrow(1, c0, cl)?.f_add_(&out)?;
                }
            }
        }
        let cov = cov.f_div_scalar((n - 1) as f64)?;
        let (vals, vecs) = cov.f_linalg_eigh("L")?; // ascending; lower triangle
        let idx: Vec<i64> = (0..k as i64).map(|i| g as i64 - 1 - i).collect();
        let idx = Tensor::f_from_slice(&idx)?.f_to_device(device)?;
        let comps = vecs.f_index_select(1, &idx)?; // [G, k]
        let explained_variance = super::aggregate::to_vec1(&vals.f_index_select(0, &idx)?)?;
        let total_variance = f64::try_from(cov.f_trace()?)?;
        // Sign: the largest-|loading| gene of each component is positive.
        let arg = comps.f_abs()?.f_argmax(0, true)?; // [1, k]
        let sign = comps.f_gather(0, &arg, false)?.f_sign()?; // [1, k]
        let sign = sign.f_where_self(&sign.f_ne(0.0)?, &sign.f_ones_like()?)?;
        let components = comps.f_mul(&sign)?;
        Ok(Pca {
            mean,
            components,
            explained_variance,
            total_variance,
        })
    }

    /// Projects cells `x` (`[n, G]`, any float kind) to `[n, k]` f64.
    pub fn project(&self, x: &Tensor) -> Result<Tensor> {
        let xc = x
            .f_to_kind(Kind::Double)?
            .f_sub(&self.mean.f_unsqueeze(0)?)?;
        Ok(xc.f_mm(&self.components)?)
    }

    /// [`Pca::project`] with the f64 copy of `x` made in `buf` (grown when
    /// too small, reused across calls): the same values, no fresh memory
    /// per call but the `[n, k]` result.
    pub fn project_in(&self, x: &Tensor, buf: &mut Option<Tensor>) -> Result<Tensor> {
        let (n, g) = (x.size()[0], x.size().get(1).copied().unwrap_or(0));
        let fits = buf
            .as_ref()
            .is_some_and(|b| b.size()[1] == g && b.size()[0] >= n && b.device() == x.device());
        if !fits {
            *buf = Some(Tensor::f_empty([n.max(1), g], (Kind::Double, x.device()))?);
        }
        let Some(b) = buf.as_ref() else {
            return self.project(x);
        };
        let mut xc = b.f_narrow(0, 0, n)?;
        xc.f_copy_(x)?;
        let _ = xc.f_sub_(&self.mean.f_unsqueeze(0)?)?;
        Ok(xc.f_mm(&self.components)?)
    }

    /// Projects the cells `rows` of `x` (`[n_cells, G]`, dense or CSR) to
    /// `[rows.len(), k]` f32 on the host ([`CHUNK`] rows densified at a time).
    pub fn project_rows(&self, x: &crate::anndata::Expr, rows: &[usize]) -> Result<Array2<f32>> {
        let g = self.mean.size().first().copied().unwrap_or(0) as usize;
        if x.ncols() != g {
            return Err(Error::Mismatch(format!(
                "PCA was fitted on {g} genes, the data has {}",
                x.ncols()
            )));
        }
        let k = self.n_components();
        let device = self.mean.device();
        let mut out = Vec::with_capacity(rows.len() * k);
        for chunk in rows.chunks(CHUNK) {
            let z = self.project(&rows_tensor(x, chunk, None, device)?)?; // [c, k] f64
            let z = z.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?;
            out.extend(Vec::<f32>::try_from(&z.f_flatten(0, -1)?)?);
        }
        Array2::from_shape_vec((rows.len(), k), out)
            .map_err(|e| Error::Mismatch(format!("PCA projection: {e}")))
    }

    /// Fraction of the total variance along each component, `[k]`.
    pub fn explained_variance_ratio(&self) -> Vec<f64> {
        self.explained_variance
            .iter()
            .map(|v| {
                if self.total_variance > 0.0 {
                    v / self.total_variance
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Number of components.
    pub fn n_components(&self) -> usize {
        self.explained_variance.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anndata::Expr;

    /// Points along (1, 1, 0) with small noise along (1, -1, 0): the first
    /// component is (1, 1, 0)/sqrt(2), sign fixed positive, and it carries
    /// almost all the variance.
    #[test]
    fn recovers_the_main_axis() {
        let mut x = Array2::<f32>::zeros((50, 3));
        for i in 0..50 {
            let t = i as f32 - 25.0;
            let e = if i % 2 == 0 { 0.1 } else { -0.1 };
            x[[i, 0]] = t + e;
            x[[i, 1]] = t - e;
        }
        let x = Expr::from(x);
        let rows: Vec<usize> = (0..50).collect();
        let p = Pca::fit(&x, &rows, 2, Kind::Double, Device::Cpu).unwrap();
        let c: Vec<f64> = Vec::try_from(&p.components.select(1, 0)).unwrap();
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((c[0] - h).abs() < 1e-3 && (c[1] - h).abs() < 1e-3, "{c:?}");
        assert!(p.explained_variance_ratio()[0] > 0.99);
        let r: f64 = p.explained_variance_ratio().iter().sum();
        assert!(r <= 1.0 + 1e-12, "{r}");
        let z = p.project_rows(&x, &rows).unwrap();
        assert_eq!(z.dim(), (50, 2));
        // First point: t = -25, mean t = -0.5, so (x - mean) . c1 = -24.5 sqrt(2)
        // (the +-0.1 noise cancels along c1).
        assert!(
            (z[[0, 0]] + 24.5 * std::f32::consts::SQRT_2).abs() < 1e-3,
            "{}",
            z[[0, 0]]
        );
        assert!(p
            .project_rows(&Expr::from(Array2::<f32>::zeros((2, 4))), &[0])
            .is_err());
    }

    /// With more than 1,024 genes the covariance is accumulated in gene
    /// blocks on and below the diagonal: the same spectrum and components
    /// as the whole covariance in f64 (and projections agree).
    #[test]
    fn blocked_covariance_equals_the_whole_one() {
        let (n, g) = (400usize, 1100usize);
        let mut x = Array2::<f32>::zeros((n, g));
        let mut seed = 9u64;
        for i in 0..n {
            for j in 0..g {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let e = ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
                // Three planted directions of decreasing strength.
                let a = (i % 7) as f32 * if j < 300 { 1.0 } else { 0.0 };
                let b = (i % 5) as f32 * if (400..900).contains(&j) { 0.6 } else { 0.0 };
                let c = (i % 3) as f32 * if j >= 1000 { 0.8 } else { 0.0 };
                x[[i, j]] = e + a + b + c;
            }
        }
        let rows: Vec<usize> = (0..n).collect();
        let xt = Tensor::f_from_slice(x.as_slice().unwrap())
            .unwrap()
            .view([n as i64, g as i64])
            .to_kind(Kind::Double);
        let xc = &xt - xt.mean_dim(Some(&[0i64][..]), true, Kind::Double);
        let cov = xc.transpose(0, 1).mm(&xc) / (n - 1) as f64;
        let (vals, vecs) = cov.linalg_eigh("L");
        let p = Pca::fit(&Expr::from(x), &rows, 3, Kind::Float, Device::Cpu).unwrap();
        for k in 0..3 {
            let want = vals.double_value(&[(g - 1 - k) as i64]);
            let got = p.explained_variance[k];
            assert!(
                (got - want).abs() <= 1e-4 * want,
                "value {k}: {got} vs {want}"
            );
            let u = vecs.select(1, (g - 1 - k) as i64);
            let v = p.components.select(1, k as i64);
            let dot = u.dot(&v).double_value(&[]).abs();
            assert!(dot > 1.0 - 1e-6, "component {k}: |dot| {dot}");
        }
        let total = cov.trace().double_value(&[]);
        assert!((p.total_variance - total).abs() <= 1e-5 * total);
    }
}
