//! Training pairs from OT plans: index pairs `(i, j)` drawn with probability
//! `P_ij / sum P` (with replacement, as ott's `sample_joint` that CellFlow's
//! `OTFlowMatching.step_fn` calls), and [`ot_pairs`], cost + plan + pairs in
//! one call.
//!
//! Draws happen on the CPU with ChaCha8, seeded by `seed` with one stream per
//! condition (`set_stream(c)`), so they never touch libtorch's global
//! generator and condition `c`'s pairs depend only on `(seed, c, plan[c])`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::config::OtConfig;
use super::cost::sq_euclidean;
use super::sinkhorn::{sinkhorn, SinkhornOutput};
use crate::error::{Error, Result};

/// Draws `n_pairs` index pairs per condition from `plan [C, n, k]`
/// (entries finite and >= 0, mass > 0 per condition) -> `(src_idx [C,
/// n_pairs], tgt_idx [C, n_pairs])`, int64 on `plan`'s device; pair `m` of
/// condition `c` is `(src_idx[c, m], tgt_idx[c, m])` with probability
/// `plan[c, i, j] / sum(plan[c])`.
pub fn sample_pairs(plan: &Tensor, n_pairs: usize, seed: u64) -> Result<(Tensor, Tensor)> {
    let s = plan.size();
    if s.len() != 3 {
        return Err(Error::Mismatch(format!(
            "OT plan must be [C, n, k], got {s:?}"
        )));
    }
    let (c, n, k) = (s[0] as usize, s[1] as usize, s[2] as usize);
    let nk = n * k;
    let flat = plan
        .f_to_kind(Kind::Double)?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?
        .f_reshape([-1])?; // [C n k]
    let mut p = vec![0f64; c * nk];
    flat.f_copy_data(&mut p, c * nk)?;
    let mut src = Vec::with_capacity(c * n_pairs);
    let mut tgt = Vec::with_capacity(c * n_pairs);
    let mut cdf = vec![0f64; nk];
    for ci in 0..c {
        let row = &p[ci * nk..(ci + 1) * nk];
        let mut acc = 0.0;
        for (cum, &v) in cdf.iter_mut().zip(row) {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    "OT plan",
                    format!("condition {ci} has an entry {v}; entries must be finite and >= 0"),
                ));
            }
            acc += v;
            *cum = acc;
        }
        if !(acc > 0.0 && acc.is_finite()) {
            return Err(Error::invalid(
                "OT plan",
                format!("condition {ci} has total mass {acc}; pairs need mass > 0"),
            ));
        }
        // Rounding can put a draw at the very top: fall back to the last
        // entry with mass.
        let last = row.iter().rposition(|&v| v > 0.0).unwrap_or(0);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(ci as u64);
        for _ in 0..n_pairs {
            let t = rng.gen::<f64>() * acc;
            let idx = cdf.partition_point(|&x| x <= t).min(last);
            src.push((idx / k) as i64);
            tgt.push((idx % k) as i64);
        }
    }
    let shape = [c as i64, n_pairs as i64];
    let dev = plan.device();
    Ok((
        Tensor::f_from_slice(&src)?
            .f_view(shape)?
            .f_to_device(dev)?, // [C, n_pairs]
        Tensor::f_from_slice(&tgt)?
            .f_view(shape)?
            .f_to_device(dev)?, // [C, n_pairs]
    ))
}

/// Rows `idx [C, m]` (int64) of each condition of `x [C, n, d]` -> `[C, m, d]`.
pub fn gather_rows(x: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let (xs, is) = (x.size(), idx.size());
    if xs.len() != 3 || is.len() != 2 || xs[0] != is[0] {
        return Err(Error::Mismatch(format!(
            "gather_rows needs x [C, n, d] and idx [C, m], got x {xs:?} and idx {is:?}"
        )));
    }
    let index = idx
        .f_to_device(x.device())?
        .f_unsqueeze(2)?
        .f_expand([is[0], is[1], xs[2]], false)?; // [C, m, d]
    Ok(x.f_gather(1, &index, false)?)
}

/// Pairs drawn from the OT plans of a batch of conditions.
#[derive(Debug)]
pub struct OtPairs {
    /// `[C, n]` source row of each pair.
    pub src_idx: Tensor,
    /// `[C, n]` target row of each pair.
    pub tgt_idx: Tensor,
    /// The solve (plans, iterations, errors) the pairs came from.
    pub solution: SinkhornOutput,
}

impl OtPairs {
    /// The paired cells: `x_src [C, n, d]`, `x_tgt [C, k, d]` -> `(x0 [C, n,
    /// d], x1 [C, n, d])`, row `m` of both being pair `m`.
    pub fn gather(&self, x_src: &Tensor, x_tgt: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            gather_rows(x_src, &self.src_idx)?,
            gather_rows(x_tgt, &self.tgt_idx)?,
        ))
    }
}

