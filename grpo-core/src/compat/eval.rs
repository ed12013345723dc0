//! JSON evaluation of one registry function: `{"fn", "params", "inputs"}` →
//! `{"outputs": {...}}`, the engine of `grpo estimators eval`.
//!
//! Request shape:
//!
//! ```json
//! {"fn": "verl.compute_grpo_outcome_advantage",
//!  "params": {"epsilon": 1e-6},
//!  "inputs": {"token_level_rewards": [[0, 1], [0, 0]], "response_mask": [[1, 1], [1, 1]], "index": ["a", "a"]}}
//! ```
//!
//! - `fn`: an anchor name (`verl.*`, `trl.*`, see [`super::registry`]).
//! - `params`: the anchor's own parameter names; unknown names are an error,
//!   except the descriptive keys `case` and `note` (also allowed at the top level).
//! - `inputs`: verl/TRL tensor names, nested JSON arrays. `token_level_rewards`
//!   (alias `rewards`) may be `[B,T]` or `[B]`; a `[B]` reward is placed on the
//!   last valid token of its row (column 0 for an empty row). `index` (alias
//!   `uid`) holds strings or integers (compared as text). TRL's names are accepted as
//!   aliases (`per_token_logps` for `log_prob`, `completion_mask` for
//!   `response_mask`, ...). Unknown inputs are an error.
//!
//! ```
//! use grpo_core::compat::eval::eval_str;
//! let out = eval_str(
//!     r#"{"fn": "verl.compute_rloo_vectorized_outcome_advantage",
//!         "inputs": {"rewards": [1, 0, 5], "response_mask": [[1], [1], [1]], "index": ["a", "a", "b"]}}"#,
//! )
//! .unwrap();
//! // leave-one-out within group "a"; verl's vectorised RLOO gives a singleton 0
//! assert_eq!(out["outputs"]["advantages"], serde_json::json!([[1.0], [-1.0], [0.0]]));
//! ```
//!
//! Errors are [`CoreError::InvalidField`] naming the field (`fn`, `params`,
//! `inputs.<name>`); errors of the computation are mapped to the input they name.
//! Native registry names are accepted too: an advantage estimator or policy
//! loss (`fn = "grpo"`, `"ppo_clip"`, ...) gets `params` deserialised into its
//! serde-tagged config with `type = fn` (see `native_advantage` / `native_loss`
//! below for the inputs each reads), and so do aggregations, KL estimators and
//! KL controllers; filters and samplers (which need RNG streams and prompt
//! pools) are not evaluable here and return an error saying so.

use std::collections::BTreeSet;

use ndarray::Array2;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{trl, verl};
use crate::advantage::AdvantageConfig;
use crate::batch::ScoredBatch;
use crate::error::{CoreError, Result};
use crate::loss::{LossConfig, LossInputs};
use crate::registry::Kind;

/// Descriptive keys allowed (and ignored) at the top level and in `params`.
const DESCRIPTIVE: [&str; 2] = ["case", "note"];

fn field(field: impl Into<String>, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Evaluates one request given as JSON text.
pub fn eval_str(line: &str) -> Result<Value> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| field("<line>", format!("invalid JSON: {e}")))?;
    eval(&v)
}

/// Evaluates one request object; returns `{"outputs": {...}}`.
pub fn eval(request: &Value) -> Result<Value> {
    let obj = request
        .as_object()
        .ok_or_else(|| field("<line>", "expected a JSON object"))?;
    for k in obj.keys() {
        if !matches!(k.as_str(), "fn" | "params" | "inputs") && !DESCRIPTIVE.contains(&k.as_str()) {
            return Err(field(
                k.clone(),
                "unknown top-level key (expected fn, params, inputs, case, note)",
            ));
        }
    }
    let name = obj
        .get("fn")
        .ok_or_else(|| field("fn", "missing"))?
        .as_str()
        .ok_or_else(|| field("fn", "expected a string"))?;
    let params = match obj.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(field("params", "expected an object")),
    };
    let inputs = match obj.get("inputs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(field("inputs", "expected an object")),
    };
    let mut inp = Inputs {
        map: inputs,
        used: BTreeSet::new(),
    };
    let outputs = dispatch(name, params, &mut inp).map_err(|e| locate(e, &inp))?;
    inp.finish()?;
    Ok(json!({ "outputs": outputs }))
}

