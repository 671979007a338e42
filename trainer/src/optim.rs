//! The optimiser side of a training step: SGD with Nesterov momentum (buffers that can be
//! checkpointed by parameter name) or Adam / AdamW ([`adam`]), chosen by the run's
//! [`Training`] ([`Optimizer`]); total-norm gradient clipping; and the dynamic loss scaler used
//! for fp16 training on CUDA.
//!
//! The step order is nnU-Net's (`nnUNetTrainer.train_step` with `torch.amp.GradScaler`):
//! `scaler.scale(loss).backward()`, then [`optimizer_step`]: unscale the gradients, clip them to
//! norm 12, step unless a gradient was inf/NaN, update the scale.

use tch::{Kind, TchError, Tensor};
use thiserror::Error;

use autoseg_planner::{OptimizerKind, Training};

pub mod adam;

pub use adam::{Adam, AdamConfig};

/// What can go wrong in an optimiser step or when restoring optimiser state.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OptimError {
    /// A checkpointed state tensor names a parameter the model does not have, or is not state
    /// of this optimiser.
    #[error(
        "optimiser state '{name}' belongs to no parameter of this model and optimiser (was the \
         run started with another training.optimizer?)"
    )]
    UnknownParameter {
        /// Parameter name.
        name: String,
    },
    /// A checkpointed momentum buffer has a different shape than its parameter.
    #[error("optimiser state: momentum buffer for '{name}' has shape {found:?}, the parameter {expected:?}")]
    BufferShape {
        /// Parameter name.
        name: String,
        /// Buffer shape.
        found: Vec<i64>,
        /// Parameter shape.
        expected: Vec<i64>,
    },
    /// libtorch reported an error.
    #[error("optimiser: libtorch: {0}")]
    Torch(#[from] TchError),
}

/// SGD hyper-parameters (torch `SGD(lr, momentum, weight_decay, nesterov)`, dampening 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (set each epoch from the schedule).
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// L2 penalty, added to the gradient as `wd * p`.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl SgdConfig {
    /// nnU-Net's SGD (Nesterov) with the momentum and weight decay of `training`, at its
    /// initial learning rate.
    pub fn from_training(training: &Training) -> SgdConfig {
        SgdConfig {
            lr: training.initial_lr,
            momentum: training.momentum,
            weight_decay: training.weight_decay,
            nesterov: true,
        }
    }
}

/// One parameter and its momentum buffer (created at its first step, as torch does).
#[derive(Debug)]
struct SgdSlot {
    name: String,
    param: Tensor,
    buffer: Option<Tensor>,
}

/// torch's `SGD` on a list of named parameters. Per parameter with a gradient `g`:
/// `d = g + wd * p`; `buf = d` at the first step, else `buf = momentum * buf + d`;
/// with Nesterov `d = d + momentum * buf`, else `d = buf`; `p -= lr * d`.
#[derive(Debug)]
pub struct Sgd {
    slots: Vec<SgdSlot>,
    /// Current hyper-parameters; `config.lr` is what the schedule changes.
    pub config: SgdConfig,
}

impl Sgd {
    /// An optimiser over `params` (e.g. a var store's variables, with their names).
    pub fn new(params: Vec<(String, Tensor)>, config: SgdConfig) -> Sgd {
        let slots = params
            .into_iter()
            .map(|(name, param)| SgdSlot {
                name,
                param,
                buffer: None,
            })
            .collect();
        Sgd { slots, config }
    }

