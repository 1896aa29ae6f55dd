//! Log template clustering (draft).

pub mod cluster;
pub mod mask;

pub use cluster::{Cluster, Clusterer, Params};
pub use mask::Masker;
