//! Loss chains: modifiers and additive terms wrap a `base` loss (`rollout_correction` over
//! `kl_penalty` over `ppo_clip`, ...; grpo-core's [`LossConfig::base`]); these helpers reach
//! every loss of a chain, for the per-step schedules (MDPO's `t_k`, R²VPO's η) and their
//! validation.

use grpo_core::loss::{LossConfig, R2vpoConfig};

/// `loss` and every loss it wraps, outermost first.
pub fn chain(loss: &LossConfig) -> impl Iterator<Item = &LossConfig> {
    std::iter::successors(Some(loss), |l| l.base())
}

/// Applies `f` to `loss` and every loss it wraps.
pub fn set_in_chain(loss: &mut LossConfig, f: &mut dyn FnMut(&mut LossConfig)) {
    f(loss);
    if let Some(base) = loss.base_mut() {
        set_in_chain(base, f);
    }
}

/// The R²VPO term of the chain, if any.
pub fn r2vpo(loss: &LossConfig) -> Option<&R2vpoConfig> {
    chain(loss).find_map(|l| match l {
        LossConfig::R2vpo(c) => Some(c),
        _ => None,
    })
}

/// Whether the chain contains MDPO.
pub fn has_mdpo(loss: &LossConfig) -> bool {
    chain(loss).any(|l| matches!(l, LossConfig::Mdpo(_)))
}

/// Whether the chain contains DisCO (which needs binary rewards).
pub fn has_disco(loss: &LossConfig) -> bool {
    chain(loss).any(|l| matches!(l, LossConfig::Disco(_)))
}
