//! [`Points`]: cells prepared for the distance products of
//! [`super::distance`] (the matrix, the same times -2, squared row norms).
//!
//! Two routes build them. The tensor route works on any device and kind.
//! The host route ([`Points::centred`] on the CPU with f32 products) writes
//! the centred cells and their norms in one pass into memory that is
//! reused from unit to unit ([`PointsScratch`]), and keeps no `-2 x` (the
//! fused products scale `x.y` themselves): the tensor route's f64 copy,
//! centred copy, square and scaled copy were 56 bytes of freshly faulted
//! memory per value, and the kernel's page zeroing was 38 % of a
//! gene-space MMD evaluation. Both routes give the same centred values,
//! `(x as f64 - centre) as f32`.

use tch::{Device, Kind, Tensor};

use super::distance::DistanceOptions;
use crate::error::{Error, Result};

/// Cells prepared for distance products: the matrix in the product kind,
/// the same times -2 (so each block is one `addmm` with no scaled copy),
/// and its squared row norms.
pub struct Points {
    /// `[n, D]` in the product kind.
    pub x: Tensor,
    /// `-2 x`, `[n, D]` (tensor route only: the host route's products go
    /// through [`super::fused`], which scales `x.y` itself).
    neg2x: Option<Tensor>,
    /// `[n]` squared norms (same kind).
    pub sq: Tensor,
    /// max of `sq` (for the rounding threshold).
    pub max_sq: f64,
    /// `sq` on the host when the points are f32 on the CPU: such blocks take
    /// the single-pass [`super::fused`] path.
    pub(super) host_sq: Option<Vec<f32>>,
}

/// Reusable memory for the host route: `[cap, D]` f32 for `x`. Points
/// built into it are views of it, valid until the next build.
#[derive(Default)]
pub(super) struct PointsScratch {
    buf: Option<Tensor>,
}

impl PointsScratch {
    /// An `[n, d]` view of the buffer, grown when too small.
    fn view(&mut self, n: i64, d: i64) -> Result<Tensor> {
        let fits = self
            .buf
            .as_ref()
            .is_some_and(|x| x.size()[1] == d && x.size()[0] >= n);
        if !fits {
            self.buf = Some(Tensor::f_empty([n.max(1), d], (Kind::Float, Device::Cpu))?);
        }
        match &self.buf {
            Some(x) => Ok(x.f_narrow(0, 0, n)?),
            None => Err(Error::invalid("metrics", "internal: no scratch buffer")),
        }
    }
}

/// The values of `t` when it is a contiguous CPU f32 tensor.
///
/// SAFETY (callers): nothing may write to `t`'s memory while the slice
/// lives (the slice borrows `t`, which keeps the memory alive).
pub(super) unsafe fn host_slice(t: &Tensor) -> Option<&[f32]> {
    if t.kind() != Kind::Float || t.device() != Device::Cpu || !t.is_contiguous() {
        return None;
    }
    Some(host_f32(t))
}

/// The f32 values of a contiguous CPU f32 tensor.
///
/// SAFETY (callers): `t` must be a contiguous CPU f32 tensor that nothing
/// writes to while the slice lives.
unsafe fn host_f32(t: &Tensor) -> &[f32] {
    let len = t.numel();
    if len == 0 {
        return &[];
    }
    std::slice::from_raw_parts(t.data_ptr().cast::<f32>(), len)
}

impl Points {
    /// Prepares `x` (`[n, D]`, any float kind) by the tensor route.
    pub fn new(x: &Tensor, opts: &DistanceOptions) -> Result<Points> {
        if x.dim() != 2 {
            return Err(Error::Mismatch(format!(
                "expected cells as [n, D], got shape {:?}",
                x.size()
            )));
        }
        let x = x.f_to_kind(opts.kind)?.f_contiguous()?;
        let sq = x
            .f_square()?
            .f_sum_dim_intlist(Some(&[1i64][..]), false, opts.kind)?;
        let max_sq = if x.size()[0] == 0 {
            0.0
        } else {
            sq.f_max()?.f_double_value(&[])?
        };
        let neg2x = Some(x.f_mul_scalar(-2.0)?);
        let host_sq = if opts.kind == Kind::Float && x.device() == Device::Cpu {
            Some(Vec::<f32>::try_from(&sq)?)
        } else {
            None
        };
        Ok(Points {
            x,
            neg2x,
            sq,
            max_sq,
            host_sq,
        })
    }

