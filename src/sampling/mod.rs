//! Sampling decisions, as pure functions: [`head`] (consistent probability sampling from the
//! trace id, the Collector's `hash_seed` and the OTel threshold modes), [`adaptive`] (per
//! (service, root operation) probabilities towards a target rate) and [`tail`] (whole-trace
//! policies, configured as [`policy`] describes). Applying them to requests, and the
//! tail-sampling buffer, are stages: `stages::intake::sampling` and
//! `stages::intake::tail_buffer`.

pub mod adaptive;
pub mod head;
pub mod policy;
pub mod tail;