    /// The parameters, in the order given to [`Sgd::new`].
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
        for slot in &mut self.slots {
            let grad = slot.param.grad();
            if !grad.defined() {
                continue;
            }
            let mut d = grad.f_add(&slot.param.f_mul_scalar(config.weight_decay)?)?;
            if config.momentum != 0.0 {
                let buffer = match slot.buffer.take() {
                    None => d.f_detach_copy()?,
                    Some(mut buf) => {
                        let _ = buf.f_mul_scalar_(config.momentum)?;
                        let _ = buf.f_add_(&d)?;
                        buf
                    }
                };
                d = if config.nesterov {
                    d.f_add(&buffer.f_mul_scalar(config.momentum)?)?
                } else {
                    buffer.shallow_clone()
                };
                slot.buffer = Some(buffer);
            }
            let _ = slot.param.f_sub_(&d.f_mul_scalar(config.lr)?)?;
        }
        Ok(())
    }

    /// The momentum buffers that exist, by parameter name (for the optimiser checkpoint).
    pub fn momentum_buffers(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .filter_map(|s| {
                s.buffer
                    .as_ref()
                    .map(|b| (s.name.clone(), b.shallow_clone()))
            })
            .collect()
    }

    /// Restores momentum buffers saved by [`Sgd::momentum_buffers`] (copied to each
    /// parameter's device and kind); parameters not named start without one.
    ///
    /// # Errors
    /// [`OptimError::UnknownParameter`] or [`OptimError::BufferShape`] for a buffer that does not
    /// belong to this model; nothing is changed then.
    pub fn load_momentum_buffers(
        &mut self,
        buffers: &[(String, Tensor)],
    ) -> Result<(), OptimError> {
        let mut restored = Vec::with_capacity(buffers.len());
        for (name, buffer) in buffers {
            let idx = self.slots.iter().position(|s| &s.name == name);
            let idx = idx.ok_or_else(|| OptimError::UnknownParameter { name: name.clone() })?;
            let param = &self.slots[idx].param;
            if buffer.size() != param.size() {
                let (found, expected) = (buffer.size(), param.size());
                return Err(OptimError::BufferShape {
                    name: name.clone(),
                    found,
                    expected,
                });
            }
            restored.push((
                idx,
                buffer
                    .f_to_device(param.device())?
                    .f_to_kind(param.kind())?,
            ));
        }
        self.slots.iter_mut().for_each(|s| s.buffer = None);
        for (idx, buffer) in restored {
            self.slots[idx].buffer = Some(buffer);
        }
        Ok(())
    }
}

/// The optimiser of a run: [`Sgd`] or [`Adam`], as `training.optimizer` says.
#[derive(Debug)]
pub enum Optimizer {
    /// nnU-Net's SGD.
    Sgd(Sgd),
    /// Adam or AdamW.
    Adam(Adam),
}

impl Optimizer {
    /// The optimiser `training` asks for over `params`, at its initial learning rate.
    pub fn new(params: Vec<(String, Tensor)>, training: &Training) -> Optimizer {
        match training.optimizer {
            OptimizerKind::Sgd => {
                Optimizer::Sgd(Sgd::new(params, SgdConfig::from_training(training)))
            }
            OptimizerKind::Adam | OptimizerKind::Adamw => Optimizer::Adam(Adam::new(
                params,
                AdamConfig {
                    lr: training.initial_lr,
                    weight_decay: training.weight_decay,
                    decoupled: training.optimizer == OptimizerKind::Adamw,
                    amsgrad: training.amsgrad,
                },
            )),
        }
    }

    /// Sets the learning rate (the schedule, once per epoch).
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Optimizer::Sgd(sgd) => sgd.config.lr = lr,
            Optimizer::Adam(adam) => adam.config.lr = lr,
        }
    }

    /// The parameters, in the order given.
    pub fn params(&self) -> Vec<Tensor> {
        match self {
            Optimizer::Sgd(sgd) => sgd.params(),
            Optimizer::Adam(adam) => adam.params(),
        }
    }

    /// Zeroes every parameter's gradient.
    pub fn zero_grad(&mut self) {
        match self {
            Optimizer::Sgd(sgd) => sgd.zero_grad(),
            Optimizer::Adam(adam) => adam.zero_grad(),
        }
    }

    /// One update of every parameter that has a gradient.
    ///
    /// # Errors
    /// [`OptimError::Torch`] when libtorch fails.
    pub fn step(&mut self) -> Result<(), OptimError> {
        match self {
            Optimizer::Sgd(sgd) => sgd.step(),
            Optimizer::Adam(adam) => adam.step(),
        }
    }

    /// The state a checkpoint keeps, as named tensors: SGD's momentum buffers by parameter
    /// name, Adam's moments as `<parameter>#<key>`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        match self {
            Optimizer::Sgd(sgd) => sgd.momentum_buffers(),
            Optimizer::Adam(adam) => adam.state(),
        }
    }

    /// Restores what [`Optimizer::state`] saved.
    ///
    /// # Errors
    /// [`OptimError::UnknownParameter`] or [`OptimError::BufferShape`] for state that does not
    /// belong to this model and optimiser; nothing is changed then.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), OptimError> {
        match self {
            Optimizer::Sgd(sgd) => sgd.load_momentum_buffers(state),
            Optimizer::Adam(adam) => adam.load_state(state),
        }
    }
}

