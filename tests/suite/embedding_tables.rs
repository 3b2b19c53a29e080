//! Tests: perturbation embedding tables read from an .h5ad's `varm` /
//! `obsm` (`FILE.h5ad:varm/KEY`), written by Python anndata as a user's
//! own file would be.

use std::path::Path;

use primeflow::data::EmbeddingTable;

use crate::common;

#[test]
fn embedding_tables_are_read_from_varm_and_obsm_entries() {
    if !common::python_has("anndata") {
        eprintln!("skipped: Python anndata is not installed in .venv (./setup.sh --python)");
        return;
    }
    let dir = common::tmpdir("embedding_tables");
    let file = dir.join("emb.h5ad");
    common::run_python(&format!(
        r#"
import numpy as np, pandas as pd, scipy.sparse as sp, anndata as ad
a = ad.AnnData(X=np.zeros((3, 5), dtype=np.float32),
               obs=pd.DataFrame(index=["c0", "c1", "c2"]),
               var=pd.DataFrame(index=[f"G{{i}}" for i in range(5)]))
a.varm["emb"] = (np.arange(15, dtype=np.float64).reshape(5, 3) * 0.5)
a.varm["sparse"] = sp.csr_matrix(np.eye(5, 2, dtype=np.float32))
a.obsm["cell"] = np.full((3, 2), 7.0, dtype=np.float32)
a.write_h5ad("{}")
"#,
        file.display()
    ));
    let at = |entry: &str| format!("{}:{entry}", file.display());
    // varm: named by the var index, f64 on disk read as f32.
    let t = EmbeddingTable::read(Path::new(&at("varm/emb"))).unwrap();
    assert_eq!(t.names, ["G0", "G1", "G2", "G3", "G4"]);
    assert_eq!(t.dim, 3);
    assert_eq!(t.get("G2"), Some(&[3.0f32, 3.5, 4.0][..]));
    // A CSR entry is densified.
    let s = EmbeddingTable::read(Path::new(&at("varm/sparse"))).unwrap();
    assert_eq!((s.dim, s.get("G1")), (2, Some(&[0.0f32, 1.0][..])));
    // obsm: named by the obs index.
    let o = EmbeddingTable::read(Path::new(&at("obsm/cell"))).unwrap();
    assert_eq!(
        (o.names.len(), o.dim, o.get("c1")),
        (3, 2, Some(&[7.0f32, 7.0][..]))
    );
    // A missing key names the file and lists the keys there are.
    let e = EmbeddingTable::read(Path::new(&at("varm/nope")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("emb.h5ad") && e.contains("'nope'") && e.contains("emb, sparse"),
        "{e}"
    );
    // Another slot is refused with the accepted forms.
    let e = EmbeddingTable::read(Path::new(&at("layers/x")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("varm/KEY") && e.contains("layers/x"), "{e}");
}
