//! [`XBuffers`]: the memory of an expression matrix that is no longer
//! needed, handed to the next read ([`read_h5ad_reusing`](super::read_h5ad_reusing))
//! so that the next file's values land in pages already faulted in.
//!
//! A fresh multi-gigabyte X costs the kernel a fault and a zeroed page per
//! 4 KiB (on a virtual machine often more than the read itself); a command
//! that reads two files one after the other (`evaluate --profile vcc`)
//! holds one X at a time this way and touches fresh memory once.

/// Reusable storage of an X: the values (`[nnz]` of a CSR or `[n * m]` of a
/// dense matrix) and the column indices of a CSR. Only the capacity
/// matters; a read clears both before writing.
#[derive(Default)]
pub struct XBuffers {
    pub(crate) values: Vec<f32>,
    pub(crate) indices: Vec<u32>,
}

impl XBuffers {
    /// Bytes of capacity held.
    pub fn capacity_bytes(&self) -> usize {
        self.values.capacity() * 4 + self.indices.capacity() * 4
    }
}

impl std::fmt::Debug for XBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "XBuffers({} values, {} indices of capacity)",
            self.values.capacity(),
            self.indices.capacity()
        )
    }
}
