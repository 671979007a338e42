//! torch's `Adam` and `AdamW` (single-tensor implementation, `betas = (0.9, 0.999)`,
//! `eps = 1e-8`, optionally AMSGrad), over named parameters whose state a checkpoint keeps.
//!
//! nnU-Net: `nnUNetTrainerVanillaAdam` (`Adam(lr, weight_decay)`) and `nnUNetTrainerAdam`
//! (`AdamW(lr, weight_decay, amsgrad=True)`).

use tch::{Kind, Tensor};

use super::OptimError;

/// torch's default `betas`.
const BETAS: (f64, f64) = (0.9, 0.999);
/// torch's default `eps`.
const EPS: f64 = 1e-8;

/// The state names a checkpoint stores per parameter, after `<parameter>#`.
const STATE_KEYS: [&str; 4] = ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

/// Adam's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (set each epoch from the schedule).
    pub lr: f64,
    /// Weight decay: added to the gradient (`Adam`) or applied to the weights (`AdamW`).
    pub weight_decay: f64,
    /// Decoupled weight decay: `AdamW`.
    pub decoupled: bool,
    /// The AMSGrad variant: the running maximum of the second moment.
    pub amsgrad: bool,
}

/// One parameter and its state (created at its first step, as torch does).
#[derive(Debug)]
struct AdamSlot {
    name: String,
    param: Tensor,
    step: u64,
    /// `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` with AMSGrad.
    moments: Option<[Tensor; 3]>,
}

/// torch's `Adam` / `AdamW`. Per parameter with a gradient `g`, at step `t`:
/// `AdamW: p *= 1 − lr·wd`; `Adam: g += wd·p`; `m = β1 m + (1 − β1) g`;
/// `v = β2 v + (1 − β2) g²`; AMSGrad `v̂ = max(v̂, v)` (else `v̂ = v`);
/// `p −= lr / (1 − β1^t) · m / (sqrt(v̂) / sqrt(1 − β2^t) + eps)`.
#[derive(Debug)]
pub struct Adam {
    slots: Vec<AdamSlot>,
    /// Current hyper-parameters; `config.lr` is what the schedule changes.
    pub config: AdamConfig,
}

impl Adam {
    /// An optimiser over `params`.
    pub fn new(params: Vec<(String, Tensor)>, config: AdamConfig) -> Adam {
        let slots = params
            .into_iter()
            .map(|(name, param)| AdamSlot {
                name,
                param,
                step: 0,
                moments: None,
            })
            .collect();
        Adam { slots, config }
    }

    /// The parameters, in the order given to [`Adam::new`].
    pub fn params(&self) -> Vec<Tensor> {
        self.slots.iter().map(|s| s.param.shallow_clone()).collect()
    }

    /// Zeroes every parameter's gradient.
    pub fn zero_grad(&mut self) {
        self.slots.iter_mut().for_each(|s| s.param.zero_grad());
    }

    /// One update of every parameter that has a gradient.
    ///
    /// # Errors
    /// [`OptimError::Torch`] when libtorch fails.
    pub fn step(&mut self) -> Result<(), OptimError> {
        let _no_grad = tch::no_grad_guard();
        let config = self.config;
        let (beta1, beta2) = BETAS;
        for slot in &mut self.slots {
            let grad = slot.param.grad();
            if !grad.defined() {
                continue;
            }
            let mut grad = grad.shallow_clone();
            if config.decoupled {
                let _ = slot
                    .param
                    .f_mul_scalar_(1.0 - config.lr * config.weight_decay)?;
            } else if config.weight_decay != 0.0 {
                grad = grad.f_add(&slot.param.f_mul_scalar(config.weight_decay)?)?;
            }
            let [exp_avg, exp_avg_sq, max_sq] = match &mut slot.moments {
                Some(moments) => moments,
                None => {
                    let zeros = || slot.param.f_zeros_like();
                    slot.moments.insert([zeros()?, zeros()?, zeros()?])
                }
            };
            slot.step += 1;
            let _ = exp_avg.f_lerp_(&grad, 1.0 - beta1)?;
            let _ = exp_avg_sq.f_mul_scalar_(beta2)?;
            let _ = exp_avg_sq.f_addcmul_(&grad.f_mul_scalar(1.0 - beta2)?, &grad)?;
            let t = slot.step as i32;
            let bias_correction1 = 1.0 - beta1.powi(t);
            let bias_correction2_sqrt = (1.0 - beta2.powi(t)).sqrt();
            let second = if config.amsgrad {
                max_sq.f_copy_(&max_sq.f_maximum(exp_avg_sq)?)?;
                &*max_sq
            } else {
                &*exp_avg_sq
            };
            let denom = second
                .f_sqrt()?
                .f_div_scalar(bias_correction2_sqrt)?
                .f_add_scalar(EPS)?;
            let step_size = config.lr / bias_correction1;
            let update = exp_avg.f_div(&denom)?.f_mul_scalar(step_size)?;
            let _ = slot.param.f_sub_(&update)?;
        }
        Ok(())
    }

