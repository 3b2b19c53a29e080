//! Mini-batch optimal-transport couplings for FM PCA OT (model.md,
//! "Ablations and baselines"; paper Tables 16-17): per condition, the control
//! cells of its covariate (source `x [n, d]`) and its perturbed cells (target
//! `y [k, d]`) are coupled by an entropic, optionally unbalanced, OT plan, and
//! (source, target) training pairs are drawn from the plan, as in CellFlow's
//! `OTFlowMatching` (which calls ott-jax). The flow-matching side lives in
//! [`crate::flow`]; this module only builds couplings.
//!
//! # The problem
//!
//! For a cost `C [n, k]` (squared Euclidean, divided by its mean: [`cost`]),
//! weights `a [n]`, `b [k]` (uniform by default), `eps > 0` and
//! `tau_a, tau_b` in (0, 1], the plan is the minimiser of
//!
//! ```text
//! <C, P> - eps H(P) + rho_a KL(P 1 | a) + rho_b KL(P^T 1 | b),
//! H(P) = -sum_ij P_ij (log P_ij - 1),  KL(p | q) = sum_i p_i log(p_i / q_i) - p_i + q_i,
//! rho = eps tau / (1 - tau)   (tau = 1: rho = inf, the marginal is enforced exactly)
//! ```
//!
//! (entropic unbalanced OT with KL marginal penalties: Chizat, Peyre,
//! Schmitzer & Vialard 2018, "Scaling algorithms for unbalanced optimal
//! transport problems"; `rho` as in ott-jax's `LinearProblem`), solved by
//! the log-domain form of their scaling iterations in [`mod@sinkhorn`]:
//! `P_ij = exp((f_i + g_j - C_ij) / eps)` with
//!
//! ```text
//! g_j <- tau_b (eps log b_j - eps LSE_i((f_i - C_ij) / eps))
//! f_i <- tau_a (eps log a_i - eps LSE_j((g_j - C_ij) / eps))
//! ```
//!
//! These are exactly ott-jax's `Sinkhorn.lse_step` updates (CellFlow's
//! `match_linear`), batched here over `C` conditions: `cost [C, n, k]`,
//! `a [C, n]`, `b [C, k]`.
//!
//! # Conventions and their POT / ott-jax names
//!
//! | here | ott-jax / CellFlow `match_linear` | POT |
//! |---|---|---|
//! | `epsilon` | `epsilon` (absolute, on the scaled cost) | `reg` |
//! | `tau_a`, `tau_b` | `tau_a`, `tau_b` | `reg_m = (rho_a, rho_b)`, `rho = eps tau / (1 - tau)` (`inf` at tau = 1) |
//! | entropy term `-eps H(P)` | what `Sinkhorn` converges to | `reg_type="entropy"` |
//! | `scale_cost: mean` | `scale_cost="mean"` (unweighted mean entry) | pass `M / M.mean()` |
//! | `tol` (L1, every 10 iterations) | `threshold`, `norm_error=1`, `inner_iterations=10` | none (`stopThr` is on the change of the scalings) |
//! | `max_iter` | `max_iterations` | `numItermax` |
//! | [`SinkhornOutput::plan`] | `SinkhornOutput.matrix` | the returned plan |
//! | [`sample_pairs`] | `ott.solvers.utils.sample_joint` | - |
//!
//! Balanced plans equal POT's `ot.sinkhorn(a, b, M, reg)`; unbalanced ones
//! equal `ot.unbalanced.sinkhorn_unbalanced(a, b, M, reg, (rho_a, rho_b),
//! reg_type="entropy")` (both checked in `tests/suite/ot.rs`; the ott-jax
//! equivalence was checked once with ott-jax 0.6.0, to 2e-15). ott documents
//! its entropic term as `eps KL(P | a b^T)`, which gives the same plan only
//! when both marginals are enforced; `KL(P | a b^T)` is POT's
//! `reg_type="kl"` and equals the problem above with cost
//! `C_ij - eps log a_i - eps log b_j`.
//!
//! A consequence of the `-eps H` term: with `tau < 1` and `eps` large
//! against the scaled cost (CellFlow's `eps = 1`), the plan can carry *more*
//! mass than the marginals (about 3.2 for 8 x 10 points, `tau = 0.5`). The
//! paper's setting, `tau_a = tau_b = 1` (Tables 16-17), is balanced.
//!
//! ```no_run
//! # fn main() -> primeflow::Result<()> {
//! use primeflow::ot::{ot_pairs, OtConfig};
//! use tch::{Device, Kind, Tensor};
//! let cfg = OtConfig::preset("norman19")?; // 256 cells per condition, tau = 1
//! let n = cfg.num_samples_per_condition as i64;
//! let x0 = Tensor::randn([4, n, 50], (Kind::Float, Device::Cpu)); // controls, 4 conditions
//! let x1 = Tensor::randn([4, n, 50], (Kind::Float, Device::Cpu)); // perturbed cells
//! let pairs = ot_pairs(&x0, &x1, &cfg, 7)?;
//! let (src, tgt) = pairs.gather(&x0, &x1)?; // [4, n, 50] each, row i paired
//! # let _ = (src, tgt); Ok(()) }
//! ```

pub mod config;
pub mod cost;
pub mod coupling;
pub mod sinkhorn;

pub use config::{OtConfig, ScaleCost};
pub use cost::{cost_scale, sq_euclidean};
pub use coupling::{gather_rows, ot_pairs, sample_pairs, OtPairs};
pub use sinkhorn::{sinkhorn, SinkhornOutput};