/// Maps a computation error to the request field it concerns.
fn locate(e: CoreError, inp: &Inputs) -> CoreError {
    let input_field = |what: &str| {
        // native batch names → the eval input names
        let what = match what {
            "token_rewards" | "reward" => "token_level_rewards",
            "baseline_reward" => "reward_baselines",
            other => other,
        };
        let key = inp
            .used
            .iter()
            .find(|k| canonical(k) == what)
            .cloned()
            .unwrap_or_else(|| what.to_string());
        format!("inputs.{key}")
    };
    match &e {
        CoreError::InvalidField { .. } => e,
        CoreError::ShapeMismatch { what, .. }
        | CoreError::Empty { what }
        | CoreError::InvalidMask { what, .. }
        | CoreError::NonFinite { what, .. } => field(input_field(what), e.to_string()),
        CoreError::NonFiniteReward { component, .. } => {
            field(input_field(component), e.to_string())
        }
        CoreError::MissingInput { what, .. } => field(format!("inputs.{what}"), e.to_string()),
        CoreError::InvalidParam { name, .. } => {
            if inp.used.iter().any(|k| canonical(k) == name.as_str()) {
                field(input_field(name), e.to_string())
            } else {
                field(format!("params.{name}"), e.to_string())
            }
        }
        CoreError::GroupTooSmall { .. } | CoreError::InvalidGroupIndex { .. } => {
            field("inputs.index", e.to_string())
        }
        _ => field("fn", e.to_string()),
    }
}

/// Canonical name of an input key (aliases folded).
fn canonical(k: &str) -> &str {
    match k {
        "rewards" => "token_level_rewards",
        "per_token_logps" | "logprob" => "log_prob",
        "old_per_token_logps" => "old_log_prob",
        "ref_per_token_logps" | "ref_logprob" => "ref_log_prob",
        "completion_mask" => "response_mask",
        "uid" => "index",
        "entropies" => "entropy",
        other => other,
    }
}

/// Deserialises `params` into `T` after dropping the descriptive keys.
fn params<T: DeserializeOwned>(mut p: Map<String, Value>) -> Result<T> {
    for k in DESCRIPTIVE {
        p.remove(k);
    }
    serde_json::from_value(Value::Object(p)).map_err(|e| field("params", e.to_string()))
}

/// The request's inputs, with the keys consumed so far.
struct Inputs {
    map: Map<String, Value>,
    used: BTreeSet<String>,
}

impl Inputs {
    /// Finds the key for canonical `name` among its aliases; errors if two are given.
    fn key(&mut self, name: &str) -> Result<Option<String>> {
        let keys: Vec<String> = self
            .map
            .keys()
            .filter(|k| canonical(k) == name)
            .cloned()
            .collect();
        match keys.len() {
            0 => Ok(None),
            1 => {
                self.used.insert(keys[0].clone());
                Ok(Some(keys[0].clone()))
            }
            _ => Err(field(
                format!("inputs.{}", keys[1]),
                format!("given twice (also as `{}`)", keys[0]),
            )),
        }
    }

    fn opt_mat(&mut self, name: &str) -> Result<Option<Array2<f64>>> {
        let Some(k) = self.key(name)? else {
            return Ok(None);
        };
        let v = &self.map[&k];
        match depth(v) {
            2 => to_mat(&k, v).map(Some),
            _ => Err(field(
                format!("inputs.{k}"),
                "expected a [B,T] array of numbers",
            )),
        }
    }

    fn mat(&mut self, name: &str) -> Result<Array2<f64>> {
        self.opt_mat(name)?
            .ok_or_else(|| field(format!("inputs.{name}"), "missing"))
    }

    /// A `[B]` or `[B,T]` input as a matrix (`[B]` becomes `[B,1]`).
    fn vec_or_mat(&mut self, name: &str) -> Result<Option<Array2<f64>>> {
        let Some(k) = self.key(name)? else {
            return Ok(None);
        };
        let v = &self.map[&k];
        match depth(v) {
            1 => {
                let x = to_vec(&k, v)?;
                let n = x.len();
                Array2::from_shape_vec((n, 1), x)
                    .map(Some)
                    .map_err(|e| field(format!("inputs.{k}"), e.to_string()))
            }
            2 => to_mat(&k, v).map(Some),
            _ => Err(field(
                format!("inputs.{k}"),
                "expected a [B] or [B,T] array of numbers",
            )),
        }
    }

