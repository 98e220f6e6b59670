//! AdaBelief as DeepFaceLab uses it (core/leras/optimizers/AdaBelief.py), with learning-rate
//! dropout, as a burn optimizer; and the learning-rate schedule (linear warmup + cosine with
//! optional restarts).

use burn::optim::{LearningRate, ModuleOptimizer, Optimizer, RecordState};
use burn::tensor::{Device, Distribution, Tensor};

/// AdaBelief settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaBeliefConfig {
    /// First-moment decay (DFL 0.9).
    pub beta_1: f64,
    /// Second-moment decay (DFL 0.999).
    pub beta_2: f64,
    /// Added to the denominator (DFL 1e-7).
    pub epsilon: f64,
    /// Standard AdaBelief bias correction; DFL runs without it (`false` = DFL parity).
    pub bias_correction: bool,
    /// Learning-rate dropout: each update element is kept with this probability (DFL 0.3).
    pub lr_dropout: Option<f64>,
}

impl Default for AdaBeliefConfig {
    fn default() -> Self {
        AdaBeliefConfig {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            bias_correction: false,
            lr_dropout: None,
        }
    }
}

impl AdaBeliefConfig {
    /// The optimizer for burn modules.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(AdaBelief { cfg: self.clone() })
    }
}

/// AdaBelief for one parameter tensor at a time (burn's [`Optimizer`]).
#[derive(Debug, Clone)]
pub struct AdaBelief {
    cfg: AdaBeliefConfig,
}

/// Per-parameter state: step count and both moments.
#[derive(Clone, RecordState)]
pub struct AdaBeliefState<const D: usize> {
    /// Steps taken.
    pub time: usize,
    /// First moment.
    pub m: Tensor<D>,
    /// Second ("belief") moment.
    pub s: Tensor<D>,
}

impl AdaBelief {
    /// A standalone optimizer (for tests and custom loops).
    pub fn new(cfg: AdaBeliefConfig) -> Self {
        AdaBelief { cfg }
    }
}

impl Optimizer for AdaBelief {
    type State<const D: usize> = AdaBeliefState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let c = &self.cfg;
        let (m, s, time) = match state {
            Some(st) => (st.m, st.s, st.time),
            None => (grad.zeros_like(), grad.zeros_like(), 0),
        };
        let time = time + 1;
        // m ← β1 m + (1−β1) g;  s ← β2 s + (1−β2) (g − m)²
        let m = m.mul_scalar(c.beta_1) + grad.clone().mul_scalar(1.0 - c.beta_1);
        let s = s.mul_scalar(c.beta_2)
            + (grad - m.clone())
                .powf_scalar(2.0)
                .mul_scalar(1.0 - c.beta_2);
        let update = if c.bias_correction {
            let m_hat = m.clone().div_scalar(1.0 - c.beta_1.powi(time as i32));
            let s_hat = s
                .clone()
                .add_scalar(c.epsilon)
                .div_scalar(1.0 - c.beta_2.powi(time as i32));
            m_hat.div(s_hat.sqrt().add_scalar(c.epsilon)).mul_scalar(lr)
        } else {
            m.clone()
                .div(s.clone().sqrt().add_scalar(c.epsilon))
                .mul_scalar(lr)
        };
        let update = match c.lr_dropout {
            Some(p) => {
                let mask = Tensor::<D>::random(
                    update.shape(),
                    Distribution::Bernoulli(p),
                    &update.device(),
                );
                update * mask
            }
            None => update,
        };
        (tensor - update, Some(AdaBeliefState { time, m, s }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdaBeliefState {
            time: state.time,
            m: state.m.to_device(device),
            s: state.s.to_device(device),
        }
    }
}

/// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"; faceswap offers
/// it): the update is the sign of an interpolation of momentum and gradient, so every element
/// moves by exactly the learning rate; decoupled weight decay.
#[derive(Debug, Clone, PartialEq)]
pub struct LionConfig {
    /// Interpolation for the update (0.9).
    pub beta_1: f64,
    /// Momentum decay (0.99).
    pub beta_2: f64,
    /// Decoupled weight decay (0).
    pub weight_decay: f64,
}

impl Default for LionConfig {
    fn default() -> Self {
        LionConfig {
            beta_1: 0.9,
            beta_2: 0.99,
            weight_decay: 0.0,
        }
    }
}

impl LionConfig {
    /// The optimizer for burn modules.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(Lion { cfg: self.clone() })
    }
}

