//! An exponential moving average of the weights (optional; the paper does
//! not mention EMA, so it is off by default): after every optimizer step
//!
//! ```text
//! theta_ema <- decay * theta_ema + (1 - decay) * theta
//! ```
//!
//! with `theta_ema` starting at the initial weights. The averaged weights
//! are saved beside the trained ones (`ema.safetensors`) and are what
//! sampling uses; resuming restores both, so a resumed run stays bit for bit
//! the same.

use std::collections::BTreeMap;
use std::path::Path;

use tch::Tensor;

use crate::error::{Error, Result};

/// Shadow copies of named parameters.
#[derive(Debug)]
pub struct Ema {
    decay: f64,
    shadow: Vec<(String, Tensor)>,
}

impl Ema {
    /// An average starting at the current values of `params`.
    pub fn new(params: &[(String, Tensor)], decay: f64) -> Result<Ema> {
        let shadow = params
            .iter()
            .map(|(n, p)| Ok((n.clone(), p.f_detach_copy()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Ema { decay, shadow })
    }

    /// Folds the current values of `params` (same names and order as at
    /// construction) into the average.
    pub fn update(&mut self, params: &[(String, Tensor)]) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for ((_, s), (_, p)) in self.shadow.iter_mut().zip(params) {
            // s <- decay s + (1 - decay) p
            let _ = s.f_mul_scalar_(self.decay)?;
            let _ = s.f_add_(&p.f_detach()?.f_mul_scalar(1.0 - self.decay)?)?;
        }
        Ok(())
    }

    /// The averaged tensors by name (for saving).
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.shadow
    }

    /// Replaces the average with tensors read from `path` (every name must
    /// be present with the same shape).
    pub fn load(&mut self, path: &Path, stored: &BTreeMap<String, Tensor>) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for (name, s) in self.shadow.iter_mut() {
            let src = stored.get(name).ok_or_else(|| {
                Error::format(path, name.as_str(), "missing from the EMA weights")
            })?;
            if src.size() != s.size() {
                return Err(Error::format(
                    path,
                    name.as_str(),
                    format!("shape {:?}, the model has {:?}", src.size(), s.size()),
                ));
            }
            s.f_copy_(&src.f_to_kind(s.kind())?.f_to_device(s.device())?)?;
        }
        Ok(())
    }

    /// Copies the average into `params` (the model then samples with it).
    pub fn copy_to(&self, params: &[(String, Tensor)]) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for ((_, s), (_, p)) in self.shadow.iter().zip(params) {
            let mut p = p.shallow_clone();
            p.f_copy_(s)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_follows_the_formula() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]);
        let params = vec![("w".to_string(), p.shallow_clone())];
        let mut ema = Ema::new(&params, 0.9).unwrap();
        let mut q = p.shallow_clone();
        let _ = q.fill_(3.0);
        ema.update(&params).unwrap();
        let got: Vec<f32> = Vec::try_from(&ema.tensors()[0].1).unwrap();
        // 0.9 * [1, 2] + 0.1 * [3, 3]
        assert!(
            (got[0] - 1.2).abs() < 1e-6 && (got[1] - 2.1).abs() < 1e-6,
            "{got:?}"
        );
        ema.copy_to(&params).unwrap();
        let now: Vec<f32> = Vec::try_from(&p).unwrap();
        assert_eq!(now, got);
    }
}
