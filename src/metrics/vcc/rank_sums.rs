//! Wilcoxon rank-sum p-values of every gene for many groups of cells against
//! one control group, from a single sorted walk per gene.
//!
//! For each gene, the stored non-zero values of every listed cell (each
//! tagged with its group) are sorted once by an LSD radix sort on their
//! order-preserving bit pattern; one walk over the sorted values then adds,
//! for every group at once, its Mann-Whitney `U1 = sum_i [#(ctrl < x_i) +
//! #(ctrl == x_i) / 2]` and the pooled tie term `sum (t^3 - t)` of the group
//! with the controls (the control's own ties plus, for every run of equal
//! values the group takes part in, `(a + b)^3 - (a + b) - (a^3 - a)` with `a`
//! control and `b` group members). Zeros are one tie group per group, placed
//! between the negative and the positive values and never sorted.
//!
//! Everything added is an integer or a half-integer, exact in f64 (below
//! 2^53), so the order of the additions does not matter: the statistics are
//! the ones of the per-perturbation formulation, bit for bit
//! ([`super::wilcoxon`]'s tests compare both).
//!
//! Genes are taken in blocks: for a block, every listed row contributes the
//! part of its row that falls in the block (a cursor per row, rows with
//! sorted column indices; others are scanned whole), so the matrix is read
//! once per gene range and never densified. Gene ranges run on threads.

use crate::anndata::{Expr, Row};
use crate::error::{Error, Result};

use super::wilcoxon::u_to_p;

/// `group_of` value of a row that belongs to no group (skipped).
pub const NO_GROUP: u32 = u32::MAX;

/// How many rows ahead the gather prefetches a row's next values.
const PREFETCH_AHEAD: usize = 8;

/// Bytes of gathered values a worker holds per gene block.
const BLOCK_BYTES: usize = 128 << 20;

/// The order-preserving `u32` of a non-zero, non-NaN `f32`: negative values
/// below `ZERO_KEY`, positive values above it.
fn key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The key zero would have (`key(0.0)`); zeros are never stored as entries.
const ZERO_KEY: u32 = 0x8000_0000;

/// Sorts `v` (entries `key << 32 | group`) by key: three 11-bit LSD passes
/// over the key bits, a pass skipped when every entry has the same digit.
/// `tmp`: scratch of any length.
fn radix_sort(v: &mut Vec<u64>, tmp: &mut Vec<u64>) {
    let n = v.len();
    if n < 256 {
        v.sort_unstable();
        return;
    }
    let mut hist = [[0u32; 2048]; 3];
    for &e in v.iter() {
        let k = (e >> 32) as usize;
        hist[0][k & 0x7ff] += 1;
        hist[1][(k >> 11) & 0x7ff] += 1;
        hist[2][k >> 22] += 1;
    }
    tmp.clear();
    tmp.resize(n, 0);
    for (pass, h) in hist.iter_mut().enumerate() {
        if h.iter().any(|&c| c as usize == n) {
            continue;
        }
        let mut sum = 0u32;
        for c in h.iter_mut() {
            let here = *c;
            *c = sum;
            sum += here;
        }
        let shift = 32 + 11 * pass;
        for &e in v.iter() {
            let d = ((e >> shift) & 0x7ff) as usize;
            tmp[h[d] as usize] = e;
            h[d] += 1;
        }
        std::mem::swap(v, tmp);
    }
}

/// Per-gene accumulators of the walk, reused across genes.
struct Walk {
    /// `[groups + 1]` stored non-zero values per group (last: control).
    nz: Vec<u64>,
    /// `[groups]` U1 of each group.
    u1: Vec<f64>,
    /// `[groups]` the tie term each group adds to the control's.
    tie: Vec<f64>,
    /// `[groups + 1]` members of the current run per group.
    run: Vec<u64>,
    /// Groups with members in the current run.
    touched: Vec<u32>,
}

/// `t^3 - t`.
fn cube(t: f64) -> f64 {
    t * t * t - t
}

impl Walk {
    fn new(groups: usize) -> Walk {
        Walk {
            nz: vec![0; groups + 1],
            u1: vec![0.0; groups],
            tie: vec![0.0; groups],
            run: vec![0; groups + 1],
            touched: Vec::new(),
        }
    }

