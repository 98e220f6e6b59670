//! The closed option sets of Faceswap++, each name spelled once. The wire (protocol), the models,
//! the daemon's CLI and the plug-in's choice lists all take them from here; serde writes the
//! name, and reads the name or an alias, so job records, configs and face files of earlier
//! releases still load.
#![deny(missing_docs)]

mod closed_set;

pub use closed_set::UnknownOption;

closed_set! {
    /// How the face is blended into the frame (DFL `merger/MergerConfig.py` modes).
    #[derive(Default)]
    pub enum MergeMode ("merge mode") {
        /// The frame unchanged.
        Original = "original",
        /// The face through the processed mask.
        #[default]
        Overlay = "overlay",
        /// Overlay after per-channel histogram matching to the destination face.
        HistMatch = "hist-match",
        /// Poisson (seamless) clone inside the mask.
        Seamless = "seamless",
        /// Seamless, then histogram matching.
        SeamlessHistMatch = "seamless-hist-match",
        /// The whole predicted square pasted, no mask processing.
        RawRgb = "raw-rgb",
        /// The predicted face itself, at the model's resolution, instead of the frame.
        RawPredict = "raw-predict",
    }
}

impl MergeMode {
    /// raw-rgb and raw-predict: no mask processing.
    pub fn is_raw(self) -> bool {
        matches!(self, MergeMode::RawRgb | MergeMode::RawPredict)
    }

    /// seamless and seamless-hist-match: a Poisson clone.
    pub fn is_seamless(self) -> bool {
        matches!(self, MergeMode::Seamless | MergeMode::SeamlessHistMatch)
    }
}

closed_set! {
    /// Which mask blends the face in (DFL `merger/MergerConfig.py` mask modes).
    #[derive(Default)]
    pub enum MaskMode ("mask mode") {
        /// The whole predicted square.
        Full = "full",
        /// The destination face's landmark hull.
        Dst = "dst",
        /// The mask the model predicts with the swapped face.
        LearnedPrd = "learned-prd",
        /// The mask the model predicts for the destination face.
        LearnedDst = "learned-dst",
        /// learned-prd × learned-dst.
        #[default]
        LearnedPrdTimesDst = "learned-prd*learned-dst" | "prd*dst",
        /// learned-prd + learned-dst, clipped.
        LearnedPrdPlusDst = "learned-prd+learned-dst" | "prd+dst",
        /// XSeg on the predicted face.
        XsegPrd = "XSeg-prd",
        /// XSeg on the destination face.
        XsegDst = "XSeg-dst",
        /// XSeg-prd × XSeg-dst.
        XsegPrdTimesDst = "XSeg-prd*XSeg-dst",
        /// learned-prd × learned-dst × XSeg-prd × XSeg-dst.
        LearnedTimesXseg = "learned-prd*learned-dst*XSeg-prd*XSeg-dst",
        /// The destination face's stored mask the mask rules pick for the frame (components,
        /// extended, xseg, bisenet-fp…); the landmark hull when the face has none of them.
        Stored = "stored",
    }
}

impl MaskMode {
    /// Whether the mode needs an XSeg model.
    pub fn needs_xseg(self) -> bool {
        matches!(
            self,
            MaskMode::XsegPrd
                | MaskMode::XsegDst
                | MaskMode::XsegPrdTimesDst
                | MaskMode::LearnedTimesXseg
        )
    }
}

closed_set! {
    /// Which colour transfer matches the predicted face to the destination (DFL's and
    /// faceswap's). The `-m` spellings are DFL's masked variants, which ours always are.
    #[derive(Default)]
    pub enum ColorTransferMode ("colour transfer") {
        /// The predicted colours as they are.
        None = "none",
        /// Reinhard: per-channel mean and standard deviation in LAB.
        #[default]
        Rct = "rct",
        /// Linear (PCA) transfer of the RGB mean and covariance.
        Lct = "lct",
        /// Monge–Kantorovich linear map of the RGB mean and covariance.
        Mkl = "mkl" | "mkl-m",
        /// Pitié's iterative distribution transfer.
        Idt = "idt" | "idt-m",
        /// Sliced optimal transport with bilateral regularisation.
        Sot = "sot" | "sot-m",
        /// Lightness by lct, chroma by sot.
        Mix = "mix" | "mix-m",
        /// faceswap avg-color: add the difference of the mean colours.
        AvgColor = "avg-color",
        /// faceswap match-hist: per-channel histogram matching.
        MatchHist = "match-hist",
        /// faceswap manual balance (its values travel beside the mode).
        Manual = "manual" | "manual-balance",
    }
}

