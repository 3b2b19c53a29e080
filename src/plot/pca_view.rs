//! The paper's Figure 1 view: a PCA fitted on the reference (test) cells,
//! drawn in grey; one condition's true cells in green; and each model's
//! sampled cells of that condition (100 by default) in its own panel, every
//! panel on the same axes so the models compare at a glance.

use ndarray::Axis;
use plotly::common::{Marker, Mode};
use plotly::Scatter;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::{axis_key, axis_names, panel_title, Figure, PALETTE};
use crate::data::{Condition, Dataset};
use crate::error::{Error, Result};
use crate::metrics::Pca;

/// Options of [`pca_view`].
#[derive(Debug, Clone, PartialEq)]
pub struct PcaViewOptions {
    /// Sampled cells shown per model (a seeded random subset).
    pub cells: usize,
    /// Seed of every random subset.
    pub seed: u64,
    /// At most this many grey reference cells are drawn.
    pub max_background: usize,
    /// At most this many reference cells fit the PCA.
    pub max_fit_cells: usize,
    /// Panels per row.
    pub columns: usize,
}

impl Default for PcaViewOptions {
    fn default() -> Self {
        PcaViewOptions {
            cells: 100,
            seed: 0,
            max_background: 5000,
            max_fit_cells: 20_000,
            columns: 4,
        }
    }
}

/// Rows of `ds` whose unit is `cond` (perturbations compared as sets).
pub fn cells_of(ds: &Dataset, cond: &Condition) -> Vec<usize> {
    let mut want = cond.perturbations.clone();
    want.sort();
    ds.units()
        .iter()
        .filter(|u| {
            let mut p = u.perturbations.clone();
            p.sort();
            p == want && u.covariates == cond.covariates
        })
        .flat_map(|u| u.cells.iter().copied())
        .collect()
}