    /// The state that exists, as named tensors `<parameter>#step` (f64, one element),
    /// `#exp_avg`, `#exp_avg_sq` and `#max_exp_avg_sq`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut named = Vec::new();
        for slot in &self.slots {
            let Some(moments) = &slot.moments else {
                continue;
            };
            let step = Tensor::from_slice(&[slot.step as f64]);
            let tensors = std::iter::once(step).chain(moments.iter().map(Tensor::shallow_clone));
            for (key, tensor) in STATE_KEYS.iter().zip(tensors) {
                named.push((format!("{}#{key}", slot.name), tensor));
            }
        }
        named
    }

    /// Restores state saved by [`Adam::state`]; parameters not named start fresh.
    ///
    /// # Errors
    /// [`OptimError::UnknownParameter`] for state of a parameter this model does not have or
    /// that is not Adam's (e.g. SGD momentum from a run started with another optimiser),
    /// [`OptimError::BufferShape`] for a moment of the wrong shape; nothing is changed then.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), OptimError> {
        let mut restored: Vec<(usize, u64, Vec<Option<Tensor>>)> = Vec::new();
        for (full, tensor) in state {
            let unknown = || OptimError::UnknownParameter { name: full.clone() };
            let (name, key) = full.rsplit_once('#').ok_or_else(unknown)?;
            let key_idx = STATE_KEYS
                .iter()
                .position(|k| *k == key)
                .ok_or_else(unknown)?;
            let idx = self
                .slots
                .iter()
                .position(|s| s.name == name)
                .ok_or_else(unknown)?;
            let entry = match restored.iter().position(|(i, _, _)| *i == idx) {
                Some(pos) => &mut restored[pos],
                None => {
                    restored.push((idx, 0, vec![None, None, None]));
                    restored.last_mut().expect("just pushed")
                }
            };
            let param = &self.slots[idx].param;
            if key_idx == 0 {
                entry.1 = tensor.f_to_kind(Kind::Double)?.f_double_value(&[0])? as u64;
                continue;
            }
            if tensor.size() != param.size() {
                return Err(OptimError::BufferShape {
                    name: full.clone(),
                    found: tensor.size(),
                    expected: param.size(),
                });
            }
            entry.2[key_idx - 1] = Some(
                tensor
                    .f_to_device(param.device())?
                    .f_to_kind(param.kind())?,
            );
        }
        self.slots.iter_mut().for_each(|s| {
            s.step = 0;
            s.moments = None;
        });
        for (idx, step, moments) in restored {
            let slot = &mut self.slots[idx];
            let mut moments = moments.into_iter();
            let mut next = || -> Result<Tensor, OptimError> {
                match moments.next().flatten() {
                    Some(t) => Ok(t),
                    None => Ok(slot.param.f_zeros_like()?),
                }
            };
            let restored = [next()?, next()?, next()?];
            slot.moments = Some(restored);
            slot.step = step;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(values: &[f64]) -> Tensor {
        Tensor::from_slice(values).set_requires_grad(true)
    }

    fn set_grad(p: &Tensor, grad: &[f64]) {
        p.shallow_clone().zero_grad();
        (p * Tensor::from_slice(grad)).sum(Kind::Double).backward();
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap()
    }

    /// Three steps with the gradients of `GRADS` from `[1, -2]` at lr 1e-2, wd 3e-5.
    fn three_steps(decoupled: bool, amsgrad: bool) -> Vec<Vec<f64>> {
        let p = param(&[1.0, -2.0]);
        let mut adam = Adam::new(
            vec![("p".into(), p.shallow_clone())],
            AdamConfig {
                lr: 1e-2,
                weight_decay: 3e-5,
                decoupled,
                amsgrad,
            },
        );
        GRADS
            .iter()
            .map(|g| {
                set_grad(&p, g);
                adam.step().unwrap();
                values(&p)
            })
            .collect()
    }

    const GRADS: [[f64; 2]; 3] = [[0.5, 0.1], [-0.3, 0.2], [0.25, -0.4]];

    fn assert_close(got: &[Vec<f64>], want: &[[f64; 2]]) {
        for (g, w) in got.iter().zip(want) {
            for (a, b) in g.iter().zip(w) {
                assert!((a - b).abs() < 1e-12, "{got:?} vs {want:?}");
            }
        }
    }

    // Golden values: torch 2.11, float64 parameter [1., -2.], the gradients of GRADS set by hand
    // before each step (scripts/golden_training_variants.py).
    #[test]
    fn adam_matches_torch() {
        assert_close(
            &three_steps(false, false),
            &[
                [0.990_000_000_199_988, -2.009_999_998_999_399_7],
                [0.988_084_330_290_024_6, -2.019_651_500_091_192],
                [0.984_204_196_013_913_2, -2.017_711_333_999_532_7],
            ],
        );
    }

    #[test]
    fn adamw_with_amsgrad_matches_torch() {
        assert_close(
            &three_steps(true, true),
            &[
                [0.989_999_700_2, -2.009_999_399_000_000_2],
                [0.988_084_422_894_267_6, -2.019_650_615_648_055_6],
                [0.984_204_674_943_970_3, -2.017_712_065_276_025_4],
            ],
        );
    }

    #[test]
    fn state_round_trips_and_foreign_state_is_refused() {
        let p = param(&[1.0, -2.0]);
        let config = AdamConfig {
            lr: 1e-2,
            weight_decay: 0.0,
            decoupled: true,
            amsgrad: true,
        };
        let mut adam = Adam::new(vec![("p".into(), p.shallow_clone())], config);
        set_grad(&p, &GRADS[0]);
        adam.step().unwrap();
        let saved = adam.state();
        assert_eq!(saved.len(), 4);
        let mut other = Adam::new(vec![("p".into(), p.shallow_clone())], config);
        other.load_state(&saved).unwrap();
        assert_eq!(other.slots[0].step, 1);
        assert!(other.slots[0].moments.as_ref().unwrap()[0].equal(&saved[1].1));
        // SGD momentum (a bare parameter name) is not Adam state.
        let err = other
            .load_state(&[("p".into(), Tensor::from_slice(&[0.0, 0.0]))])
            .unwrap_err();
        assert!(err.to_string().contains("'p'"), "{err}");
        assert_eq!(other.slots[0].step, 1, "a refused state changes nothing");
    }
}