    /// The p-value of every group for one gene, into `out` `[groups]`.
    /// `sorted`: the gene's non-zero entries sorted by key; `sizes`:
    /// `[groups + 1]` cells per group, the control last.
    fn gene(&mut self, sorted: &[u64], sizes: &[u64], out: &mut [f64]) {
        let groups = self.u1.len();
        let ctrl = groups;
        self.nz.fill(0);
        for &e in sorted {
            self.nz[(e as u32) as usize] += 1;
        }
        self.u1.fill(0.0);
        self.tie.fill(0.0);
        let mut less = 0u64;
        let mut tie_ctrl = 0.0;
        let zero_at = sorted.partition_point(|&e| ((e >> 32) as u32) < ZERO_KEY);
        self.runs(&sorted[..zero_at], &mut less, &mut tie_ctrl);
        // The zeros: one run with a member count per group.
        let a = sizes[ctrl] - self.nz[ctrl];
        let af = a as f64;
        tie_ctrl += cube(af);
        for (g, (&size, &nz)) in sizes.iter().zip(&self.nz).take(groups).enumerate() {
            let b = size - nz;
            if b > 0 {
                let bf = b as f64;
                self.u1[g] += bf * (less as f64 + af / 2.0);
                self.tie[g] += cube(af + bf) - cube(af);
            }
        }
        less += a;
        self.runs(&sorted[zero_at..], &mut less, &mut tie_ctrl);
        let n2 = sizes[ctrl] as f64;
        for (g, o) in out.iter_mut().enumerate() {
            *o = u_to_p(self.u1[g], sizes[g] as f64, n2, tie_ctrl + self.tie[g]).1;
        }
    }

    /// Adds the runs of equal keys of `s` (sorted); `less` counts the
    /// control values below the current one.
    fn runs(&mut self, s: &[u64], less: &mut u64, tie_ctrl: &mut f64) {
        let ctrl = self.u1.len() as u32;
        let mut i = 0;
        while i < s.len() {
            let k = s[i] >> 32;
            let mut j = i + 1;
            while j < s.len() && s[j] >> 32 == k {
                j += 1;
            }
            if j == i + 1 {
                // A value nobody else has: no tie, half-count zero.
                let g = s[i] as u32;
                if g == ctrl {
                    *less += 1;
                } else {
                    self.u1[g as usize] += *less as f64;
                }
            } else {
                for &e in &s[i..j] {
                    let g = e as u32;
                    if self.run[g as usize] == 0 {
                        self.touched.push(g);
                    }
                    self.run[g as usize] += 1;
                }
                let a = self.run[ctrl as usize];
                let af = a as f64;
                *tie_ctrl += cube(af);
                for &g in &self.touched {
                    let b = self.run[g as usize];
                    self.run[g as usize] = 0;
                    if g != ctrl {
                        let bf = b as f64;
                        self.u1[g as usize] += bf * (*less as f64 + af / 2.0);
                        self.tie[g as usize] += cube(af + bf) - cube(af);
                    }
                }
                self.touched.clear();
                *less += a;
            }
            i = j;
        }
    }
}

/// The listed rows of `x` and how their stored values are read per block.
struct Layout<'a> {
    x: &'a Expr,
    /// Rows in some group, ascending.
    rows: Vec<usize>,
    /// `[rows]` the group of each (control: `groups`).
    group: Vec<u32>,
    /// `[rows]` whether a sparse row's columns ascend strictly (so a cursor
    /// can walk it); dense rows: true.
    sorted: Vec<bool>,
}

impl Layout<'_> {
    /// Appends the non-zero values of columns `g0..g1` of every listed row
    /// to `bufs[g - g0]`; `cursor[i]`: where row `i`'s columns reach `g0`
    /// (advanced to `g1`).
    fn gather(&self, g0: usize, g1: usize, cursor: &mut [usize], bufs: &mut [Vec<u64>]) {
        for b in bufs.iter_mut() {
            b.clear();
        }
        for (i, &r) in self.rows.iter().enumerate() {
            self.prefetch(i + PREFETCH_AHEAD, cursor);
            let tag = self.group[i] as u64;
            let mut push = |g: usize, v: f32| {
                if v != 0.0 {
                    bufs[g - g0].push((key(v) as u64) << 32 | tag);
                }
            };
            match self.x.row(r) {
                Some(Row::Dense(row)) => {
                    for g in g0..g1 {
                        push(g, row[g]);
                    }
                }
                Some(Row::Sparse(idx, val)) if self.sorted[i] => {
                    let mut k = cursor[i];
                    while k < idx.len() && (idx[k] as usize) < g1 {
                        push(idx[k] as usize, val[k]);
                        k += 1;
                    }
                    cursor[i] = k;
                }
                Some(Row::Sparse(idx, val)) => {
                    // Unsorted or repeated columns: sum them as densifying
                    // does (storage order), then take the block's values.
                    let mut dense = vec![0f32; g1 - g0];
                    for (&j, &v) in idx.iter().zip(val) {
                        let j = j as usize;
                        if (g0..g1).contains(&j) {
                            dense[j - g0] += v;
                        }
                    }
                    for (o, v) in dense.into_iter().enumerate() {
                        push(g0 + o, v);
                    }
                }
                None => {}
            }
        }
    }

    /// Asks the CPU to start loading where listed row `i`'s cursor points
    /// (its next columns and values): rows lie tens of kilobytes apart, so
    /// without it every row's part of a block starts with two cache (and
    /// TLB) misses that the gather waits for.
    #[inline]
    fn prefetch(&self, i: usize, cursor: &[usize]) {
        #[cfg(target_arch = "x86_64")]
        if let (Some(&r), Some(&k)) = (self.rows.get(i), cursor.get(i)) {
            if let Some(Row::Sparse(idx, val)) = self.x.row(r) {
                if k < idx.len() {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    // SAFETY: a prefetch is a hint that never faults or
                    // changes memory; both pointers are in bounds (k <
                    // idx.len() == val.len()).
                    unsafe {
                        _mm_prefetch::<_MM_HINT_T0>(idx.as_ptr().add(k).cast());
                        _mm_prefetch::<_MM_HINT_T0>(val.as_ptr().add(k).cast());
                    }
                }
            }
        }
    }

    /// Where each listed sparse row's columns reach `g0`.
    fn cursors(&self, g0: usize) -> Vec<usize> {
        self.rows
            .iter()
            .enumerate()
            .map(|(i, &r)| match self.x.row(r) {
                Some(Row::Sparse(idx, _)) if self.sorted[i] => {
                    idx.partition_point(|&j| (j as usize) < g0)
                }
                _ => 0,
            })
            .collect()
    }
}