    /// `x - centre` prepared for products (`x`: `[n, D]`; `centre`: `[D]`
    /// f64 on the host, `centre_t` the same as a `[1, D]` f64 tensor on
    /// `x`'s device). On the CPU with f32 products the host route writes
    /// into `scratch` (the points are views of it, valid until its next
    /// use); otherwise the tensor route.
    pub(super) fn centred(
        x: &Tensor,
        centre: &[f64],
        centre_t: &Tensor,
        opts: &DistanceOptions,
        scratch: &mut PointsScratch,
    ) -> Result<Points> {
        Points::centred_parts(std::slice::from_ref(x), centre, centre_t, opts, scratch)
    }

    /// [`Points::centred`] of the rows of `parts` (each `[n_k, D]`)
    /// concatenated, written straight into `scratch` (no concatenated copy
    /// on the host route).
    pub(super) fn centred_parts(
        parts: &[Tensor],
        centre: &[f64],
        centre_t: &Tensor,
        opts: &DistanceOptions,
        scratch: &mut PointsScratch,
    ) -> Result<Points> {
        let d = centre.len() as i64;
        let host = opts.kind == Kind::Float
            && parts
                .iter()
                .all(|x| x.device() == Device::Cpu && x.dim() == 2 && x.size()[1] == d);
        if !host {
            let x = Tensor::f_cat(parts, 0)?;
            return Points::new(&x.f_to_kind(Kind::Double)?.f_sub(centre_t)?, opts);
        }
        let n: i64 = parts.iter().map(|x| x.size()[0]).sum();
        let xv = scratch.view(n, d)?;
        let mut sq = vec![0f32; n as usize];
        let mut row = 0usize;
        for x in parts {
            let k = x.size()[0] as usize;
            let len = k * d as usize;
            if len > 0 {
                let src = x.f_to_kind(Kind::Float)?.f_contiguous()?;
                let dst = xv.f_narrow(0, row as i64, k as i64)?;
                // SAFETY: `src` is a contiguous CPU f32 tensor only read
                // here; `dst` is a contiguous `[k, d]` CPU f32 view of the
                // scratch buffer, which nothing else reads or writes until
                // this slice ends (points built into it before are dead by
                // the scratch's contract).
                let (src, dx) = unsafe {
                    (
                        host_f32(&src),
                        std::slice::from_raw_parts_mut(dst.data_ptr().cast::<f32>(), len),
                    )
                };
                write_centred(src, centre, dx, &mut sq[row..row + k]);
            }
            row += k;
        }
        let max_sq = sq.iter().fold(0f32, |m, &v| m.max(v)) as f64;
        Ok(Points {
            x: xv,
            neg2x: None,
            sq: Tensor::f_from_slice(&sq)?,
            max_sq,
            host_sq: Some(sq),
        })
    }

    /// `-2 x` (kept by the tensor route, made here for the host route's
    /// points when a tensor-route product needs them).
    pub(super) fn neg2x(&self) -> Result<Tensor> {
        match &self.neg2x {
            Some(t) => Ok(t.shallow_clone()),
            None => Ok(self.x.f_mul_scalar(-2.0)?),
        }
    }

    /// Number of cells.
    pub fn len(&self) -> i64 {
        self.x.size()[0]
    }

    /// True when there are no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `[n, D]` values on the host (row-major), for f32 CPU points.
    pub(super) fn host_x(&self) -> Option<&[f32]> {
        if self.x.kind() != Kind::Float || self.x.device() != Device::Cpu || !self.x.is_contiguous()
        {
            return None;
        }
        // SAFETY: checked above to be a contiguous CPU f32 tensor; points
        // are never written after they are built, and the slice borrows
        // `self`, which keeps the tensor alive.
        Some(unsafe { host_f32(&self.x) })
    }

    /// Rows `start..start+len` as points of their own (views, no copy).
    pub(super) fn rows(&self, start: i64, len: i64) -> Result<Points> {
        Ok(Points {
            x: self.x.f_narrow(0, start, len)?,
            neg2x: match &self.neg2x {
                Some(t) => Some(t.f_narrow(0, start, len)?),
                None => None,
            },
            sq: self.sq.f_narrow(0, start, len)?,
            max_sq: self.max_sq,
            host_sq: self
                .host_sq
                .as_ref()
                .map(|h| h[start as usize..(start + len) as usize].to_vec()),
        })
    }
}

