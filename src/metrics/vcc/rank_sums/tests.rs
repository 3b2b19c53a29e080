use super::*;

#[test]
fn key_preserves_order() {
    let v = [-3.5f32, -1.0, -1e-30, 1e-30, 0.25, 1.0, 7.0, f32::MAX];
    for w in v.windows(2) {
        assert!(key(w[0]) < key(w[1]), "{w:?}");
    }
    assert!(key(-1e-30) < ZERO_KEY && key(1e-30) > ZERO_KEY);
}

#[test]
fn radix_sort_sorts_by_key() {
    let mut state = 12345u64;
    let mut v: Vec<u64> = (0..5000)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = ((state >> 33) as f32 / 1e6) - 1000.0;
            let x = if i % 7 == 0 { 2.5 } else { x };
            (key(x) as u64) << 32 | (i % 13)
        })
        .collect();
    let mut want: Vec<u64> = v.iter().map(|e| e >> 32).collect();
    want.sort_unstable();
    radix_sort(&mut v, &mut Vec::new());
    let got: Vec<u64> = v.iter().map(|e| e >> 32).collect();
    assert_eq!(got, want);
}

/// Every p-value equals the per-perturbation formulation's
/// ([`ControlRanks`]) exactly, on dense and CSR matrices with many ties,
/// negative values, stored zeros and -0.0, rows outside every group, and
/// CSR rows whose columns are unsorted or repeated; for 1 and 3 threads.
#[test]
fn single_walk_equals_the_per_perturbation_test() {
    use crate::anndata::Csr;
    use crate::metrics::vcc::wilcoxon::ControlRanks;
    use ndarray::Array2;

    let (n, m, groups) = (700, 23, 4);
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let levels = [0.0f32, 0.0, 0.0, -0.0, 0.5, 1.0, 1.0, 2.25, -0.75, 3.0];
    let x = Array2::from_shape_fn((n, m), |_| {
        let r = next();
        if r % 5 == 0 {
            (r % 1000) as f32 / 100.0
        } else {
            levels[(r % levels.len() as u32) as usize]
        }
    });
    // 0..groups tested, `groups` the control, some rows in none.
    let group_of: Vec<u32> = (0..n)
        .map(|r| match r % 7 {
            6 => NO_GROUP,
            k if k < 3 => groups as u32,
            k => (k as u32 + r as u32) % groups as u32,
        })
        .collect();
    let rows_of = |g: u32| -> Vec<usize> { (0..n).filter(|&r| group_of[r] == g).collect() };
    let col = |rows: &[usize], j: usize| -> Vec<f32> { rows.iter().map(|&r| x[[r, j]]).collect() };
    let ctrl = rows_of(groups as u32);
    let oracle = ControlRanks::new((0..m).map(|j| col(&ctrl, j)).collect());
    let want: Vec<Vec<f64>> = (0..groups as u32)
        .map(|g| {
            let rows = rows_of(g);
            (0..m)
                .map(|j| oracle.test(j, &mut col(&rows, j)).1)
                .collect()
        })
        .collect();

    // CSR with the stored explicit zeros kept, row 5 unsorted and row
    // 8 with a column split into two stored values.
    let mut indptr = vec![0u64];
    let (mut indices, mut data) = (Vec::new(), Vec::new());
    for r in 0..n {
        let mut row: Vec<(u32, f32)> = (0..m)
            .filter(|&j| x[[r, j]] != 0.0 || (r + j) % 11 == 0)
            .map(|j| (j as u32, x[[r, j]]))
            .collect();
        if r == 5 {
            row.reverse();
        }
        if r == 8 {
            if let Some(&(j, v)) = row.iter().find(|e| e.1 == 1.0) {
                row.retain(|e| e.0 != j);
                row.push((j, v / 2.0));
                row.push((j, v / 2.0));
            }
        }
        for (j, v) in row {
            indices.push(j);
            data.push(v);
        }
        indptr.push(indices.len() as u64);
    }
    let csr = Csr::new(m, indptr, indices, data).unwrap();
    for xx in [Expr::from(x.clone()), Expr::from(csr)] {
        for threads in [1, 3] {
            let got = rank_sum_p_values(&xx, &group_of, groups, threads).unwrap();
            assert_eq!(got, want, "{} threads {threads}", xx.layout());
        }
    }
    let short = rank_sum_p_values(&Expr::from(x.clone()), &group_of[1..], groups, 1);
    assert!(short.unwrap_err().to_string().contains("labels"));
}