    fn vector(&mut self, name: &str) -> Result<Vec<f64>> {
        let k = self
            .key(name)?
            .ok_or_else(|| field(format!("inputs.{name}"), "missing"))?;
        to_vec(&k, &self.map[&k])
    }

    fn index(&mut self) -> Result<Vec<String>> {
        let k = self
            .key("index")?
            .ok_or_else(|| field("inputs.index", "missing"))?;
        let arr = self.map[&k]
            .as_array()
            .ok_or_else(|| field("inputs.index", "expected an array of group ids"))?;
        arr.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
                _ => Err(field(
                    "inputs.index",
                    format!("element {i}: expected a string or an integer, got {v}"),
                )),
            })
            .collect()
    }

    /// `token_level_rewards`/`rewards` as `[B,T]`; a `[B]` reward goes on the last valid token.
    fn rewards(&mut self, mask: &Array2<f64>) -> Result<Array2<f64>> {
        let one_d = self.is_1d("token_level_rewards");
        let r = self
            .vec_or_mat("token_level_rewards")?
            .ok_or_else(|| field("inputs.token_level_rewards", "missing (or `rewards`)"))?;
        let (b, t) = mask.dim();
        if !one_d || r.nrows() != b {
            return Ok(r);
        }
        let mut out = Array2::zeros((b, t));
        for i in 0..b {
            let last = (0..t).rev().find(|&s| mask[[i, s]] != 0.0).unwrap_or(0);
            if t > 0 {
                out[[i, last]] = r[[i, 0]];
            }
        }
        Ok(out)
    }

    fn is_1d(&self, name: &str) -> bool {
        self.map
            .iter()
            .any(|(k, v)| canonical(k) == name && depth(v) == 1)
    }

    fn updates(&mut self) -> Result<Vec<(f64, f64)>> {
        let k = self
            .key("updates")?
            .ok_or_else(|| field("inputs.updates", "missing"))?;
        let m = to_mat(&k, &self.map[&k])?;
        if m.ncols() != 2 && m.nrows() > 0 {
            return Err(field(
                "inputs.updates",
                "expected [[current_kl, n_steps], ...]",
            ));
        }
        Ok(m.rows().into_iter().map(|r| (r[0], r[1])).collect())
    }

    /// Optional `seed` (non-negative integer, default 0) for estimators that draw random numbers.
    fn seed(&mut self) -> Result<u64> {
        match self.key("seed")? {
            None => Ok(0),
            Some(k) => self.map[&k]
                .as_u64()
                .ok_or_else(|| field("inputs.seed", "expected a non-negative integer")),
        }
    }

    /// Errors on inputs the function did not read.
    fn finish(&self) -> Result<()> {
        match self.map.keys().find(|k| !self.used.contains(*k)) {
            Some(k) => Err(field(format!("inputs.{k}"), "unknown input for this fn")),
            None => Ok(()),
        }
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.first().map_or(0, depth),
        _ => 0,
    }
}

fn num(k: &str, v: &Value, at: &str) -> Result<f64> {
    v.as_f64().ok_or_else(|| {
        field(
            format!("inputs.{k}"),
            format!("{at}: expected a number, got {v}"),
        )
    })
}

fn to_vec(k: &str, v: &Value) -> Result<Vec<f64>> {
    let a = v
        .as_array()
        .ok_or_else(|| field(format!("inputs.{k}"), "expected an array"))?;
    a.iter()
        .enumerate()
        .map(|(i, x)| num(k, x, &format!("element {i}")))
        .collect()
}

fn to_mat(k: &str, v: &Value) -> Result<Array2<f64>> {
    let rows = v
        .as_array()
        .ok_or_else(|| field(format!("inputs.{k}"), "expected an array of rows"))?;
    let mut data = Vec::new();
    let mut width = None;
    for (i, r) in rows.iter().enumerate() {
        let r = r
            .as_array()
            .ok_or_else(|| field(format!("inputs.{k}"), format!("row {i}: expected an array")))?;
        match width {
            None => width = Some(r.len()),
            Some(w) if w != r.len() => {
                return Err(field(
                    format!("inputs.{k}"),
                    format!("row {i} has {} columns, row 0 has {w}", r.len()),
                ));
            }
            _ => {}
        }
        for (j, x) in r.iter().enumerate() {
            data.push(num(k, x, &format!("row {i}, column {j}"))?);
        }
    }
    Array2::from_shape_vec((rows.len(), width.unwrap_or(0)), data)
        .map_err(|e| field(format!("inputs.{k}"), e.to_string()))
}

