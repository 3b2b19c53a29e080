//! The ground truth of a simulation: baselines, gene programs, perturbation
//! effects, responder fractions and interaction terms, drawn from the seed.
//!
//! Log-mean model (natural log of the expected share of a cell's counts):
//!
//! `log mu[l, g] = log_baseline[l, g] + delta[g]`, with
//!
//! `effect(p, l)[g] = m[p, l] * ( sum_k s[p, k] W[k, g] + t[p] [g == target(p)] )`
//!
//! where `W[k, g]` is program k's loading of gene g (0 off the program),
//! `s[p, k]` the perturbation's program strengths, `t[p]` the effect on its
//! target gene and `m[p, l]` the cell line's multiplier (covariate-dependent
//! strength). A cell of a single perturbation p responds with probability
//! `r[p]` and then gets `delta = effect(p, l)`, else `delta = 0`. A cell of a
//! combination `a+b` responds to a and to b independently, and when it
//! responds to both also gets the interaction
//! `(m[a, l] + m[b, l]) / 2 * sum_k I[c, k] W[k, g]`.
//!
//! The struct serialises to plain arrays (no nested objects in lists), so it
//! fits an `.h5ad` `uns` group.

use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::config::SimConfig;
use crate::error::{Error, Result};

/// Known names for the first cell lines; later ones are `line08`, ...
const LINE_NAMES: [&str; 8] = [
    "K562", "A549", "MCF7", "RPE1", "HepG2", "HEK293T", "Jurkat", "U2OS",
];

/// Everything the simulator drew before sampling cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimTruth {
    /// `[L]` cell-line names.
    pub cell_lines: Vec<String>,
    /// `[P]` single-perturbation names (`P000`, ...).
    pub perturbations: Vec<String>,
    /// `[C]` combination labels (`P003+P017`, members in index order).
    pub combinations: Vec<String>,
    /// `[C, 2]` member indices into `perturbations`.
    pub combination_members: Vec<[u32; 2]>,
    /// `[G]` gene names (`G0000`, ...).
    pub genes: Vec<String>,
    /// `[L, G]` log of each gene's share of the counts in control cells
    /// (each row's exp sums to 1).
    pub log_baseline: Vec<Vec<f64>>,
    /// `[G]` negative-binomial dispersion phi per gene.
    pub gene_dispersion: Vec<f64>,
    /// `[K, S]` gene indices of each program.
    pub program_genes: Vec<Vec<u32>>,
    /// `[K, S]` loadings of those genes.
    pub program_loadings: Vec<Vec<f64>>,
    /// `[P, K]` program strengths `s[p, k]`.
    pub strength: Vec<Vec<f64>>,
    /// `[P]` target gene index of each perturbation.
    pub target_gene: Vec<u32>,
    /// `[P]` target-gene log fold change `t[p]`.
    pub target_effect: Vec<f64>,
    /// `[P, L]` cell-line multipliers `m[p, l]`.
    pub line_multiplier: Vec<Vec<f64>>,
    /// `[P]` responder fraction `r[p]`.
    pub responder_fraction: Vec<f64>,
    /// `[C, K]` interaction coefficients `I[c, k]`.
    pub interaction: Vec<Vec<f64>>,
    /// `[P, L]` 1 when the single perturbation has cells in that line.
    pub present: Vec<Vec<u8>>,
}

/// The perturbation content of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimCondition {
    Control,
    /// Index into `perturbations`.
    Single(usize),
    /// Index into `combinations`.
    Combination(usize),
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

/// `P003`-style names, zero-padded to at least `min_width` digits.
pub(crate) fn padded(prefix: &str, i: usize, n: usize, min_width: usize) -> String {
    let width = n.saturating_sub(1).to_string().len().max(min_width);
    format!("{prefix}{i:0width$}")
}

