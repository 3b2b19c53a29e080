//! AdamW (Loshchilov & Hutter) with explicit moment tensors, so its whole
//! state can be saved beside a checkpoint and restored bit for bit (tch's
//! built-in optimizer does not expose its state). The update follows
//! PyTorch's `torch.optim.AdamW` (single-tensor path), for step `k`:
//!
//! ```text
//! p   <- p (1 - lr wd)
//! m   <- beta1 m + (1 - beta1) g
//! v   <- beta2 v + (1 - beta2) g^2
//! p   <- p - lr / (1 - beta1^k) * m / (sqrt(v) / sqrt(1 - beta2^k) + eps)
//! ```
//!
//! and global-norm clipping follows `torch.nn.utils.clip_grad_norm_`:
//! `g <- g * min(1, max_norm / (||g||_2 + 1e-6))` with the norm over all
//! gradients together.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// AdamW over a fixed list of named parameters.
#[derive(Debug)]
pub struct AdamW {
    params: Vec<(String, Tensor)>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    step: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl AdamW {
    /// An optimizer over `params` (name, tensor) with zero moments.
    pub fn new(
        params: Vec<(String, Tensor)>,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    ) -> Result<AdamW> {
        let zeros = |p: &Tensor| -> Result<Tensor> { Ok(p.f_zeros_like()?.f_detach()?) };
        let exp_avg = params
            .iter()
            .map(|(_, p)| zeros(p))
            .collect::<Result<Vec<_>>>()?;
        let exp_avg_sq = params
            .iter()
            .map(|(_, p)| zeros(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            params,
            exp_avg,
            exp_avg_sq,
            step: 0,
            beta1,
            beta2,
            eps,
            weight_decay,
        })
    }

    /// Updates taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// Zeroes every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for (_, p) in self.params.iter_mut() {
            p.zero_grad();
        }
    }

    /// Scales all gradients so their global L2 norm is at most `max_norm`;
    /// returns the norm before clipping as a scalar tensor (no device sync).
    pub fn clip_grad_norm(&self, max_norm: f64) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return Ok(Tensor::from(0f32));
        }
        let norms = grads
            .iter()
            .map(|g| g.f_to_kind(Kind::Float)?.f_norm())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?; // scalar
        if max_norm > 0.0 {
            let coef = total
                .f_add_scalar(1e-6)?
                .f_reciprocal()?
                .f_mul_scalar(max_norm)?
                .f_clamp_max(1.0)?;
            for mut g in grads {
                let _ = g.f_mul_(&coef)?;
            }
        }
        Ok(total)
    }

    /// One AdamW update with learning rate `lr`. Parameters without a
    /// gradient are left alone (as in PyTorch).
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let k = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(k);
        let bc2_sqrt = (1.0 - self.beta2.powi(k)).sqrt();
        let step_size = lr / bc1;
        for (((_, p), m), v) in self
            .params
            .iter_mut()
            .zip(self.exp_avg.iter_mut())
            .zip(self.exp_avg_sq.iter_mut())
        {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            if self.weight_decay != 0.0 {
                let _ = p.f_mul_scalar_(1.0 - lr * self.weight_decay)?;
            }
            let _ = m.f_lerp_(&g, 1.0 - self.beta1)?;
            let _ = v.f_mul_scalar_(self.beta2)?;
            let _ = v.f_add_(&g.f_mul(&g)?.f_mul_scalar(1.0 - self.beta2)?)?;
            let denom = v.f_sqrt()?.f_div_scalar(bc2_sqrt)?.f_add_scalar(self.eps)?;
            let _ = p.f_sub_(&m.f_div(&denom)?.f_mul_scalar(step_size)?)?;
        }
        Ok(())
    }

    /// The state as named tensors: `exp_avg.<param>` and `exp_avg_sq.<param>`.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for ((name, _), (m, v)) in self
            .params
            .iter()
            .zip(self.exp_avg.iter().zip(&self.exp_avg_sq))
        {
            out.push((format!("exp_avg.{name}"), m.shallow_clone()));
            out.push((format!("exp_avg_sq.{name}"), v.shallow_clone()));
        }
        out
    }

    /// Restores moments saved by [`state_tensors`](Self::state_tensors)
    /// (read from `path`, for messages) and the step counter.
    pub fn load_state(
        &mut self,
        path: &Path,
        state: &BTreeMap<String, Tensor>,
        step: u64,
    ) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for ((name, p), (m, v)) in self
            .params
            .iter()
            .zip(self.exp_avg.iter_mut().zip(self.exp_avg_sq.iter_mut()))
        {
            for (key, dst) in [
                (format!("exp_avg.{name}"), m),
                (format!("exp_avg_sq.{name}"), v),
            ] {
                let src = state
                    .get(&key)
                    .ok_or_else(|| Error::format(path, &key, "missing from the optimizer state"))?;
                if src.size() != p.size() {
                    return Err(Error::format(
                        path,
                        &key,
                        format!("shape {:?}, the parameter has {:?}", src.size(), p.size()),
                    ));
                }
                dst.f_copy_(&src.f_to_kind(dst.kind())?.f_to_device(dst.device())?)?;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two AdamW steps on one scalar against the update written out by hand
    /// (torch.optim.AdamW's formula with lr 0.1, wd 0.01, betas 0.9/0.999).
    #[test]
    fn matches_the_adamw_formula() {
        let p = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let mut opt = AdamW::new(
            vec![("w".into(), p.shallow_clone())],
            0.9,
            0.999,
            1e-8,
            0.01,
        )
        .unwrap();
        let (lr, wd, b1, b2, eps) = (0.1, 0.01, 0.9, 0.999, 1e-8);
        let (mut w, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
        for k in 1..=2 {
            opt.zero_grad();
            let loss = (&p * &p).sum(Kind::Double); // grad 2w
            loss.backward();
            opt.step(lr).unwrap();
            let g = 2.0 * w;
            w *= 1.0 - lr * wd;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let bc1 = 1.0 - b1.powi(k);
            let bc2 = 1.0 - b2.powi(k);
            w -= lr / bc1 * m / (v.sqrt() / bc2.sqrt() + eps);
            let got = p.double_value(&[0]);
            assert!((got - w).abs() < 1e-12, "step {k}: {got} vs {w}");
        }
    }

    #[test]
    fn clips_the_global_norm() {
        let a = Tensor::from_slice(&[3.0f32]).set_requires_grad(true);
        let b = Tensor::from_slice(&[4.0f32]).set_requires_grad(true);
        let opt = AdamW::new(
            vec![
                ("a".into(), a.shallow_clone()),
                ("b".into(), b.shallow_clone()),
            ],
            0.9,
            0.999,
            1e-8,
            0.0,
        )
        .unwrap();
        // grads (3, 4): norm 5
        ((&a * &a).sum(Kind::Float) * 0.5 + (&b * &b).sum(Kind::Float) * 0.5).backward();
        let n = opt.clip_grad_norm(1.0).unwrap().double_value(&[]);
        assert!((n - 5.0).abs() < 1e-6);
        let ga = a.grad().double_value(&[0]);
        let gb = b.grad().double_value(&[0]);
        assert!(((ga * ga + gb * gb).sqrt() - 1.0).abs() < 1e-5, "{ga} {gb}");
    }
}