/// `[groups][G]` the two-sided Wilcoxon rank-sum p-value (asymptotic, tie
/// and continuity corrected: [`u_to_p`]) of every gene of every group
/// against the control. `x`: `[n, G]`; `group_of`: `[n]` each row's group
/// in `0..groups`, `groups` for a control row, or [`NO_GROUP`]. Runs on up
/// to `threads` threads (gene ranges split between them).
pub fn rank_sum_p_values(
    x: &Expr,
    group_of: &[u32],
    groups: usize,
    threads: usize,
) -> Result<Vec<Vec<f64>>> {
    let n_genes = x.ncols();
    if group_of.len() != x.nrows() {
        return Err(Error::invalid(
            "rank-sum groups",
            format!("{} labels for {} cells", group_of.len(), x.nrows()),
        ));
    }
    if let Some(&g) = group_of
        .iter()
        .find(|&&g| g != NO_GROUP && g as usize > groups)
    {
        return Err(Error::invalid(
            "rank-sum groups",
            format!("group {g} is out of range ({groups} groups and the control)"),
        ));
    }
    let mut sizes = vec![0u64; groups + 1];
    let mut layout = Layout {
        x,
        rows: Vec::new(),
        group: Vec::new(),
        sorted: Vec::new(),
    };
    let mut stored = 0usize;
    for (r, &g) in group_of.iter().enumerate() {
        if g == NO_GROUP {
            continue;
        }
        sizes[g as usize] += 1;
        layout.rows.push(r);
        layout.group.push(g);
        layout.sorted.push(match x.row(r) {
            Some(Row::Sparse(idx, _)) => {
                stored += idx.len();
                idx.windows(2).all(|w| w[0] < w[1])
            }
            _ => {
                stored += n_genes;
                true
            }
        });
    }
    let per_gene = stored / n_genes.max(1) + 1;
    let block = (BLOCK_BYTES / (8 * per_gene)).clamp(8, 1024);
    let threads = threads.clamp(1, n_genes.div_ceil(block).max(1));
    let span = n_genes.div_ceil(threads).max(1);
    let work = |ga: usize, gb: usize| -> Vec<f64> {
        // [gb - ga][groups] gene-major.
        let mut out = vec![0f64; (gb - ga) * groups];
        let mut cursor = layout.cursors(ga);
        let mut bufs: Vec<Vec<u64>> = vec![Vec::new(); block];
        let mut tmp = Vec::new();
        let mut walk = Walk::new(groups);
        let mut g0 = ga;
        while g0 < gb {
            let g1 = (g0 + block).min(gb);
            layout.gather(g0, g1, &mut cursor, &mut bufs[..g1 - g0]);
            for (o, buf) in bufs[..g1 - g0].iter_mut().enumerate() {
                radix_sort(buf, &mut tmp);
                let at = (g0 + o - ga) * groups;
                walk.gene(buf, &sizes, &mut out[at..at + groups]);
            }
            g0 = g1;
        }
        out
    };
    let ranges: Vec<(usize, usize)> = (0..n_genes)
        .step_by(span)
        .map(|a| (a, (a + span).min(n_genes)))
        .collect();
    let parts: Vec<Vec<f64>> = if ranges.len() <= 1 {
        ranges.iter().map(|&(a, b)| work(a, b)).collect()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = ranges
                .iter()
                .map(|&(a, b)| {
                    let work = &work;
                    s.spawn(move || work(a, b))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().map_err(|_| {
                        Error::invalid("differential expression", "a worker thread panicked")
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?
    };
    let mut p = vec![vec![0f64; n_genes]; groups];
    for (&(a, b), part) in ranges.iter().zip(&parts) {
        for g in a..b {
            let row = &part[(g - a) * groups..(g - a + 1) * groups];
            for (q, &v) in row.iter().enumerate() {
                p[q][g] = v;
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests;
