//! PerturBench's `MLP` block (altoslabs/perturbench,
//! `src/perturbench/modelcore/nn/mlp.py`, class `MLP` with its defaults
//! `norm="layer"`, `elementwise_affine=False`), the building block of the
//! latent-additive and decoder-only baselines.
//!
//! ```text
//! h_0 = x                                              [B, d_in]
//! h_k = Dropout(ReLU(LayerNorm(W_k h_{k-1} + b_k)))    [B, H]     k = 1..L
//! y   = W_out h_L + b_out                              [B, d_out]
//! ```
//!
//! `L = n_layers` hidden layers (so `L + 1` Linear layers). LayerNorm has no
//! affine parameters (eps 1e-5). Dropout is present only when a rate is given
//! (`Some(p)`, even `Some(0.0)`): PerturBench appends an `nn.Dropout` module
//! exactly when `dropout is not None`, which shifts the `nn.Sequential`
//! numbering. Parameter names follow that numbering, as in PyTorch's state
//! dict: with dropout each hidden block takes 4 indices (Linear, LayerNorm,
//! ReLU, Dropout), without it 3, so `layers.0`, `layers.4`, `layers.8`, ...
//! (or `layers.0`, `layers.3`, ...) hold the Linear weights and the last
//! index holds the output Linear.

use tch::{nn, Tensor};

use crate::error::{Error, Result};

/// LayerNorm epsilon (PyTorch's `nn.LayerNorm` default).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// A fully connected layer `y = x W^T + b`, `W` `[out, in]`, `b` `[out]`,
/// initialised like PyTorch's `nn.Linear`: weight and bias uniform in
/// `+-1/sqrt(fan_in)`. Parameters `weight` and `bias` under its path.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    /// A `fan_in -> fan_out` layer under `p`.
    pub fn new(p: &nn::Path, fan_in: usize, fan_out: usize) -> Result<Linear> {
        // nn.Linear.reset_parameters: kaiming_uniform_(a = sqrt(5)) on the
        // weight gives bound sqrt(6 / ((1 + 5) fan_in)) = 1/sqrt(fan_in); the
        // bias uses the same bound.
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Ok(Linear {
            weight: p.f_var("weight", &[fan_out as i64, fan_in as i64], init)?,
            bias: p.f_var("bias", &[fan_out as i64], init)?,
        })
    }

    /// `x` `[B, in]` -> `[B, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.weight, Some(&self.bias))?)
    }
}

/// PerturBench's `MLP(input_dim, hidden_dim, output_dim, n_layers, dropout)`
/// with LayerNorm (see the module docs).
#[derive(Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    output: Linear,
    hidden_dim: usize,
    dropout: Option<f64>,
}

impl Mlp {
    /// Builds the block under `p / "layers"` (so its parameters read
    /// `<p>.layers.<i>.weight`). `n_layers >= 1` hidden layers of width
    /// `hidden_dim`; `dropout` `None` means no Dropout modules at all.
    pub fn new(
        p: &nn::Path,
        input_dim: usize,
        hidden_dim: usize,
        output_dim: usize,
        n_layers: usize,
        dropout: Option<f64>,
    ) -> Result<Mlp> {
        if input_dim == 0 || hidden_dim == 0 || output_dim == 0 || n_layers == 0 {
            return Err(Error::invalid(
                "PerturBench MLP",
                format!(
                    "widths and layer count must be positive (got input_dim {input_dim}, hidden_dim {hidden_dim}, output_dim {output_dim}, n_layers {n_layers})"
                ),
            ));
        }
        if let Some(d) = dropout {
            if !(0.0..1.0).contains(&d) {
                return Err(Error::invalid(
                    "PerturBench MLP dropout",
                    format!("{d} is not in [0, 1)"),
                ));
            }
        }
        let lp = p / "layers";
        let stride = Self::block_len(dropout);
        let hidden = (0..n_layers)
            .map(|k| {
                let fan_in = if k == 0 { input_dim } else { hidden_dim };
                Linear::new(&(&lp / (k * stride)), fan_in, hidden_dim)
            })
            .collect::<Result<Vec<_>>>()?;
        let output = Linear::new(&(&lp / (n_layers * stride)), hidden_dim, output_dim)?;
        Ok(Mlp {
            hidden,
            output,
            hidden_dim,
            dropout,
        })
    }

    /// `nn.Sequential` modules per hidden block: Linear, LayerNorm, ReLU and,
    /// when a rate is given, Dropout.
    pub fn block_len(dropout: Option<f64>) -> usize {
        if dropout.is_some() {
            4
        } else {
            3
        }
    }