impl Points {
    /// The rows of the ranges `(start, len)` concatenated in order (a
    /// copy), with the parent's `max_sq` (so the rounding threshold, and
    /// with it every distance, is the parent's).
    pub(super) fn select(&self, ranges: &[(i64, i64)]) -> Result<Points> {
        let idx: Vec<i64> = ranges.iter().flat_map(|&(s, l)| s..s + l).collect();
        let it = Tensor::f_from_slice(&idx)?.f_to_device(self.x.device())?;
        let host_sq = self.host_sq.as_ref().map(|h| {
            idx.iter()
                .map(|&i| h.get(i as usize).copied().unwrap_or(0.0))
                .collect()
        });
        Ok(Points {
            x: self.x.f_index_select(0, &it)?,
            neg2x: match &self.neg2x {
                Some(t) => Some(t.f_index_select(0, &it)?),
                None => None,
            },
            sq: self.sq.f_index_select(0, &it)?,
            max_sq: self.max_sq,
            host_sq,
        })
    }
}

/// One pass over the rows of `src` (`[n, D]`): `x = (src - centre) as f32`
/// into `dx`, `|x|^2` (summed in f64 over [`LANES`] partial sums, so the
/// adds do not wait on each other) into `sq`.
fn write_centred(src: &[f32], centre: &[f64], dx: &mut [f32], sq: &mut [f32]) {
    let d = centre.len().max(1);
    for ((row, ox), s) in src
        .chunks_exact(d)
        .zip(dx.chunks_exact_mut(d))
        .zip(sq.iter_mut())
    {
        let mut acc = [0f64; LANES];
        let mut tail = 0f64;
        let body = d - d % LANES;
        for ((v, c), x) in row[..body]
            .chunks_exact(LANES)
            .zip(centre[..body].chunks_exact(LANES))
            .zip(ox[..body].chunks_exact_mut(LANES))
        {
            for l in 0..LANES {
                let y = (v[l] as f64 - c[l]) as f32;
                x[l] = y;
                acc[l] += (y as f64) * (y as f64);
            }
        }
        for ((&v, &c), x) in row[body..].iter().zip(&centre[body..]).zip(&mut ox[body..]) {
            let y = (v as f64 - c) as f32;
            *x = y;
            tail += (y as f64) * (y as f64);
        }
        *s = (lane_sum(&acc) + tail) as f32;
    }
}

/// Partial sums per row in [`write_centred`] and the cell terms of
/// [`super::mmd_bounds`].
pub(super) const LANES: usize = 8;

/// The sum of the partial sums, in a fixed order.
pub(super) fn lane_sum(acc: &[f64; LANES]) -> f64 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_route_equals_tensor_route() {
        let _g = tch::no_grad_guard();
        tch::manual_seed(3);
        let x = Tensor::randn([37, 11], (Kind::Float, Device::Cpu))
            .f_mul_scalar(5.0)
            .unwrap();
        let c = Tensor::randn([1, 11], (Kind::Double, Device::Cpu));
        let host_c: Vec<f64> = Vec::try_from(&c.f_view([-1]).unwrap()).unwrap();
        let opts = DistanceOptions::f32();
        let t = Points::new(&x.to_kind(Kind::Double).f_sub(&c).unwrap(), &opts).unwrap();
        let mut scratch = PointsScratch::default();
        // A larger build first: the second reuses (views of) its memory.
        let big = Tensor::randn([50, 11], (Kind::Float, Device::Cpu));
        drop(Points::centred(&big, &host_c, &c, &opts, &mut scratch).unwrap());
        let h = Points::centred(&x, &host_c, &c, &opts, &mut scratch).unwrap();
        assert_eq!(h.len(), 37);
        assert!(t.x.equal(&h.x), "centred values differ");
        assert!(t.neg2x().unwrap().equal(&h.neg2x().unwrap()));
        // Parts written one after the other equal the whole.
        let parts = [x.narrow(0, 0, 20), x.narrow(0, 20, 17)];
        let mut s2 = PointsScratch::default();
        let p = Points::centred_parts(&parts, &host_c, &c, &opts, &mut s2).unwrap();
        assert!(p.x.equal(&h.x));
        let (ts, hs): (Vec<f32>, Vec<f32>) =
            (Vec::try_from(&t.sq).unwrap(), Vec::try_from(&h.sq).unwrap());
        for (a, b) in ts.iter().zip(&hs) {
            assert!((a - b).abs() <= 1e-5 * a.abs(), "{a} vs {b}");
        }
        assert_eq!(h.host_x().unwrap().len(), 37 * 11);
    }
}
