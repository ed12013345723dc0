//! Loss chains: modifiers and additive terms wrap a `base` loss (`rollout_correction` over
//! `kl_penalty` over `ppo_clip`, ...); these helpers reach every loss of a chain, for the
//! per-step schedules (MDPO's `t_k`, R²VPO's η) and their validation.

use grpo_core::loss::LossConfig;

/// Applies `f` to `loss` and every loss it wraps (`base` of modifiers and terms).
pub fn set_in_chain(loss: &mut LossConfig, f: &mut dyn FnMut(&mut LossConfig)) {
    f(loss);
    if let Some(base) = base_mut(loss) {
        set_in_chain(base, f);
    }
}

/// Visits `loss` and every loss it wraps.
pub fn visit_chain(loss: &LossConfig, f: &mut dyn FnMut(&LossConfig)) {
    f(loss);
    if let Some(base) = base_ref(loss) {
        visit_chain(base, f);
    }
}

fn base_mut(loss: &mut LossConfig) -> Option<&mut LossConfig> {
    match loss {
        LossConfig::RolloutCorrection(c) => Some(&mut c.base),
        LossConfig::OffPolicyMask(c) => Some(&mut c.base),
        LossConfig::TopEntropyMask(c) => Some(&mut c.base),
        LossConfig::CapoMask(c) => Some(&mut c.base),
        LossConfig::KlPenalty(c) => Some(&mut c.base),
        LossConfig::EntropyBonus(c) => Some(&mut c.base),
        LossConfig::Llds(c) => Some(&mut c.base),
        _ => None,
    }
}

fn base_ref(loss: &LossConfig) -> Option<&LossConfig> {
    match loss {
        LossConfig::RolloutCorrection(c) => Some(&c.base),
        LossConfig::OffPolicyMask(c) => Some(&c.base),
        LossConfig::TopEntropyMask(c) => Some(&c.base),
        LossConfig::CapoMask(c) => Some(&c.base),
        LossConfig::KlPenalty(c) => Some(&c.base),
        LossConfig::EntropyBonus(c) => Some(&c.base),
        LossConfig::Llds(c) => Some(&c.base),
        _ => None,
    }
}

/// The R²VPO config in the loss chain, if any.
pub fn r2vpo_delta_v(loss: &LossConfig) -> Option<f64> {
    let mut out = None;
    visit_chain(loss, &mut |l| {
        if let LossConfig::R2vpo(c) = l {
            out = Some(c.delta_v);
        }
    });
    out
}

/// The initial η of the R²VPO config in the loss chain, if any.
pub fn r2vpo_eta(loss: &LossConfig) -> Option<f64> {
    let mut out = None;
    visit_chain(loss, &mut |l| {
        if let LossConfig::R2vpo(c) = l {
            out = Some(c.eta);
        }
    });
    out
}

/// Whether the loss chain contains MDPO.
pub fn has_mdpo(loss: &LossConfig) -> bool {
    let mut out = false;
    visit_chain(loss, &mut |l| out |= matches!(l, LossConfig::Mdpo(_)));
    out
}

/// Whether the loss chain contains DisCO (which needs binary rewards).
pub fn has_disco(loss: &LossConfig) -> bool {
    let mut out = false;
    visit_chain(loss, &mut |l| out |= matches!(l, LossConfig::Disco(_)));
    out
}