/// The gradients `params` have (sharing their storage), in order; a parameter without one is
/// skipped.
pub fn defined_grads(params: &[Tensor]) -> Vec<Tensor> {
    params
        .iter()
        .map(Tensor::grad)
        .filter(Tensor::defined)
        .collect()
}

/// torch `clip_grad_norm_(params, max_norm)`: the L2 norm over all gradients together; when it
/// exceeds `max_norm`, every gradient is multiplied by `max_norm / (norm + 1e-6)`. Returns the
/// norm before clipping (a scalar f32 tensor on the gradients' device; reading it syncs), or
/// `None` when no parameter has a gradient.
///
/// # Errors
/// [`OptimError::Torch`] when libtorch fails.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Result<Option<Tensor>, OptimError> {
    let _no_grad = tch::no_grad_guard();
    let grads = defined_grads(params);
    if grads.is_empty() {
        return Ok(None);
    }
    let norms = grads
        .iter()
        .map(|g| g.f_to_kind(Kind::Float)?.f_norm())
        .collect::<Result<Vec<_>, TchError>>()?;
    let total = Tensor::f_stack(&norms, 0)?.f_norm()?;
    let coef = total
        .f_add_scalar(1e-6)?
        .f_reciprocal()?
        .f_mul_scalar(max_norm)?
        .f_clamp_max(1.0)?;
    for mut grad in grads {
        let _ = grad.f_mul_(&coef.f_to_kind(grad.kind())?)?;
    }
    Ok(Some(total))
}

/// The state of a [`LossScaler`] that a checkpoint keeps (part of the checkpoint format).
pub use autoseg_network::checkpoint::LossScalerState;

/// torch's `GradScaler` with its defaults: the loss is multiplied by `scale` (initially 2^16)
/// before backward; gradients are divided by it before clipping; a step whose gradients hold
/// inf/NaN is skipped and halves the scale; 2000 good steps in a row double it.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    enabled: bool,
    state: LossScalerState,
    growth_factor: f64,
    backoff_factor: f64,
    growth_interval: u32,
}

