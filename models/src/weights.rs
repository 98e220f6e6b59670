//! Weights and random draws shared by every burn net: one lock over burn's process-wide
//! generator, step seeds, loading saved weights, and reading weights back for comparisons.

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Tensor};

/// burn's CPU backend keeps one random generator per process; seeding and drawing happen under
/// this lock so concurrent trainers (jobs, tests) never take each other's draws.
static RANDOM_DRAWS: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn random_draws() -> std::sync::MutexGuard<'static, ()> {
    RANDOM_DRAWS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A network built by `build` with the weights `weights` (burnpack bytes a trainer saved).
/// Building draws throwaway initial weights from the process's one generator, so it happens
/// under the trainers' lock: loading a model never shifts a concurrent training run's draws.
pub(crate) fn load_weights<M: Module>(
    build: impl FnOnce() -> M,
    weights: Vec<u8>,
) -> Result<M, crate::saehd::LoadError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights))
        .map_err(|e| crate::saehd::LoadError(e.to_string()))?;
    let _draws = random_draws();
    build()
        .try_load_record(record)
        .map_err(|e| crate::saehd::LoadError(e.to_string()))
}

/// A seed for step `step` of a run seeded `seed` (splitmix64 of both), so each step's random
/// draws depend only on the run and the step.
pub fn step_seed(seed: u64, step: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Draws every lazily initialised parameter of `module` now. burn draws parameters on first
/// use; drawing them right after seeding (under [`random_draws`]) makes the initial weights
/// depend on the seed alone, whatever other threads draw later.
pub fn materialise<M: Module>(module: &M) {
    struct Materialise;
    impl ModuleVisitor for Materialise {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Materialise);
}

/// Every weight value of `module` in its visiting order: compares two models' weights (their
/// saved records also carry parameter ids, which differ between separately built models).
pub fn weight_values<M: Module>(module: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Ok(v) = param.val().to_data().try_to_vec::<f32>() {
                self.0.extend(v);
            }
        }
    }
    let mut c = Collect(Vec::new());
    module.visit(&mut c);
    c.0
}
