use super::*;
use ndarray::array;

fn sample() -> Array2<f32> {
    array![
        [0.0, 1.5, 0.0],
        [2.0, 0.0, 3.0],
        [0.0, 0.0, 0.0],
        [4.0, 5.0, 6.0]
    ]
}

#[test]
fn csr_and_dense_agree() {
    let d = Expr::from(sample());
    let c = Expr::from(Csr::from_dense(&sample()));
    assert!(c.is_csr() && !d.is_csr());
    assert_eq!(d, c);
    assert_eq!(c.to_dense(), sample());
    assert_eq!(c.count_nonzero(), 6);
    let rows = [3, 0, 3];
    assert_eq!(
        c.rows_vec(&rows, None).unwrap(),
        d.rows_vec(&rows, None).unwrap()
    );
    assert_eq!(
        c.rows_vec(&rows, Some(&[2, 0])).unwrap(),
        vec![6.0, 4.0, 0.0, 0.0, 6.0, 4.0]
    );
    assert!(c.rows_vec(&[4], None).is_err());
    assert!(c.rows_vec(&[0], Some(&[3])).is_err());
}

#[test]
fn selection_shares_and_composes() {
    let c = Expr::from(Csr::from_dense(&sample()));
    let s = c.select(&[3, 1]).unwrap();
    let s2 = s.select(&[1]).unwrap();
    assert_eq!(s.dim(), (2, 3));
    assert_eq!(s2.row_vec(0), vec![2.0, 0.0, 3.0]);
    assert_eq!(s.store_bytes(), c.store_bytes());
    assert!(c.select(&[9]).is_err());
    let mut e = s2.clone();
    e.dense_mut().unwrap()[[0, 1]] = 7.0;
    assert_eq!(e.row_vec(0), vec![2.0, 7.0, 3.0]);
    assert_eq!(s2.row_vec(0), vec![2.0, 0.0, 3.0]);
}

#[test]
fn duplicates_add_up_and_structure_is_checked() {
    let c = Csr::new(2, vec![0, 2], vec![1, 1], vec![1.0, 2.0]).unwrap();
    assert_eq!(Expr::from(c).row_vec(0), vec![0.0, 3.0]);
    assert!(Csr::new(2, vec![0, 1], vec![2], vec![1.0]).is_err());
    assert!(Csr::new(2, vec![0, 2], vec![0], vec![1.0]).is_err());
    assert!(Csr::new(2, vec![1, 1], vec![], vec![]).is_err());
}