/// Lion for one parameter tensor at a time.
#[derive(Debug, Clone)]
pub struct Lion {
    cfg: LionConfig,
}

/// Lion's per-parameter state: the momentum.
#[derive(Clone, RecordState)]
pub struct LionState<const D: usize> {
    /// Momentum.
    pub m: Tensor<D>,
}

impl Lion {
    /// A standalone optimizer (for tests and custom loops).
    pub fn new(cfg: LionConfig) -> Self {
        Lion { cfg }
    }
}

impl Optimizer for Lion {
    type State<const D: usize> = LionState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let c = &self.cfg;
        let m = state.map_or_else(|| grad.zeros_like(), |s| s.m);
        // update = sign(β1 m + (1−β1) g) + λ p;  m ← β2 m + (1−β2) g
        let direction =
            (m.clone().mul_scalar(c.beta_1) + grad.clone().mul_scalar(1.0 - c.beta_1)).sign();
        let update = direction + tensor.clone().mul_scalar(c.weight_decay);
        let m = m.mul_scalar(c.beta_2) + grad.mul_scalar(1.0 - c.beta_2);
        (tensor - update.mul_scalar(lr), Some(LionState { m }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        LionState {
            m: state.m.to_device(device),
        }
    }
}

/// Learning rate over steps: linear warmup from 0, then constant or cosine annealing with
/// warm restarts (cycle lengths `first_cycle · t_mulⁿ`, each from `base` down to
/// `base · min_ratio`). Faceswap++'s 10-step first cycle was a bug; cycles here default to
/// 100k steps.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    /// Peak learning rate (DFL/faceswap 5e-5).
    pub base: f64,
    /// Warmup steps (Faceswap++ 250).
    pub warmup: u64,
    /// Cosine annealing, when enabled.
    pub cosine: Option<Cosine>,
}

/// Cosine annealing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Cosine {
    /// Length of the first cycle in steps.
    pub first_cycle: u64,
    /// Each later cycle is this many times longer (1 = equal cycles).
    pub t_mul: f64,
    /// Floor as a fraction of `base`.
    pub min_ratio: f64,
}

impl Default for LrSchedule {
    fn default() -> Self {
        LrSchedule {
            base: 5e-5,
            warmup: 250,
            cosine: None,
        }
    }
}

impl Default for Cosine {
    fn default() -> Self {
        Cosine {
            first_cycle: 100_000,
            t_mul: 1.0,
            min_ratio: 0.1,
        }
    }
}

