//! Paper id normalization. (stub: being written)

/// `arXiv:2411.16500v2`, `https://arxiv.org/pdf/2411.16500v1.pdf`, `hep-th/9901001` → the bare id.
pub fn normalize_arxiv(_s: &str) -> Option<String> {
    None
}