closed_set! {
    /// The colour space manual balance works in.
    #[derive(Default)]
    pub enum BalanceSpace ("balance colour space") {
        /// Red, green, blue.
        Rgb = "rgb",
        /// Hue, saturation, value.
        Hsv = "hsv",
        /// CIE LAB (OpenCV scaling).
        #[default]
        Lab = "lab",
        /// Luma and chroma (BT.601).
        YCrCb = "ycrcb",
    }
}

closed_set! {
    /// Sharpening kernel (DFL blur-sharpen; faceswap's unsharp mask).
    #[derive(Default)]
    pub enum SharpenKind ("sharpen kind") {
        /// 3×3 box: `x + a·(x − box(x))`.
        #[default]
        Box = "box",
        /// 3×3 Gaussian: `x + a·(x − gauss(x))`.
        Gaussian = "gaussian",
        /// Unsharp mask with a wider Gaussian and a threshold (faceswap).
        Unsharp = "unsharp",
    }
}

closed_set! {
    /// File format of image-sequence outputs.
    #[derive(Default)]
    pub enum ImageFormat ("image format") {
        /// 8-bit PNG.
        #[default]
        Png = "png",
        /// TIFF.
        Tiff = "tiff" | "tif",
    }
}

closed_set! {
    /// How much room around the inner face an aligned crop keeps (faceswap centerings, DFL face
    /// types). The aliases are the names face files of earlier releases carry.
    pub enum Centering ("centering") {
        /// faceswap "legacy": padding ratio 0.375.
        Legacy = "legacy",
        /// faceswap "face": ratio 0.5, centred on the face by the head-pose offset.
        Face = "face",
        /// faceswap "head": ratio 0.625, centred on the head by the head-pose offset.
        Head = "head",
        /// DFL full face `f`.
        DflFull = "f" | "full" | "DflFull",
        /// DFL whole face `wf`.
        DflWholeFace = "wf" | "whole_face" | "DflWholeFace",
        /// DFL head.
        DflHead = "dfl-head" | "DflHead",
    }
}

closed_set! {
    /// A mask made from a face's 68 landmarks (faceswap's landmark masks), stored under its name.
    pub enum LandmarkMask ("landmark mask") {
        /// The convex hull of all 68 points.
        Hull = "hull",
        /// faceswap "components": the union of the hulls of eight face parts.
        Components = "components",
        /// faceswap "extended": components with the eyebrows raised by half their distance to
        /// the eyes, so the mask reaches the forehead.
        Extended = "extended",
    }
}

closed_set! {
    /// How `sort` orders faces (faceswap's sort methods).
    pub enum SortMethod ("sort method") {
        /// Sharpest first: variance of the Laplacian of the grey face (faceswap "blur").
        Blur = "blur",
        /// Sharpest first: mean log-magnitude of the face's high frequencies (faceswap "blur-fft").
        BlurFft = "blur-fft",
        /// Best aligned first: landmark distance from the mean face (faceswap "distance").
        Distance = "distance",
        /// Head yaw, left to right (degrees, from the head pose).
        Yaw = "yaw",
        /// Head pitch, down to up.
        Pitch = "pitch",
        /// Roll.
        Roll = "roll",
        /// Each face next to the most similar colour histogram (faceswap "hist").
        Histogram = "hist" | "histogram",
        /// Largest face in the frame first (faceswap "size").
        Size = "size",
        /// Each face next to the most similar-looking face (normalised grey pixels).
        Face = "face",
    }
}

closed_set! {
    /// Which optimiser updates the weights.
    #[derive(Default)]
    pub enum OptimizerKind ("optimizer") {
        /// DFL's default: AdaBelief without bias correction.
        #[default]
        AdaBelief = "adabelief",
        /// Adam (β 0.9/0.999, ε 1e-7), bias-corrected as usual.
        Adam = "adam",
        /// AdamW: Adam with decoupled weight decay (Keras' defaults, which faceswap uses).
        AdamW = "adamw",
        /// RMSprop as Keras (faceswap) runs it: ρ 0.9, no momentum, ε 1e-7.
        RmsProp = "rmsprop" | "rms-prop",
        /// Lion (β 0.9/0.99).
        Lion = "lion",
    }
}

closed_set! {
    /// Compute precision of a training step: f32, or mixed (half-precision compute on a copy of
    /// the f32 master weights, with dynamic loss scaling).
    #[derive(Default)]
    pub enum Precision ("precision") {
        /// Everything in f32.
        #[default]
        F32 = "f32" | "full",
        /// f16 compute, f32 master weights, dynamic loss scaling.
        F16 = "f16" | "fp16" | "mixed",
        /// bf16 compute, f32 master weights, dynamic loss scaling.
        Bf16 = "bf16",
    }
}

/// serde `deserialize_with` for fields earlier releases wrote as `""` when they meant the default.
pub fn empty_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    if s.trim().is_empty() {
        Ok(T::default())
    } else {
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