fn subsample(rows: Vec<usize>, n: usize, seed: u64) -> Vec<usize> {
    if rows.len() <= n {
        return rows;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = rand::seq::index::sample(&mut rng, rows.len(), n).into_vec();
    idx.sort_unstable();
    idx.into_iter().map(|i| rows[i]).collect()
}

/// Builds the view. `reference` holds the test cells (its PCA is the
/// frame); `preds` are `(model name, generated cells)`; each must hold
/// cells of `cond`, as must `reference`.
pub fn pca_view(
    reference: &Dataset,
    cond: &Condition,
    preds: &[(String, &Dataset)],
    opts: &PcaViewOptions,
) -> Result<Figure> {
    let label = cond.to_string();
    let truth = cells_of(reference, cond);
    if truth.is_empty() {
        return Err(Error::invalid(
            "pca_view",
            format!(
                "the reference ({}) has no cells of '{label}'",
                reference.source_name()
            ),
        ));
    }
    for (name, p) in preds {
        if p.n_genes() != reference.n_genes() {
            return Err(Error::Mismatch(format!(
                "model '{name}' generated {} genes, the reference has {}",
                p.n_genes(),
                reference.n_genes()
            )));
        }
    }
    // The fit's own subsample, drawn here so only those rows are densified.
    let fit_rows = subsample(
        (0..reference.n_cells()).collect(),
        opts.max_fit_cells.max(2),
        opts.seed,
    );
    let pca = Pca::fit(
        &reference.x,
        &fit_rows,
        2.min(reference.n_genes()),
        tch::Kind::Double,
        tch::Device::Cpu,
    )?;
    let bg_rows = subsample(
        (0..reference.n_cells()).collect(),
        opts.max_background,
        opts.seed,
    );
    let bg = pca.project_rows(&reference.x, &bg_rows)?;
    let tr = pca.project_rows(&reference.x, &truth)?;
    let mut model_points = Vec::new();
    for (name, p) in preds {
        let rows = cells_of(p, cond);
        if rows.is_empty() {
            return Err(Error::invalid(
                "pca_view",
                format!("model '{name}' generated no cells of '{label}'"),
            ));
        }
        let rows = subsample(rows, opts.cells, opts.seed);
        model_points.push(pca.project_rows(&p.x, &rows)?);
    }
    // One frame for every panel: the range of everything drawn, padded 5%.
    let (mut x0, mut x1, mut y0, mut y1) = (
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
    );
    for pts in std::iter::once(&bg)
        .chain(std::iter::once(&tr))
        .chain(model_points.iter())
    {
        for r in pts.axis_iter(Axis(0)) {
            x0 = x0.min(r[0]);
            x1 = x1.max(r[0]);
            y0 = y0.min(r[1]);
            y1 = y1.max(r[1]);
        }
    }
    let pad = |a: f32, b: f32| {
        let d = ((b - a) * 0.05).max(1e-3);
        vec![(a - d) as f64, (b + d) as f64]
    };
    let (xr, yr) = (pad(x0, x1), pad(y0, y1));
    let n_panels = preds.len().max(1);
    let cols = opts.columns.clamp(1, n_panels);
    let rows = n_panels.div_ceil(cols);
    let title = format!("PCA of the reference cells: {label}");
    let mut fig = Figure::new(&title);
    let evr = pca.explained_variance_ratio();
    let pct = |j: usize| evr.get(j).map(|v| v * 100.0).unwrap_or(0.0);
    let mut annotations = Vec::new();
    for i in 0..n_panels {
        let (xa, ya) = axis_names(i);
        let col = i % cols;
        let row = i / cols;
        let gap = 0.04;
        let xd = [
            col as f64 / cols as f64 + gap,
            (col + 1) as f64 / cols as f64 - gap,
        ];
        let yd = [
            1.0 - (row + 1) as f64 / rows as f64 + gap * 1.5,
            1.0 - row as f64 / rows as f64 - gap * 1.5,
        ];
        fig.set_layout(
            &axis_key(&xa),
            json!({"domain": xd, "range": xr, "anchor": ya, "title": {"text": format!("PC1 ({:.1}%)", pct(0))}, "zeroline": false}),
        );
        fig.set_layout(
            &axis_key(&ya),
            json!({"domain": yd, "range": yr, "anchor": xa, "title": {"text": format!("PC2 ({:.1}%)", pct(1))}, "zeroline": false}),
        );
        let first = i == 0;
        let (bx, by) = columns(&bg);
        fig.add(
            &*Scatter::new(bx, by)
                .mode(Mode::Markers)
                .name("reference cells")
                .legend_group("reference")
                .show_legend(first)
                .marker(Marker::new().color("#b0b0b0").size(4).opacity(0.5))
                .x_axis(&xa)
                .y_axis(&ya),
        )?;
        let (tx, ty) = columns(&tr);
        fig.add(
            &*Scatter::new(tx, ty)
                .mode(Mode::Markers)
                .name(format!("true {label}"))
                .legend_group("truth")
                .show_legend(first)
                .marker(Marker::new().color("#2ca02c").size(6).opacity(0.8))
                .x_axis(&xa)
                .y_axis(&ya),
        )?;
        if let (Some((name, _)), Some(pts)) = (preds.get(i), model_points.get(i)) {
            let (px, py) = columns(pts);
            fig.add(
                &*Scatter::new(px, py)
                    .mode(Mode::Markers)
                    .name(name.as_str())
                    .marker(
                        Marker::new()
                            .color(PALETTE[i % PALETTE.len()])
                            .size(6)
                            .opacity(0.8),
                    )
                    .x_axis(&xa)
                    .y_axis(&ya),
            )?;
            annotations.push(panel_title(i, name));
        }
    }
    fig.set_layout("annotations", Value::Array(annotations));
    fig.set_layout("height", json!(420 * rows));
    Ok(fig)
}

fn columns(pts: &ndarray::Array2<f32>) -> (Vec<f64>, Vec<f64>) {
    (
        pts.column(0).iter().map(|&v| v as f64).collect(),
        pts.column(1).iter().map(|&v| v as f64).collect(),
    )
}