impl LrSchedule {
    /// The learning rate for optimiser step `step` (0-based).
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.base * (step + 1) as f64 / self.warmup as f64;
        }
        let Some(c) = &self.cosine else {
            return self.base;
        };
        let mut s = (step - self.warmup) as f64;
        let mut len = c.first_cycle.max(1) as f64;
        while s >= len {
            s -= len;
            len = (len * c.t_mul.max(1.0)).ceil();
        }
        let cos = 0.5 * (1.0 + (std::f64::consts::PI * s / len).cos());
        self.base * (c.min_ratio + (1.0 - c.min_ratio) * cos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn two_lion_steps_match_the_hand_computed_steps() {
        let device = Device::flex();
        let p = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, -2.0, 0.5], [3]), &device);
        let grads = [[0.2f64, -0.4, 0.0], [-0.3, -0.1, 0.05]];
        let opt = Lion::new(LionConfig {
            weight_decay: 0.01,
            ..LionConfig::default()
        });
        let g = |k: usize| {
            let v: Vec<f32> = grads[k].iter().map(|x| *x as f32).collect();
            Tensor::<1>::from_data(TensorData::new(v, [3]), &device)
        };
        let (first, state) = opt.step(1e-2, p.clone(), g(0), None);
        let (second, _) = opt.step(1e-2, first, g(1), state);
        let want: Vec<f64> = [1.0f64, -2.0, 0.5]
            .iter()
            .enumerate()
            .map(|(i, &p0)| {
                let (mut m, mut x) = (0.0f64, p0);
                for g in grads.iter().map(|gs| gs[i]) {
                    let c = 0.9 * m + 0.1 * g;
                    let sign = if c > 0.0 {
                        1.0
                    } else if c < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                    x -= 1e-2 * (sign + 0.01 * x);
                    m = 0.99 * m + 0.01 * g;
                }
                x
            })
            .collect();
        let got: Vec<f32> = second.to_data().try_to_vec::<f32>().unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn one_adabelief_step_matches_the_hand_computed_step() {
        let device = Device::flex();
        let p = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, -2.0, 0.5], [3]), &device);
        let g = Tensor::<1>::from_data(TensorData::new(vec![0.2f32, -0.4, 0.0], [3]), &device);
        for bias_correction in [false, true] {
            let opt = AdaBelief::new(AdaBeliefConfig {
                bias_correction,
                ..AdaBeliefConfig::default()
            });
            let (first, state) = opt.step(1e-3, p.clone(), g.clone(), None);
            let (second, _) = opt.step(1e-3, first.clone(), g.clone(), state);
            // By hand, step 1 and 2 with the same gradient g, for each element.
            let want: Vec<f64> = [(1.0, 0.2), (-2.0, -0.4), (0.5, 0.0)]
                .iter()
                .map(|&(p0, gi): &(f64, f64)| {
                    let (mut m, mut s, mut x) = (0.0f64, 0.0f64, p0);
                    for t in 1..=2 {
                        m = 0.9 * m + 0.1 * gi;
                        s = 0.999 * s + 0.001 * (gi - m).powi(2);
                        let u = if bias_correction {
                            let mh = m / (1.0 - 0.9f64.powi(t));
                            let sh = (s + 1e-7) / (1.0 - 0.999f64.powi(t));
                            mh / (sh.sqrt() + 1e-7)
                        } else {
                            m / (s.sqrt() + 1e-7)
                        };
                        x -= 1e-3 * u;
                    }
                    x
                })
                .collect();
            let got: Vec<f32> = second.to_data().try_to_vec::<f32>().unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (*g as f64 - w).abs() < 1e-6,
                    "bias_correction={bias_correction}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn learning_rate_dropout_keeps_about_thirty_percent() {
        // burn draws from one generator per process; keep other tests' draws out of ours.
        let _draws = crate::weights::random_draws();
        let device = Device::flex();
        let n = 100_000;
        let p = Tensor::<1>::zeros([n], &device);
        let g = Tensor::<1>::ones([n], &device);
        let opt = AdaBelief::new(AdaBeliefConfig {
            lr_dropout: Some(0.3),
            ..AdaBeliefConfig::default()
        });
        let (after, _) = opt.step(1e-3, p, g, None);
        let changed: f32 = after.abs().greater_elem(0.0).float().sum().into_scalar();
        let share = changed as f64 / n as f64;
        assert!((share - 0.3).abs() < 0.02, "kept {share}");
    }

    #[test]
    fn schedule_values_at_chosen_steps() {
        let s = LrSchedule {
            base: 1.0,
            warmup: 100,
            cosine: Some(Cosine {
                first_cycle: 1000,
                t_mul: 2.0,
                min_ratio: 0.0,
            }),
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(s.at(0), 0.01));
        assert!(close(s.at(49), 0.5));
        assert!(close(s.at(99), 1.0));
        assert!(close(s.at(100), 1.0), "cycle start");
        assert!(close(s.at(600), 0.5), "half way through the first cycle");
        assert!(close(s.at(1100), 1.0), "restart");
        assert!(close(s.at(1100 + 1000), 0.5), "second cycle is 2000 long");
        assert!(close(s.at(3100), 1.0), "third restart");
        let constant = LrSchedule::default();
        assert!(close(constant.at(10_000_000), 5e-5));
    }
}