impl LossScaler {
    /// The scaler nnU-Net uses with fp16 autocast on CUDA (`GradScaler()` defaults).
    pub fn nnunet_default() -> LossScaler {
        LossScaler {
            enabled: true,
            state: LossScalerState {
                scale: 65_536.0,
                growth_tracker: 0,
            },
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }

    /// A scaler that does nothing (fp32 training, as nnU-Net on CPU): scale 1, no inf checks,
    /// every step taken.
    pub fn disabled() -> LossScaler {
        LossScaler {
            enabled: false,
            ..LossScaler::nnunet_default()
        }
    }

    /// Whether scaling is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Current state, for the checkpoint.
    pub fn state(&self) -> LossScalerState {
        self.state
    }

    /// Restores a checkpointed state.
    pub fn set_state(&mut self, state: LossScalerState) {
        self.state = state;
    }

    /// `loss * scale` (the loss itself when disabled).
    ///
    /// # Errors
    /// [`OptimError::Torch`] when libtorch fails.
    pub fn scale(&self, loss: &Tensor) -> Result<Tensor, OptimError> {
        if !self.enabled {
            return Ok(loss.shallow_clone());
        }
        Ok(loss.f_mul_scalar(self.state.scale)?)
    }

    /// Divides every gradient by the scale and reports whether any gradient holds inf/NaN
    /// (one device sync). Disabled: does nothing and reports `false`.
    ///
    /// # Errors
    /// [`OptimError::Torch`] when libtorch fails.
    pub fn unscale(&self, params: &[Tensor]) -> Result<bool, OptimError> {
        if !self.enabled {
            return Ok(false);
        }
        let _no_grad = tch::no_grad_guard();
        let inv_scale = 1.0 / self.state.scale;
        let mut non_finite = Vec::new();
        for param in params {
            let mut grad = param.grad();
            if !grad.defined() {
                continue;
            }
            let _ = grad.f_mul_scalar_(inv_scale)?;
            non_finite.push(grad.f_isfinite()?.f_all()?.f_logical_not()?);
        }
        if non_finite.is_empty() {
            return Ok(false);
        }
        let found = Tensor::f_stack(&non_finite, 0)?.f_any()?;
        Ok(found.f_int64_value(&[])? != 0)
    }

    /// Adjusts the scale after a step (torch `_amp_update_scale_`): inf/NaN found -> scale times
    /// 0.5 and the tracker reset; otherwise the tracker grows, and at 2000 the scale doubles
    /// (if still finite) and the tracker resets. Disabled: nothing.
    pub fn update(&mut self, found_inf: bool) {
        if !self.enabled {
            return;
        }
        let state = &mut self.state;
        if found_inf {
            state.scale *= self.backoff_factor;
            state.growth_tracker = 0;
            return;
        }
        state.growth_tracker += 1;
        if state.growth_tracker == self.growth_interval {
            let grown = state.scale * self.growth_factor;
            if grown.is_finite() {
                state.scale = grown;
            }
            state.growth_tracker = 0;
        }
    }
}

/// What [`optimizer_step`] did.
#[derive(Debug)]
pub struct StepOutcome {
    /// Whether the parameters were updated (false when a gradient was inf/NaN).
    pub stepped: bool,
    /// Total gradient norm after unscaling, before clipping (`None` without gradients).
    pub grad_norm: Option<Tensor>,
}

/// The rest of nnU-Net's `train_step` after `backward`: unscale, clip to `max_grad_norm`, step
/// unless a gradient was inf/NaN, update the scaler. Gradients are left for the caller to zero.
///
/// # Errors
/// [`OptimError::Torch`] when libtorch fails.
pub fn optimizer_step(
    optimizer: &mut Optimizer,
    scaler: &mut LossScaler,
    max_grad_norm: f64,
) -> Result<StepOutcome, OptimError> {
    let params = optimizer.params();
    let found_inf = scaler.unscale(&params)?;
    let grad_norm = clip_grad_norm(&params, max_grad_norm)?;
    if !found_inf {
        optimizer.step()?;
    }
    scaler.update(found_inf);
    Ok(StepOutcome {
        stepped: !found_inf,
        grad_norm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn param(values: &[f64]) -> Tensor {
        Tensor::from_slice(values).set_requires_grad(true)
    }

    /// Gives `params[i]` the gradient `grads[i]` (through `sum(p * g)`), after zeroing.
    fn set_grads(params: &[Tensor], grads: &[&[f64]]) {
        let loss = params
            .iter()
            .zip(grads)
            .map(|(p, g)| (p * Tensor::from_slice(g).to_kind(p.kind())).sum(p.kind()))
            .reduce(|a, b| a + b)
            .unwrap();
        loss.backward();
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap()
    }

    fn nnunet_sgd(params: &[Tensor]) -> Sgd {
        let named = params
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("p{i}"), p.shallow_clone()));
        Sgd::new(
            named.collect(),
            SgdConfig::from_training(&Training::nnunet_default()),
        )
    }

    #[test]
    fn the_optimizer_and_its_values_come_from_the_training_settings() {
        let p = || vec![("p".to_string(), param(&[1.0]))];
        let sgd = Training {
            momentum: 0.9,
            weight_decay: 1e-4,
            initial_lr: 0.5,
            ..Training::nnunet_default()
        };
        match Optimizer::new(p(), &sgd) {
            Optimizer::Sgd(s) => assert_eq!(
                s.config,
                SgdConfig {
                    lr: 0.5,
                    momentum: 0.9,
                    weight_decay: 1e-4,
                    nesterov: true
                }
            ),
            other => panic!("{other:?}"),
        }
        for (optimizer, decoupled) in [(OptimizerKind::Adam, false), (OptimizerKind::Adamw, true)] {
            let adam = Training {
                optimizer,
                amsgrad: true,
                ..sgd.clone()
            };
            match Optimizer::new(p(), &adam) {
                Optimizer::Adam(a) => assert_eq!(
                    a.config,
                    AdamConfig {
                        lr: 0.5,
                        weight_decay: 1e-4,
                        decoupled,
                        amsgrad: true
                    }
                ),
                other => panic!("{other:?}"),
            }
        }
        let mut o = Optimizer::new(p(), &sgd);
        o.set_lr(0.25);
        assert!(matches!(o, Optimizer::Sgd(s) if s.config.lr == 0.25));
    }

    #[test]
    fn sgd_matches_torch_nesterov_with_weight_decay() {
        // torch: p = Parameter([1., -2.], float64); SGD([p], lr=0.01, momentum=0.99,
        //   weight_decay=3e-5, nesterov=True); grads [.5,.1], [-.3,.2], [.25,-.4] ->
        //   [0.990049403, -2.001988806], [0.9911180179105064, -2.006947122752683],
        //   [0.9842306490191237, -2.001915252781082]
        let p = param(&[1.0, -2.0]);
        let mut sgd = nnunet_sgd(std::slice::from_ref(&p));
        let grads: [&[f64]; 3] = [&[0.5, 0.1], &[-0.3, 0.2], &[0.25, -0.4]];
        let expected = [
            [0.990_049_403, -2.001_988_806],
            [0.991_118_017_910_506_4, -2.006_947_122_752_683],
            [0.984_230_649_019_123_7, -2.001_915_252_781_082],
        ];
        for (grad, want) in grads.iter().zip(expected) {
            sgd.zero_grad();
            set_grads(std::slice::from_ref(&p), &[grad]);
            sgd.step().unwrap();
            let got = values(&p);
            assert!(
                got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn gradients_are_clipped_to_the_total_norm() {
        // torch: a.grad = [3, 4], b.grad = [12, 0, 0]; clip_grad_norm_([a, b], 12)
        //   -> 13.0, a.grad [2.7692306, 3.6923075], b.grad [11.0769224, 0, 0]
        let params = [param(&[0.0, 0.0]), param(&[0.0, 0.0, 0.0])];
        set_grads(&params, &[&[3.0, 4.0], &[12.0, 0.0, 0.0]]);
        let norm = clip_grad_norm(&params, 12.0).unwrap().unwrap();
        assert!((norm.double_value(&[]) - 13.0).abs() < 1e-6);
        let a = values(&params[0].grad());
        assert!(
            (a[0] - 2.769_230_604).abs() < 1e-6 && (a[1] - 3.692_307_472).abs() < 1e-6,
            "{a:?}"
        );
        // Below the limit nothing changes.
        let small = [param(&[0.0])];
        set_grads(&small, &[&[5.0]]);
        clip_grad_norm(&small, 12.0).unwrap();
        assert_eq!(values(&small[0].grad()), [5.0]);
        assert!(clip_grad_norm(&[param(&[1.0])], 12.0).unwrap().is_none());
    }

    #[test]
    fn an_inf_gradient_skips_the_step_and_halves_the_scale() {
        let p = param(&[1.0, 2.0]);
        let mut sgd = Optimizer::Sgd(nnunet_sgd(std::slice::from_ref(&p)));
        let mut scaler = LossScaler::nnunet_default();
        set_grads(std::slice::from_ref(&p), &[&[f64::INFINITY, 1.0]]);
        let outcome = optimizer_step(&mut sgd, &mut scaler, 12.0).unwrap();
        assert!(!outcome.stepped);
        assert_eq!(values(&p), [1.0, 2.0]);
        assert_eq!(
            scaler.state(),
            LossScalerState {
                scale: 32_768.0,
                growth_tracker: 0
            }
        );
        assert!(sgd.state().is_empty());
    }

    #[test]
    fn good_steps_unscale_gradients_and_grow_the_scale_every_2000() {
        let p = param(&[1.0]);
        let mut sgd = Optimizer::Sgd(nnunet_sgd(std::slice::from_ref(&p)));
        let mut scaler = LossScaler::nnunet_default();
        scaler.set_state(LossScalerState {
            scale: 1024.0,
            growth_tracker: 1998,
        });
        // A scaled loss of 1024 * 0.5 * p gives gradient 512, unscaled to 0.5.
        let loss = (&p * 0.5).sum(Kind::Double);
        scaler.scale(&loss).unwrap().backward();
        let outcome = optimizer_step(&mut sgd, &mut scaler, 12.0).unwrap();
        assert!(outcome.stepped);
        assert_eq!(values(&p.grad()), [0.5]);
        assert_eq!(
            scaler.state(),
            LossScalerState {
                scale: 1024.0,
                growth_tracker: 1999
            }
        );
        // By hand: d = 0.5 + 3e-5; buf = d; p = 1 - 0.01 * (d + 0.99 d).
        let d = 0.5 + 3e-5;
        assert!((values(&p)[0] - (1.0 - 0.01 * 1.99 * d)).abs() < 1e-12);
        scaler.update(false);
        assert_eq!(
            scaler.state(),
            LossScalerState {
                scale: 2048.0,
                growth_tracker: 0
            }
        );
    }

    #[test]
    fn a_disabled_scaler_changes_nothing() {
        let mut scaler = LossScaler::disabled();
        let p = param(&[3.0]);
        set_grads(std::slice::from_ref(&p), &[&[f64::NAN]]);
        assert!(!scaler.unscale(std::slice::from_ref(&p)).unwrap());
        let loss = Tensor::from(2.0f64);
        assert_eq!(scaler.scale(&loss).unwrap().double_value(&[]), 2.0);
        scaler.update(true);
        assert_eq!(scaler.state().scale, 65_536.0);
        assert!(!scaler.is_enabled());
    }

    #[test]
    fn momentum_buffers_round_trip_by_name() {
        let p = param(&[1.0, -2.0]);
        let mut sgd = nnunet_sgd(std::slice::from_ref(&p));
        set_grads(std::slice::from_ref(&p), &[&[0.5, 0.1]]);
        sgd.step().unwrap();
        let saved = sgd.momentum_buffers();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].0, "p0");
        assert!((values(&saved[0].1)[0] - (0.5 + 3e-5)).abs() < 1e-12);

        let q = param(&[0.0, 0.0]);
        let mut fresh = nnunet_sgd(std::slice::from_ref(&q));
        fresh.load_momentum_buffers(&saved).unwrap();
        assert!(fresh.momentum_buffers()[0].1.equal(&saved[0].1));
        let ghost = [(
            "ghost".to_string(),
            Tensor::zeros([2], (Kind::Double, Device::Cpu)),
        )];
        assert!(matches!(
            fresh.load_momentum_buffers(&ghost),
            Err(OptimError::UnknownParameter { name }) if name == "ghost"
        ));
        let wrong = [(
            "p0".to_string(),
            Tensor::zeros([3], (Kind::Double, Device::Cpu)),
        )];
        assert!(matches!(
            fresh.load_momentum_buffers(&wrong),
            Err(OptimError::BufferShape { .. })
        ));
    }
}
