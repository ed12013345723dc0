//! Integration tests for grpo-core (one binary per crate).
mod adv_properties;
mod adv_reference;
mod adv_support;
mod compat_anchor;
mod compat_gradients;
mod compat_native;
mod compat_props;
mod compat_quirks;
mod kl_props;
mod loss_invariants;
mod loss_known;
mod loss_props;
mod required_inputs;
mod sampler_properties;