fn mat_json(a: &Array2<f64>) -> Value {
    Value::Array(
        a.rows()
            .into_iter()
            .map(|r| Value::Array(r.iter().map(|&x| json!(x)).collect()))
            .collect(),
    )
}

fn adv_json(o: verl::AdvantageOutput) -> Value {
    json!({ "advantages": mat_json(&o.advantages), "returns": mat_json(&o.returns) })
}

fn loss_json(o: verl::PolicyLossOutput) -> Value {
    let mut m = Map::new();
    m.insert("pg_loss".into(), json!(o.pg_loss));
    for (k, v) in [
        ("pg_clipfrac", o.pg_clipfrac),
        ("ppo_kl", o.ppo_kl),
        ("pg_clipfrac_lower", o.pg_clipfrac_lower),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    m.insert("grad_log_prob".into(), mat_json(&o.grad_log_prob));
    Value::Object(m)
}

type LossFn = fn(&verl::LossInputs<'_>, &verl::ActorParams) -> Result<verl::PolicyLossOutput>;

fn verl_loss(f: LossFn, old_name: &str, p: Map<String, Value>, inp: &mut Inputs) -> Result<Value> {
    let p: verl::ActorParams = params(p)?;
    let mask = inp.mat("response_mask")?;
    let old = inp.mat(old_name)?;
    let lp = inp.mat("log_prob")?;
    let adv = inp.mat("advantages")?;
    let isw = inp.opt_mat("rollout_is_weights")?;
    let x = verl::LossInputs {
        old_log_prob: old.view(),
        log_prob: lp.view(),
        advantages: adv.view(),
        response_mask: mask.view(),
        rollout_is_weights: isw.as_ref().map(|w| w.view()),
    };
    f(&x, &p).map(loss_json)
}

type GroupAdvFn<P> = fn(
    ndarray::ArrayView2<'_, f64>,
    ndarray::ArrayView2<'_, f64>,
    &[String],
    &P,
) -> Result<verl::AdvantageOutput>;

fn group_adv<P: DeserializeOwned>(
    f: GroupAdvFn<P>,
    p: Map<String, Value>,
    inp: &mut Inputs,
) -> Result<Value> {
    let p: P = params(p)?;
    let mask = inp.mat("response_mask")?;
    let r = inp.rewards(&mask)?;
    let index = inp.index()?;
    f(r.view(), mask.view(), &index, &p).map(adv_json)
}

fn no_params(p: Map<String, Value>) -> Result<()> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    params::<Empty>(p).map(|_| ())
}

fn dispatch(name: &str, p: Map<String, Value>, inp: &mut Inputs) -> Result<Value> {
    match name {
        "verl.compute_grpo_outcome_advantage" => {
            group_adv(verl::compute_grpo_outcome_advantage, p, inp)
        }
        "verl.compute_grpo_vectorized_outcome_advantage" => {
            group_adv(verl::compute_grpo_vectorized_outcome_advantage, p, inp)
        }
        "verl.compute_grpo_passk_outcome_advantage" => {
            group_adv(verl::compute_grpo_passk_outcome_advantage, p, inp)
        }
        "verl.compute_rloo_outcome_advantage" => {
            group_adv(verl::compute_rloo_outcome_advantage, p, inp)
        }
        "verl.compute_rloo_vectorized_outcome_advantage" => {
            group_adv(verl::compute_rloo_vectorized_outcome_advantage, p, inp)
        }
        "verl.compute_reinforce_plus_plus_baseline_outcome_advantage" => group_adv(
            verl::compute_reinforce_plus_plus_baseline_outcome_advantage,
            p,
            inp,
        ),
        "verl.compute_opo_outcome_advantage" => {
            group_adv(verl::compute_opo_outcome_advantage, p, inp)
        }
        "verl.compute_gpg_outcome_advantage" => {
            group_adv(verl::compute_gpg_outcome_advantage, p, inp)
        }
        "verl.compute_reinforce_plus_plus_outcome_advantage" => {
            let p: verl::GammaParams = params(p)?;
            let mask = inp.mat("response_mask")?;
            let r = inp.rewards(&mask)?;
            verl::compute_reinforce_plus_plus_outcome_advantage(r.view(), mask.view(), &p)
                .map(adv_json)
        }
        "verl.compute_remax_outcome_advantage" => {
            no_params(p)?;
            let mask = inp.mat("response_mask")?;
            let r = inp.rewards(&mask)?;
            let b = inp.vector("reward_baselines")?;
            verl::compute_remax_outcome_advantage(r.view(), &b, mask.view()).map(adv_json)
        }
        "verl.compute_policy_loss_vanilla" => {
            verl_loss(verl::compute_policy_loss_vanilla, "old_log_prob", p, inp)
        }
        "verl.compute_policy_loss_gspo" => {
            verl_loss(verl::compute_policy_loss_gspo, "old_log_prob", p, inp)
        }
        "verl.compute_policy_loss_sapo" => {
            verl_loss(verl::compute_policy_loss_sapo, "old_log_prob", p, inp)
        }
        "verl.compute_policy_loss_cispo" => {
            verl_loss(verl::compute_policy_loss_cispo, "old_log_prob", p, inp)
        }
        "verl.compute_policy_loss_gpg" => {
            verl_loss(verl::compute_policy_loss_gpg, "old_log_prob", p, inp)
        }
        "verl.compute_policy_loss_geo_mean" => {
            verl_loss(verl::compute_policy_loss_geo_mean, "old_log_prob", p, inp)
        }
        "verl.compute_policy_loss_kl_cov" => {
            verl_loss(verl::compute_policy_loss_kl_cov, "old_log_prob", p, inp)
        }
        "verl.compute_policy_loss_reinforce" => verl_loss(
            verl::compute_policy_loss_reinforce,
            "rollout_log_prob",
            p,
            inp,
        ),
        "verl.agg_loss" => {
            let p: verl::AggParams = params(p)?;
            let lm = inp.mat("loss_mat")?;
            let mask = match inp.opt_mat("loss_mask")? {
                Some(m) => m,
                None => inp
                    .mat("response_mask")
                    .map_err(|_| field("inputs.loss_mask", "missing"))?,
            };
            let (loss, grad) = verl::agg_loss(lm.view(), mask.view(), &p)?;
            Ok(json!({ "loss": loss, "grad_loss_mat": mat_json(&grad) }))
        }
        "verl.kl_penalty" => {
            let p: verl::KlPenaltyParams = params(p)?;
            let lp = inp.mat("log_prob")?;
            let rp = inp.mat("ref_log_prob")?;
            let mask = inp.opt_mat("response_mask")?;
            let (kl, grad) =
                verl::kl_penalty(lp.view(), rp.view(), mask.as_ref().map(|m| m.view()), &p)?;
            Ok(json!({ "kl": mat_json(&kl), "grad_log_prob_of_masked_sum": mat_json(&grad) }))
        }
        "verl.masked_whiten" => {
            let p: verl::WhitenParams = params(p)?;
            let values = inp.mat("values")?;
            let mask = match inp.opt_mat("mask")? {
                Some(m) => m,
                None => inp
                    .mat("response_mask")
                    .map_err(|_| field("inputs.mask", "missing"))?,
            };
            let w = verl::masked_whiten(values.view(), mask.view(), &p)?;
            Ok(json!({ "whitened": mat_json(&w) }))
        }
        "verl.AdaptiveKLController" => {
            let p: verl::AdaptiveKlParams = params(p)?;
            let u = inp.updates()?;
            let v = verl::adaptive_kl_controller(&u, &p)?;
            Ok(json!({ "values_after_each_update": v }))
        }
        "trl.grpo_loss" => {
            let p: trl::GrpoLossParams = params(p)?;
            let mask = inp.mat("response_mask")?;
            let lp = inp.mat("log_prob")?;
            let old = inp.opt_mat("old_log_prob")?;
            let rf = inp.opt_mat("ref_log_prob")?;
            let adv = inp
                .vec_or_mat("advantages")?
                .ok_or_else(|| field("inputs.advantages", "missing"))?;
            let ent = inp.opt_mat("entropy")?;
            let isr = inp.opt_mat("importance_sampling_ratio")?;
            let spl = inp.opt_mat("sampling_per_token_logps")?;
            let x = trl::GrpoLossInputs {
                log_prob: lp.view(),
                old_log_prob: old.as_ref().map(|a| a.view()),
                ref_log_prob: rf.as_ref().map(|a| a.view()),
                advantages: adv.view(),
                response_mask: mask.view(),
                entropy: ent.as_ref().map(|a| a.view()),
                importance_sampling_ratio: isr.as_ref().map(|a| a.view()),
                sampling_per_token_logps: spl.as_ref().map(|a| a.view()),
            };
            let o = trl::grpo_loss(&x, &p)?;
            let mut m = Map::new();
            m.insert("loss".into(), json!(o.loss));
            m.insert("policy_loss".into(), json!(o.policy_loss));
            m.insert("grad_log_prob".into(), mat_json(&o.grad_log_prob));
            m.insert("grad_entropy".into(), mat_json(&o.grad_entropy));
            for (k, v) in [
                ("kl", o.kl),
                ("clip_ratio/low_mean", o.clip_ratio_low_mean),
                ("clip_ratio/high_mean", o.clip_ratio_high_mean),
                ("clip_ratio/region_mean", o.clip_ratio_region_mean),
                ("cispo_clip_ratio", o.cispo_clip_ratio),
                ("vespo/phi_seq_mean", o.vespo_phi_seq_mean),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), json!(v));
                }
            }
            Ok(Value::Object(m))
        }
        other => match crate::registry::find(other) {
            Some(e) if e.kind == Kind::Advantage => native_advantage(e.name, p, inp),
            Some(e) if e.kind == Kind::Loss => native_loss(e.name, p, inp),
            Some(e) if e.kind == Kind::Kl => native_kl(e.name, p, inp),
            Some(e) if e.kind == Kind::Aggregation => native_agg(e.name, p, inp),
            Some(e) if e.kind == Kind::KlController => native_kl_controller(e.name, p, inp),
            Some(e) => Err(field(
                "fn",
                format!(
                    "`{}` is a native {:?} item; `eval` evaluates anchor functions, advantage estimators, policy losses, aggregations, KL estimators and KL controllers",
                    e.name, e.kind
                ),
            )),
            None => Err(field(
                "fn",
                format!("unknown function `{other}` (see `grpo estimators list`)"),
            )),
        },
    }
}