impl SimTruth {
    /// Draws the truth for `cfg` from `rng` (the caller's truth stream).
    pub fn draw(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> SimTruth {
        let (l_n, p_n, g_n, k_n, s_n) = (
            cfg.n_cell_lines,
            cfg.n_perturbations,
            cfg.n_genes,
            cfg.n_programs,
            cfg.program_size,
        );
        let cell_lines = (0..l_n)
            .map(|l| {
                LINE_NAMES
                    .get(l)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| padded("line", l, l_n, 2))
            })
            .collect();
        let perturbations: Vec<String> = (0..p_n).map(|p| padded("P", p, p_n, 3)).collect();
        let genes = (0..g_n).map(|g| padded("G", g, g_n, 4)).collect();

        // Baselines: a shared log abundance plus a per-line deviation.
        let base: Vec<f64> = (0..g_n).map(|_| cfg.gene_mean_sd * normal(rng)).collect();
        let log_baseline = (0..l_n)
            .map(|_| {
                let row: Vec<f64> = base
                    .iter()
                    .map(|b| b + cfg.cell_line_sd * normal(rng))
                    .collect();
                let lse = log_sum_exp(&row);
                row.into_iter().map(|v| v - lse).collect()
            })
            .collect();
        let gene_dispersion = (0..g_n)
            .map(|_| cfg.nb_dispersion * (0.5 * normal(rng)).exp())
            .collect();

        // Programs: consecutive blocks of a gene permutation (overlapping
        // only when n_programs * program_size > n_genes).
        let mut perm: Vec<u32> = (0..g_n as u32).collect();
        perm.shuffle(rng);
        let program_genes: Vec<Vec<u32>> = (0..k_n)
            .map(|k| (0..s_n).map(|j| perm[(k * s_n + j) % g_n]).collect())
            .collect();
        let program_loadings = (0..k_n)
            .map(|_| {
                (0..s_n)
                    .map(|_| {
                        let sign = if rng.gen_bool(0.7) { 1.0 } else { -1.0 };
                        sign * (1.0 + 0.3 * normal(rng)).abs()
                    })
                    .collect()
            })
            .collect();

        // Perturbations: a primary program, sometimes a secondary one.
        let mut strength = vec![vec![0.0; k_n]; p_n];
        let mut target_gene = Vec::with_capacity(p_n);
        let mut target_effect = Vec::with_capacity(p_n);
        let mut line_multiplier = Vec::with_capacity(p_n);
        let mut responder_fraction = Vec::with_capacity(p_n);
        let [r_lo, r_hi] = cfg.responder_fraction;
        for row in strength.iter_mut() {
            let k0 = rng.gen_range(0..k_n);
            let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
            row[k0] = sign * cfg.effect_scale * (0.25 * normal(rng)).exp();
            if k_n > 1 && rng.gen_bool(0.5) {
                let k1 = (k0 + rng.gen_range(1..k_n)) % k_n;
                let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
                row[k1] = 0.5 * sign * cfg.effect_scale * (0.25 * normal(rng)).exp();
            }
            target_gene.push(rng.gen_range(0..g_n) as u32);
            target_effect.push(cfg.target_effect * (0.2 * normal(rng)).exp());
            line_multiplier.push(
                (0..l_n)
                    .map(|_| (cfg.line_effect_sd * normal(rng)).exp())
                    .collect(),
            );
            responder_fraction.push(r_lo + (r_hi - r_lo) * rng.gen::<f64>());
        }

        // Combinations: distinct pairs, sorted.
        let combination_members = draw_pairs(p_n, cfg.n_combinations, rng);
        let combinations = combination_members
            .iter()
            .map(|[a, b]| {
                format!(
                    "{}+{}",
                    perturbations[*a as usize], perturbations[*b as usize]
                )
            })
            .collect();
        let interaction = combination_members
            .iter()
            .map(|[a, b]| {
                let extra = rng.gen_range(0..k_n);
                (0..k_n)
                    .map(|k| {
                        let touched = strength[*a as usize][k] != 0.0
                            || strength[*b as usize][k] != 0.0
                            || k == extra;
                        if touched {
                            cfg.interaction_scale * normal(rng)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();

        // Presence: members of a combination are in every line; the others
        // may be absent from some lines but stay in at least one.
        let mut in_combo = vec![false; p_n];
        for [a, b] in &combination_members {
            in_combo[*a as usize] = true;
            in_combo[*b as usize] = true;
        }
        let present = (0..p_n)
            .map(|p| {
                let mut row: Vec<u8> = (0..l_n)
                    .map(|_| {
                        u8::from(in_combo[p] || l_n == 1 || !rng.gen_bool(cfg.absent_fraction))
                    })
                    .collect();
                if row.iter().all(|&v| v == 0) {
                    row[rng.gen_range(0..l_n)] = 1;
                }
                row
            })
            .collect();

        SimTruth {
            cell_lines,
            perturbations,
            combinations,
            combination_members,
            genes,
            log_baseline,
            gene_dispersion,
            program_genes,
            program_loadings,
            strength,
            target_gene,
            target_effect,
            line_multiplier,
            responder_fraction,
            interaction,
            present,
        }
    }

    /// The label of a condition (`control`, `P003`, `P003+P017`).
    pub(crate) fn label(&self, c: SimCondition) -> &str {
        match c {
            SimCondition::Control => "control",
            SimCondition::Single(p) => &self.perturbations[p],
            SimCondition::Combination(i) => &self.combinations[i],
        }
    }

    /// Perturbation indices of a condition (0, 1 or 2 of them).
    pub(crate) fn members(&self, c: SimCondition) -> Vec<usize> {
        match c {
            SimCondition::Control => vec![],
            SimCondition::Single(p) => vec![p],
            SimCondition::Combination(i) => self.combination_members[i]
                .iter()
                .map(|&m| m as usize)
                .collect(),
        }
    }

    /// Adds `scale * sum_k coef[k] W[k, .]` to `delta` `[G]`.
    fn add_programs(&self, coef: &[f64], scale: f64, delta: &mut [f64]) {
        for ((&c, genes), loads) in coef
            .iter()
            .zip(&self.program_genes)
            .zip(&self.program_loadings)
        {
            if c != 0.0 {
                for (&g, &w) in genes.iter().zip(loads) {
                    delta[g as usize] += scale * c * w;
                }
            }
        }
    }

    /// `[G]` log-mean shift of a cell of condition `c` in line `line` whose
    /// responses to the condition's members are `mask` (bit i = responds to
    /// member i).
    pub(crate) fn delta(&self, c: SimCondition, line: usize, mask: u32) -> Vec<f64> {
        let mut delta = vec![0.0; self.genes.len()];
        let members = self.members(c);
        for (i, &p) in members.iter().enumerate() {
            if mask & (1 << i) != 0 {
                let m = self.line_multiplier[p][line];
                self.add_programs(&self.strength[p], m, &mut delta);
                delta[self.target_gene[p] as usize] += m * self.target_effect[p];
            }
        }
        if let SimCondition::Combination(ci) = c {
            if mask == 0b11 {
                let m = 0.5
                    * (self.line_multiplier[members[0]][line]
                        + self.line_multiplier[members[1]][line]);
                self.add_programs(&self.interaction[ci], m, &mut delta);
            }
        }
        delta
    }

    /// Finds a condition by label (`control`, `P003`, `P003+P017` or
    /// `P017+P003`).
    pub fn condition(&self, label: &str) -> Result<SimCondition> {
        if label == "control" || label == "ctrl" {
            return Ok(SimCondition::Control);
        }
        if let Some(p) = self.perturbations.iter().position(|p| p == label) {
            return Ok(SimCondition::Single(p));
        }
        let mut parts: Vec<&str> = label.split('+').map(|s| s.trim()).collect();
        parts.sort();
        let key = parts.join("+");
        self.combinations
            .iter()
            .position(|c| *c == key)
            .map(SimCondition::Combination)
            .ok_or_else(|| Error::unknown("simulated condition", label, &self.combinations))
    }

    /// `[G]` natural-log fold change of the expected count share of a cell
    /// that responds to every member of `condition` in `cell_line`, against
    /// that line's controls (before library-size normalisation).
    pub fn responder_log_fold_change(&self, condition: &str, cell_line: &str) -> Result<Vec<f64>> {
        let c = self.condition(condition)?;
        let line = self
            .cell_lines
            .iter()
            .position(|l| l == cell_line)
            .ok_or_else(|| Error::unknown("cell line", cell_line, &self.cell_lines))?;
        let full = (1u32 << self.members(c).len()) - 1;
        Ok(self.delta(c, line, full))
    }

    /// The truth as a JSON map (for `uns`).
    pub fn to_json(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| Error::invalid("simulation truth", e.to_string()))
    }

    /// Reads the truth back from JSON (`uns["simulation"]["truth"]`) and
    /// checks that every shape and index agrees.
    pub fn from_json(v: &serde_json::Value) -> Result<SimTruth> {
        let t: SimTruth = serde_json::from_value(v.clone())
            .map_err(|e| Error::invalid("simulation truth in uns", e.to_string()))?;
        t.check()?;
        Ok(t)
    }
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// `n` distinct unordered pairs `[a, b]` (a < b) of `0..p`, sorted.
fn draw_pairs(p: usize, n: usize, rng: &mut ChaCha8Rng) -> Vec<[u32; 2]> {
    let total = p * p.saturating_sub(1) / 2;
    let mut pairs: Vec<[u32; 2]> = if n * 2 >= total {
        let mut all: Vec<[u32; 2]> = (0..p)
            .flat_map(|a| (a + 1..p).map(move |b| [a as u32, b as u32]))
            .collect();
        all.shuffle(rng);
        all.truncate(n);
        all
    } else {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let a = rng.gen_range(0..p);
            let b = rng.gen_range(0..p);
            if a != b {
                let pair = [a.min(b) as u32, a.max(b) as u32];
                if seen.insert(pair) {
                    out.push(pair);
                }
            }
        }
        out
    };
    pairs.sort();
    pairs
}
