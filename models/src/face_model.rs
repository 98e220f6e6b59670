//! The swap model a trainer or merger runs: DFL's SAEHD or faceswap's Phaze-A, behind one type.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::phaze_a::{PhazeA, PhazeAOptions};
use crate::saehd::{FaceOutput, LoadError, ModelPart, Saehd, SaehdOptions, SwapOutput};

/// The architecture and sizes of a swap model.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelOptions {
    /// DFL SAEHD (DF or LIAE with u/d/t).
    Saehd(SaehdOptions),
    /// faceswap Phaze-A.
    PhazeA(PhazeAOptions),
}

impl From<&SaehdOptions> for ModelOptions {
    fn from(o: &SaehdOptions) -> Self {
        ModelOptions::Saehd(o.clone())
    }
}

impl From<&PhazeAOptions> for ModelOptions {
    fn from(o: &PhazeAOptions) -> Self {
        ModelOptions::PhazeA(o.clone())
    }
}

impl From<&ModelOptions> for ModelOptions {
    fn from(o: &ModelOptions) -> Self {
        o.clone()
    }
}

impl ModelOptions {
    /// Output face size in pixels.
    pub fn resolution(&self) -> usize {
        match self {
            ModelOptions::Saehd(o) => o.resolution,
            ModelOptions::PhazeA(o) => o.output_size,
        }
    }

    /// Builds the networks with fresh weights on `device`.
    pub fn init(&self, device: &Device) -> FaceModel {
        match self {
            ModelOptions::Saehd(o) => FaceModel::Saehd(o.init(device)),
            ModelOptions::PhazeA(o) => FaceModel::PhazeA(o.init(device)),
        }
    }
}

/// A swap model's networks.
// One per trainer or merger, built once; burn's Module derive does not take boxed fields.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum FaceModel {
    /// DFL SAEHD.
    Saehd(Saehd),
    /// faceswap Phaze-A.
    PhazeA(PhazeA),
}

impl FaceModel {
    /// Builds the networks of `opts` on `device` and loads `weights` (the burnpack bytes a
    /// trainer's `save_state` wrote).
    pub fn load(
        opts: &ModelOptions,
        device: &Device,
        weights: Vec<u8>,
    ) -> Result<FaceModel, LoadError> {
        crate::weights::load_weights(|| opts.init(device), weights)
    }

    /// Reconstructs both sides as a training step needs: `(image, mask)` of A and of B.
    pub fn forward_train(
        &self,
        a: Tensor<4>,
        b: Tensor<4>,
    ) -> ((Tensor<4>, Tensor<4>), (Tensor<4>, Tensor<4>)) {
        match self {
            FaceModel::Saehd(m) => m.forward_train(a, b),
            FaceModel::PhazeA(m) => m.forward_train(a, b),
        }
    }

    /// Both reconstructions and both swaps.
    pub fn forward(&self, a: Tensor<4>, b: Tensor<4>) -> FaceOutput {
        match self {
            FaceModel::Saehd(m) => m.forward(a, b),
            FaceModel::PhazeA(m) => m.forward(a, b),
        }
    }

    /// Swaps destination (B) faces to A's identity, with both learned masks.
    pub fn swap(&self, b: Tensor<4>) -> SwapOutput {
        match self {
            FaceModel::Saehd(m) => m.swap(b),
            FaceModel::PhazeA(m) => m.swap(b),
        }
    }

    /// The top-level fields of this model that make up `part`.
    fn part_fields(&self, part: ModelPart) -> &'static [&'static str] {
        match (self, part) {
            (_, ModelPart::Encoder) => &["encoder"],
            (_, ModelPart::DecoderA) => &["decoder_a"],
            (_, ModelPart::DecoderB) => &["decoder_b"],
            (FaceModel::Saehd(_), ModelPart::Inter) => &["inter_ab", "inter_b"],
            (FaceModel::PhazeA(_), ModelPart::Inter) => &[
                "fc_a",
                "fc_b",
                "fc_shared",
                "fc_gblock",
                "gblock_a",
                "gblock_b",
            ],
        }
    }

    fn fields_of(&self, parts: &[ModelPart]) -> Vec<&'static str> {
        parts
            .iter()
            .flat_map(|p| self.part_fields(*p).iter().copied())
            .collect()
    }

    /// This model with `parts` taken from `from`, which must be the same architecture; the
    /// parameters keep their own ids, only their values move.
    pub fn with_parts_of(self, from: &FaceModel, parts: &[ModelPart]) -> Result<FaceModel, String> {
        if std::mem::discriminant(&self) != std::mem::discriminant(from) {
            return Err("the pretrained model is another architecture (SAEHD vs Phaze-A)".into());
        }
        let mut collect = PartParams {
            path: PartPath::new(self.fields_of(parts)),
            values: Vec::new(),
        };
        from.visit(&mut collect);
        let mut take = TakeValues {
            path: collect.path,
            values: collect.values.into_iter(),
            mismatch: None,
        };
        let model = self.map(&mut take);
        match take.mismatch {
            Some(m) => Err(format!("the pretrained weights do not fit: {m}")),
            None => Ok(model),
        }
    }

    /// This model with `parts` trainable or frozen (frozen parameters get no gradient, so
    /// optimisers leave them bit-identical).
    pub fn with_parts_trainable(self, parts: &[ModelPart], trainable: bool) -> FaceModel {
        let mut m = RequireGrad {
            path: PartPath::new(self.fields_of(parts)),
            trainable,
        };
        self.map(&mut m)
    }

    /// Every weight value of one part, in visiting order.
    pub fn part_values(&self, part: ModelPart) -> Vec<f32> {
        let mut c = PartParams {
            path: PartPath::new(self.fields_of(&[part])),
            values: Vec::new(),
        };
        self.visit(&mut c);
        c.values
            .into_iter()
            .flat_map(|d| d.try_to_vec::<f32>().unwrap_or_default())
            .collect()
    }
}