/// `params` plus `"type": name`, deserialised into a native serde-tagged config.
fn native_config<T: DeserializeOwned>(name: &str, mut p: Map<String, Value>) -> Result<T> {
    for k in DESCRIPTIVE {
        p.remove(k);
    }
    match p.get("type") {
        Some(Value::String(t)) if t == name => {}
        Some(v) => {
            return Err(field(
                "params.type",
                format!("`{v}` disagrees with fn `{name}`"),
            ));
        }
        None => {
            p.insert("type".into(), Value::String(name.into()));
        }
    }
    serde_json::from_value(Value::Object(p)).map_err(|e| field("params", e.to_string()))
}

/// Dense group numbers (first-appearance order) from text group ids.
fn dense_groups(keys: &[String]) -> Vec<usize> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    keys.iter()
        .map(|k| {
            let n = seen.len();
            *seen.entry(k.as_str()).or_insert(n)
        })
        .collect()
}

/// A native advantage estimator (`crate::advantage`): inputs `token_level_rewards`
/// (or `rewards`), `response_mask`, `index`, optional `old_log_prob`,
/// `reward_baselines`, `values`, `sum_sq_prob`, `seed` (RNG seed, default 0).
/// Outputs `advantages`, `returns`, `metrics`.
fn native_advantage(name: &str, p: Map<String, Value>, inp: &mut Inputs) -> Result<Value> {
    let cfg: AdvantageConfig = native_config(name, p)?;
    let mask = inp.mat("response_mask")?;
    let r = inp.rewards(&mask)?;
    let ids = dense_groups(&inp.index()?);
    let reward = ndarray::Array1::from(super::row_sums(&r.view()));
    let mut batch = ScoredBatch::new(mask, ids, reward)?.with_token_rewards(r)?;
    if let Some(lp) = inp.opt_mat("old_log_prob")? {
        batch = batch.with_old_log_prob(lp)?;
    }
    if let Some(s) = inp.opt_mat("sum_sq_prob")? {
        batch = batch.with_sum_sq_prob(s)?;
    }
    if let Some(v) = inp.opt_mat("values")? {
        batch = batch.with_values(v)?;
    }
    if inp.key("reward_baselines")?.is_some() {
        batch =
            batch.with_baseline_reward(ndarray::Array1::from(inp.vector("reward_baselines")?))?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(inp.seed()?);
    let out = crate::advantage::compute(&cfg, &batch, &mut rng)?;
    Ok(json!({
        "advantages": mat_json(&out.advantages),
        "returns": mat_json(&out.returns),
        "metrics": out.metrics,
    }))
}

/// A native policy loss (`crate::loss`): inputs `log_prob`, `old_log_prob` (default:
/// `log_prob`), `response_mask`, `advantages` (`[B]` broadcast over the row, or `[B,T]`),
/// optional `ref_log_prob`, `rollout_log_prob`, `entropy`, `index`, `rewards` `[B]`,
/// `scores` `[B]`, `seed`. Outputs `loss`, `grad_log_prob`, `grad_entropy` (when the
/// loss uses entropy), `metrics`.
fn native_loss(name: &str, p: Map<String, Value>, inp: &mut Inputs) -> Result<Value> {
    let cfg: LossConfig = native_config(name, p)?;
    let mask = inp.mat("response_mask")?;
    let lp = inp.mat("log_prob")?;
    let old = inp.opt_mat("old_log_prob")?.unwrap_or_else(|| lp.clone());
    let adv = inp
        .vec_or_mat("advantages")?
        .ok_or_else(|| field("inputs.advantages", "missing"))?;
    let adv = if adv.ncols() == 1 && mask.ncols() != 1 && adv.nrows() == mask.nrows() {
        Array2::from_shape_fn(mask.dim(), |(i, _)| adv[[i, 0]])
    } else {
        adv
    };
    let rf = inp.opt_mat("ref_log_prob")?;
    let ro = inp.opt_mat("rollout_log_prob")?;
    let ent = inp.opt_mat("entropy")?;
    let ids = match inp.key("index")? {
        Some(_) => Some(dense_groups(&inp.index()?)),
        None => None,
    };
    let rewards = match inp.key("token_level_rewards")? {
        Some(_) => Some(ndarray::Array1::from(inp.vector("token_level_rewards")?)),
        None => None,
    };
    let scores = match inp.key("scores")? {
        Some(_) => Some(ndarray::Array1::from(inp.vector("scores")?)),
        None => None,
    };
    let mut x = LossInputs::new(lp.view(), old.view(), mask.view(), adv.view());
    if let Some(a) = &rf {
        x = x.with_ref_log_prob(a.view());
    }
    if let Some(a) = &ro {
        x = x.with_rollout_log_prob(a.view());
    }
    if let Some(a) = &ent {
        x = x.with_entropy(a.view());
    }
    if let Some(a) = &ids {
        x = x.with_index(a);
    }
    if let Some(a) = &rewards {
        x = x.with_rewards(a.view());
    }
    if let Some(a) = &scores {
        x = x.with_scores(a.view());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(inp.seed()?);
    let out = cfg.compute(&x, &mut rng)?;
    let mut m = Map::new();
    m.insert("loss".into(), json!(out.loss));
    m.insert("grad_log_prob".into(), mat_json(&out.grad_logp));
    if let Some(g) = &out.grad_entropy {
        m.insert("grad_entropy".into(), mat_json(g));
    }
    let metrics = serde_json::to_value(&out.metrics).map_err(|e| field("fn", e.to_string()))?;
    m.insert("metrics".into(), metrics);
    Ok(Value::Object(m))
}

/// A native KL estimator (`crate::kl::KlEstimator`, no params): inputs `log_prob`,
/// `ref_log_prob`, optional `old_log_prob` (default `log_prob`; used by
/// `k3_bias_corrected`) and `response_mask`. Outputs `kl` and
/// `grad_log_prob_of_masked_sum`.
fn native_kl(name: &str, p: Map<String, Value>, inp: &mut Inputs) -> Result<Value> {
    no_params(p)?;
    let est: crate::kl::KlEstimator = serde_json::from_value(Value::String(name.into()))
        .map_err(|e| field("fn", e.to_string()))?;
    let lp = inp.mat("log_prob")?;
    let rp = inp.mat("ref_log_prob")?;
    let old = inp.opt_mat("old_log_prob")?.unwrap_or_else(|| lp.clone());
    let mask = inp
        .opt_mat("response_mask")?
        .unwrap_or_else(|| Array2::ones(lp.dim()));
    super::check_mask("response_mask", &mask.view())?;
    for (what, a) in [
        ("log_prob", &lp),
        ("ref_log_prob", &rp),
        ("old_log_prob", &old),
    ] {
        super::check_tokens(what, &a.view(), &mask.view())?;
    }
    let mut kl = Array2::zeros(lp.dim());
    let mut grad = Array2::zeros(lp.dim());
    for ((i, s), &l) in lp.indexed_iter() {
        let (v, g) = est.value_grad(l, rp[[i, s]], old[[i, s]]).ok_or_else(|| {
            field(
                "fn",
                format!("`{name}` has no log-prob formula (its value comes from the logits)"),
            )
        })?;
        kl[[i, s]] = v;
        grad[[i, s]] = g * mask[[i, s]];
    }
    Ok(json!({ "kl": mat_json(&kl), "grad_log_prob_of_masked_sum": mat_json(&grad) }))
}

/// A native aggregation (`crate::loss::Aggregation`, params as its serde config):
/// inputs `loss_mat`, `loss_mask` (or `response_mask`). Outputs `loss`, `grad_loss_mat`.
fn native_agg(name: &str, p: Map<String, Value>, inp: &mut Inputs) -> Result<Value> {
    let agg: crate::loss::Aggregation = native_config(name, p)?;
    let lm = inp.mat("loss_mat")?;
    let mask = match inp.opt_mat("loss_mask")? {
        Some(m) => m,
        None => inp
            .mat("response_mask")
            .map_err(|_| field("inputs.loss_mask", "missing"))?,
    };
    super::check_mask("loss_mask", &mask.view())?;
    super::check_tokens("loss_mat", &lm.view(), &mask.view())?;
    let w = agg.weights(mask.view())?;
    Ok(json!({ "loss": (&w * &lm).sum(), "grad_loss_mat": mat_json(&w) }))
}

/// A native KL controller (`crate::kl::KlControllerConfig`): input
/// `updates: [[current_kl, n_steps], ...]`; output `values_after_each_update`.
fn native_kl_controller(name: &str, p: Map<String, Value>, inp: &mut Inputs) -> Result<Value> {
    let cfg: crate::kl::KlControllerConfig = native_config(name, p)?;
    let mut ctl = crate::kl::KlController::new(cfg)?;
    let mut out = Vec::new();
    for (row, (kl, n)) in inp.updates()?.into_iter().enumerate() {
        if !(n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64) {
            return Err(field(
                "inputs.updates",
                format!("row {row}: n_steps must be a non-negative integer, got {n}"),
            ));
        }
        out.push(ctl.update(kl, n as u64)?);
    }
    Ok(json!({ "values_after_each_update": out }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpo_request_round_trips() {
        let out = eval_str(
            r#"{"fn":"verl.compute_grpo_outcome_advantage","case":"x","params":{"note":"n"},
                "inputs":{"rewards":[1,0],"response_mask":[[1,1],[1,0]],"index":[7,"7"]}}"#,
        )
        .unwrap();
        let a = &out["outputs"]["advantages"];
        let v = a[0][1].as_f64().unwrap();
        assert!(
            (v - 1.0 / (2f64.sqrt().recip() + 1e-6) / 2.0).abs() < 1e-9,
            "{v}"
        );
        assert_eq!(a[1][1].as_f64().unwrap(), 0.0);
    }

    #[test]
    fn unknown_param_and_input_are_named() {
        let e = eval_str(r#"{"fn":"verl.agg_loss","params":{"loss_agg_mode":"token-mean","bogus":1},"inputs":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("params") && e.contains("bogus"), "{e}");
        let e = eval_str(
            r#"{"fn":"verl.agg_loss","params":{"loss_agg_mode":"token-mean"},"inputs":{"loss_mat":[[1]],"loss_mask":[[1]],"extra":[1]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("inputs.extra"), "{e}");
    }

    #[test]
    fn ragged_matrix_is_rejected_with_row() {
        let e = eval_str(
            r#"{"fn":"verl.agg_loss","params":{"loss_agg_mode":"token-mean"},"inputs":{"loss_mat":[[1,2],[3]],"loss_mask":[[1,1],[1,1]]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("inputs.loss_mat") && e.contains("row 1"), "{e}");
    }
}
