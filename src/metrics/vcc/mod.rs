//! cell-eval 0.8.2's metrics (Arc Institute's Virtual Cell Challenge
//! scorer), computed natively: `primeflow evaluate --profile vcc` and
//! `Metrics(#{profile: "vcc"})`. docs/results/vcc_metrics.md has the
//! agreement and speed measurements.
//!
//! A real and a predicted `.h5ad` with the same genes (same order), the same
//! perturbation labels in an obs column (VCC: `target_gene`) and control
//! cells (VCC: `non-targeting`) in both. Conventions, read from the source of
//! cell-eval 0.8.2 and of pdex 0.3.0 / numba-mwu 0.2.0 that it runs:
//!
//! * Profiles ([`CellEvalProfile`]): `vcc` = `overlap_at_N`, `mae`,
//!   `discrimination_score_l1` (cell-eval's `VCC_METRICS`); `minimal` adds
//!   `precision_at_N`, `de_nsig_counts_{real,pred}`, `pearson_delta`, `mse`.
//! * Which controls: every quantity of the prediction uses the *prediction
//!   file's own* control cells (its DE, its effects); the real side uses the
//!   real controls. `mae` and `mse` use no control at all.
//! * DE ([`de`]): per perturbation vs the same file's controls, Wilcoxon
//!   rank-sum ([`wilcoxon`]: two-sided, normal approximation, continuity
//!   correction, tie-corrected variance), Benjamini-Hochberg over the genes
//!   of the perturbation, `log2_fold_change = log2(expm1(mean log1p) /
//!   expm1(mean log1p))` (geometric pseudobulks, natural log1p, base-2 fold
//!   change, pseudocount 0: cell-eval pins pdex's `epsilon` to 0, so a
//!   one-sided zero is `+-inf`, and `0/0` is 0). fdr and log2_fold_change
//!   are kept in f32 as cell-eval stores them.
//! * `overlap_at_N` (per perturbation): the real significant genes
//!   (`fdr < 0.05`) R and the predicted ones P, each ranked by
//!   `|log2_fold_change|` descending (ties in gene order), `k = |R|`:
//!   `|R ∩ P[..k]| / k`, 0 when R is empty. `precision_at_N` swaps the roles
//!   (`k = |P|`, `|R[..k] ∩ P| / k`).
//! * Pseudobulk metrics ([`discrimination`]): means of log1p values (no
//!   expm1), `mae` = mean over genes of `|pred - real|`; the discrimination
//!   score uses effects `bulk_p - bulk_ctrl`, L1 distance, the target gene's
//!   column left out, `1 - rank / n_perts`.
//! * Summary: per metric, polars' `describe()` of the per-perturbation values
//!   ([`report`]); cell-eval's leaderboard score additionally needs a
//!   baseline's results and is not computed here.
//! * cell-eval's `run` normalises integer-valued X (counts) before scoring;
//!   here such input is an error, the data must be log1p already. cell-eval
//!   refuses negative values; here they are scored as given (predictions).
//!
//! Speed: the values of each gene (controls and every perturbation
//! together) are radix-sorted once and one walk gives every perturbation's
//! test ([`rank_sums`]); the matrix is read in gene blocks, never densified,
//! and gene ranges run on `threads` threads.

pub mod de;
pub mod discrimination;
pub mod profile;
pub mod rank_sums;
pub mod report;
pub mod wilcoxon;

pub use profile::{
    check_cell_eval_pair, evaluate_cell_eval, score_cell_eval, CellEvalOptions, CellEvalProfile,
    CellEvalSide, CELL_EVAL_VERSION,
};
pub use report::{CellEvalReport, MetricColumn};