    /// `x` `[B, d_in]` -> `[B, d_out]`; `train` switches dropout on.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = x.shallow_clone();
        for lin in &self.hidden {
            h = lin.forward(&h)?; // [B, H]
            h = h
                .f_layer_norm(
                    [self.hidden_dim as i64],
                    None::<&Tensor>,
                    None::<&Tensor>,
                    LAYER_NORM_EPS,
                    false,
                )?
                .f_relu()?;
            if let Some(p) = self.dropout {
                if train && p > 0.0 {
                    h = h.f_dropout(p, true)?;
                }
            }
        }
        self.output.forward(&h) // [B, d_out]
    }

    /// Forward FLOPs per row: 2 x the multiply-accumulates of its Linears
    /// (LayerNorm, ReLU and dropout are not counted).
    pub fn flops(input_dim: usize, hidden_dim: usize, output_dim: usize, n_layers: usize) -> f64 {
        let (i, h, o) = (input_dim as f64, hidden_dim as f64, output_dim as f64);
        2.0 * (i * h + n_layers.saturating_sub(1) as f64 * h * h + h * o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::baselines::test_support::lock;
    use tch::{nn::VarStore, Device, Kind};

    fn names(vs: &VarStore) -> Vec<(String, Vec<i64>)> {
        let mut v: Vec<(String, Vec<i64>)> = vs
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.size()))
            .collect();
        v.sort();
        v
    }

    /// Sequential numbering as printed by PyTorch for
    /// `MLP(5, 7, 3, n_layers=2, dropout=0.1)` (Linear, LayerNorm, ReLU,
    /// Dropout per block: indices 0, 4, then the output Linear at 8) and for
    /// `dropout=None` (0, 3, output at 6).
    #[test]
    fn parameter_names_follow_pytorch_sequential_numbering() {
        let _rng = lock();
        let vs = VarStore::new(Device::Cpu);
        Mlp::new(&(vs.root() / "enc"), 5, 7, 3, 2, Some(0.1)).unwrap();
        let want = vec![
            ("enc.layers.0.bias".to_string(), vec![7]),
            ("enc.layers.0.weight".to_string(), vec![7, 5]),
            ("enc.layers.4.bias".to_string(), vec![7]),
            ("enc.layers.4.weight".to_string(), vec![7, 7]),
            ("enc.layers.8.bias".to_string(), vec![3]),
            ("enc.layers.8.weight".to_string(), vec![3, 7]),
        ];
        assert_eq!(names(&vs), want);

        let vs = VarStore::new(Device::Cpu);
        Mlp::new(&(vs.root() / "dec"), 5, 7, 3, 2, None).unwrap();
        let got: Vec<String> = names(&vs).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            got,
            [
                "dec.layers.0.bias",
                "dec.layers.0.weight",
                "dec.layers.3.bias",
                "dec.layers.3.weight",
                "dec.layers.6.bias",
                "dec.layers.6.weight"
            ]
        );
    }

    #[test]
    fn init_is_uniform_within_pytorch_bound() {
        let _rng = lock();
        let vs = VarStore::new(Device::Cpu);
        let m = Mlp::new(&vs.root(), 100, 50, 4, 1, None).unwrap();
        let bound = 1.0 / 100f64.sqrt();
        for t in [&m.hidden[0].weight, &m.hidden[0].bias] {
            let max = f64::try_from(t.abs().max()).unwrap();
            assert!(
                max <= bound && max > 0.8 * bound,
                "max {max}, bound {bound}"
            );
        }
        let out_max = f64::try_from(m.output.weight.abs().max()).unwrap();
        assert!(out_max <= 1.0 / 50f64.sqrt());
    }

    /// Each hidden activation is LayerNorm'd then ReLU'd, so before the
    /// output layer a row has mean-zero, unit-variance pre-activations: with
    /// the output layer set to the identity the result is `relu(LN(.))`.
    #[test]
    fn hidden_block_is_linear_layernorm_relu() {
        let _rng = lock();
        let vs = VarStore::new(Device::Cpu);
        let mut m = Mlp::new(&vs.root(), 3, 4, 4, 1, None).unwrap();
        tch::no_grad(|| {
            m.output
                .weight
                .copy_(&Tensor::eye(4, (Kind::Float, Device::Cpu)));
            let _ = m.output.bias.zero_();
        });
        let x = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 0.0, 3.0, 1.0]).view([2, 3]);
        let y = m.forward(&x, false).unwrap();
        let pre = x.linear(&m.hidden[0].weight, Some(&m.hidden[0].bias));
        let mu = pre.mean_dim(-1, true, Kind::Float);
        let var = (&pre - &mu).square().mean_dim(-1, true, Kind::Float);
        let want = ((&pre - &mu) / (var + LAYER_NORM_EPS).sqrt()).relu();
        let diff = f64::try_from((y - want).abs().max()).unwrap();
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn rejects_zero_sizes_and_bad_dropout() {
        let _rng = lock();
        let vs = VarStore::new(Device::Cpu);
        let e = Mlp::new(&vs.root(), 0, 4, 4, 1, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("input_dim 0"), "{e}");
        let e = Mlp::new(&vs.root(), 2, 4, 4, 1, Some(1.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dropout") && e.contains('1'), "{e}");
    }
}
