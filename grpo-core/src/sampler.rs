//! sampler (being written).

/// Registry rows of this module.
pub fn registry() -> Vec<crate::registry::Entry> {
    Vec::new()
}