/// Couples source cells `x_src [C, n, d]` with target cells `x_tgt [C, k,
/// d]` per condition: squared Euclidean cost, [`sinkhorn`] with uniform
/// weights under `cfg`, then `n` pairs per condition (as many as source
/// cells, like ott's `sample_joint`) drawn with `seed`. Computes in f64 when
/// `x_src` is f64, else f32, on `x_src`'s device.
pub fn ot_pairs(x_src: &Tensor, x_tgt: &Tensor, cfg: &OtConfig, seed: u64) -> Result<OtPairs> {
    let cost = sq_euclidean(x_src, x_tgt)?; // [C, n, k]
    let solution = sinkhorn(&cost, None, None, cfg)?;
    let n = x_src.size()[1] as usize;
    let (src_idx, tgt_idx) = sample_pairs(&solution.plan, n, seed)?;
    Ok(OtPairs {
        src_idx,
        tgt_idx,
        solution,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two conditions of 2 x 3 plans with zeros; masses 1 and 2.
    fn plan() -> Tensor {
        let p = [
            0.1, 0.0, 0.3, 0.2, 0.4, 0.0, // condition 0
            0.0, 0.0, 1.0, 0.5, 0.0, 0.5, // condition 1
        ];
        Tensor::from_slice(&p).reshape([2, 2, 3])
    }

    fn pairs_vec(t: &(Tensor, Tensor)) -> (Vec<i64>, Vec<i64>) {
        let v = |x: &Tensor| Vec::<i64>::try_from(x.reshape([-1])).unwrap();
        (v(&t.0), v(&t.1))
    }

    #[test]
    fn pairs_follow_the_plan() {
        let draws = 200_000usize;
        let (src, tgt) = pairs_vec(&sample_pairs(&plan(), draws, 3).unwrap());
        let p = Vec::<f64>::try_from(plan().reshape([-1])).unwrap();
        for ci in 0..2 {
            let mut count = [0usize; 6];
            for m in 0..draws {
                let (i, j) = (src[ci * draws + m], tgt[ci * draws + m]);
                count[(i * 3 + j) as usize] += 1;
            }
            let total: f64 = p[ci * 6..ci * 6 + 6].iter().sum();
            for e in 0..6 {
                let want = p[ci * 6 + e] / total;
                let got = count[e] as f64 / draws as f64;
                if want == 0.0 {
                    assert_eq!(count[e], 0, "condition {ci} entry {e}");
                } else {
                    // 5 standard errors of a binomial frequency.
                    let se = (want * (1.0 - want) / draws as f64).sqrt();
                    assert!((got - want).abs() < 5.0 * se, "{ci} {e}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn draws_are_seeded_and_per_condition() {
        let a = pairs_vec(&sample_pairs(&plan(), 50, 11).unwrap());
        let b = pairs_vec(&sample_pairs(&plan(), 50, 11).unwrap());
        let c = pairs_vec(&sample_pairs(&plan(), 50, 12).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Changing condition 0's plan leaves condition 1's pairs alone.
        let other = plan();
        let _ = other.get(0).fill_(1.0);
        let d = pairs_vec(&sample_pairs(&other, 50, 11).unwrap());
        assert_eq!(a.0[50..], d.0[50..]);
        assert_eq!(a.1[50..], d.1[50..]);
        assert_ne!((&a.0[..50], &a.1[..50]), (&d.0[..50], &d.1[..50]));
        let (s, t) = sample_pairs(&plan(), 0, 1).unwrap();
        assert_eq!((s.size(), t.size()), (vec![2, 0], vec![2, 0]));
    }

    #[test]
    fn bad_plans_are_clear_errors() {
        let msg = |p: &Tensor| sample_pairs(p, 4, 0).unwrap_err().to_string();
        assert!(msg(&plan().get(0)).contains("[2, 3]"));
        let neg = plan().index_fill(2, &Tensor::from_slice(&[1i64]), -1.0);
        assert!(msg(&neg).contains("-1"));
        let nan = plan().index_fill(2, &Tensor::from_slice(&[0i64]), f64::NAN);
        assert!(msg(&nan).contains("NaN"));
        let zero = plan() * Tensor::from_slice(&[1.0, 0.0]).view([2, 1, 1]);
        let e = msg(&zero);
        assert!(e.contains("condition 1") && e.contains("mass 0"), "{e}");
        let x = Tensor::zeros([2, 3, 4], (Kind::Float, Device::Cpu));
        assert!(gather_rows(&x, &Tensor::zeros([3, 2], (Kind::Int64, Device::Cpu))).is_err());
    }

    #[test]
    fn ot_pairs_recover_a_hidden_matching() {
        // Targets are the sources permuted, plus a little noise: at small
        // epsilon every pair is (i, perm^-1(i)).
        let n = 8i64;
        let x = Tensor::arange(2 * n * 3, (Kind::Double, Device::Cpu))
            .reshape([2, n, 3])
            .sin()
            * 4.0;
        let perm = Tensor::from_slice(&[3i64, 0, 7, 1, 5, 2, 6, 4]);
        let y = x.index_select(1, &perm) + 1e-3; // y[j] = x[perm[j]]
        let cfg = OtConfig {
            epsilon: 1e-3,
            tol: 1e-8,
            max_iter: 50_000,
            ..OtConfig::default()
        };
        let pairs = ot_pairs(&x, &y, &cfg, 5).unwrap();
        assert!(pairs.solution.all_converged());
        assert_eq!(pairs.src_idx.size(), [2, n]);
        let (src, tgt) = pairs_vec(&(pairs.src_idx.shallow_clone(), pairs.tgt_idx.shallow_clone()));
        let perm = Vec::<i64>::try_from(&perm).unwrap();
        for (i, j) in src.iter().zip(&tgt) {
            assert_eq!(perm[*j as usize], *i);
        }
        let (x0, x1) = pairs.gather(&x, &y).unwrap();
        assert_eq!(x0.size(), [2, n, 3]);
        assert!((x0 - x1).abs().max().double_value(&[]) < 2e-3);
    }
}