/// Where a visitor or mapper is in the model, and whether that is inside the chosen parts:
/// the path is `[variant, field, …]`, so the top-level field is its second element.
struct PartPath {
    stack: Vec<String>,
    fields: Vec<&'static str>,
}

impl PartPath {
    fn new(fields: Vec<&'static str>) -> Self {
        PartPath {
            stack: Vec::new(),
            fields,
        }
    }

    fn inside(&self) -> bool {
        self.stack
            .get(1)
            .is_some_and(|f| self.fields.contains(&f.as_str()))
    }
}

/// The parts' parameter values in visiting order (the same order in any model of the same
/// options).
struct PartParams {
    path: PartPath,
    values: Vec<TensorData>,
}

impl ModuleVisitor for PartParams {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.path.inside() {
            self.values.push(param.val().to_data());
        }
    }
}

/// Gives the parts' parameters the values [`PartParams`] collected from another model.
struct TakeValues {
    path: PartPath,
    values: std::vec::IntoIter<TensorData>,
    mismatch: Option<String>,
}

impl ModuleMapper for TakeValues {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if !self.path.inside() {
            return param;
        }
        let at = self.path.stack.join(".");
        let Some(data) = self.values.next() else {
            self.mismatch = Some(format!("{at} is missing"));
            return param;
        };
        param.map(|t| {
            if data.shape().as_slice() != t.dims().as_slice() {
                self.mismatch = Some(format!("{at} has another shape"));
                return t;
            }
            let require_grad = t.is_require_grad();
            let taken = Tensor::<D>::from_data(data, &t.device());
            if require_grad {
                taken.require_grad()
            } else {
                taken
            }
        })
    }
}

/// Sets whether the parts' parameters take gradients.
struct RequireGrad {
    path: PartPath,
    trainable: bool,
}

impl ModuleMapper for RequireGrad {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.path.inside() {
            param.set_require_grad(self.trainable)
        } else {
            param
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phaze_a::build_tests::{batch, small};
    use crate::train::{FaceTrainer, TrainerConfig};

    #[test]
    fn phaze_a_takes_the_pretrained_encoder_and_keeps_it_frozen() {
        let device = Device::flex().autodiff();
        let opts = ModelOptions::PhazeA(small());
        let cfg = |seed| TrainerConfig {
            seed,
            freeze: Some((vec![ModelPart::Encoder], 2)),
            ..TrainerConfig::default()
        };
        let pretrained = FaceTrainer::new(&opts, &device, cfg(1));
        let (weights, _) = pretrained.save_state().unwrap();
        let mut t = FaceTrainer::new(&opts, &device, cfg(2));
        let fresh_decoder = t.model().part_values(ModelPart::DecoderA);
        t.load_parts(&opts, weights, &[ModelPart::Encoder]).unwrap();
        let encoder = pretrained.model().part_values(ModelPart::Encoder);
        assert!(!encoder.is_empty());
        assert_eq!(t.model().part_values(ModelPart::Encoder), encoder);
        assert_eq!(t.model().part_values(ModelPart::DecoderA), fresh_decoder);
        assert_ne!(
            t.model().part_values(ModelPart::Inter),
            pretrained.model().part_values(ModelPart::Inter),
            "unloaded parts keep their fresh weights"
        );
        let (a, b) = (batch(64, 0.0, &device), batch(64, 1.0, &device));
        for step in 0..3 {
            let before = t.model().part_values(ModelPart::Encoder);
            let inter = t.model().part_values(ModelPart::Inter);
            t.train_step(&a, &b);
            let moved = t.model().part_values(ModelPart::Encoder) != before;
            assert_eq!(moved, step == 2, "encoder moved at step {step}: {moved}");
            assert_ne!(t.model().part_values(ModelPart::Inter), inter);
        }
        // A SAEHD checkpoint does not load into a Phaze-A model.
        let saehd = ModelOptions::Saehd(crate::SaehdOptions::parse("df", 64, 16, 4, 4, 2).unwrap());
        let (w, _) = FaceTrainer::new(&saehd, &device, TrainerConfig::default())
            .save_state()
            .unwrap();
        let mut t = FaceTrainer::new(&opts, &device, cfg(3));
        assert!(t.load_parts(&saehd, w, &[ModelPart::Encoder]).is_err());
    }
}
