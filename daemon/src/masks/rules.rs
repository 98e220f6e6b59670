//! Which mask a face uses, per frame range (Faceswap++ mixes mask types by frame range with a
//! secondary mask). A rule list reads like `10-50: xseg; otherwise: bisenet-fp_face;
//! fallback: components`:
//! - ranges are inclusive at both ends (`10-50` covers frames 10 and 50); a single number is a
//!   one-frame range; `otherwise` (or `*`) covers every frame;
//! - rules are tried in order: the first whose range covers the frame *and* whose mask the face
//!   has wins;
//! - when none does, the fallback is used if the face has it; else the face has no mask.
//!
//! Training and merge resolve masks through the same rules.

/// One rule: a frame range (None = every frame) and a mask name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskRule {
    /// Inclusive frame range, or every frame.
    pub frames: Option<(u64, u64)>,
    /// Mask name as stored (`components`, `extended`, `hull`, `xseg`, `bisenet-fp_face`, …).
    pub mask: String,
}

/// An ordered rule list with an optional fallback.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MaskRules {
    /// Tried in order.
    pub rules: Vec<MaskRule>,
    /// Used when no rule applies.
    pub fallback: Option<String>,
}

impl MaskRules {
    /// Parses `A-B: name; N: name; otherwise: name; fallback: name` (see the module doc).
    pub fn parse(text: &str) -> Result<MaskRules, String> {
        let mut out = MaskRules::default();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (range, mask) = part.split_once(':').ok_or_else(|| {
                format!("mask rule {part:?} has no ':'; write e.g. \"10-50: xseg\"")
            })?;
            let (range, mask) = (range.trim(), mask.trim());
            if mask.is_empty() || mask.contains(char::is_whitespace) {
                return Err(format!("mask rule {part:?}: {mask:?} is not a mask name"));
            }
            let number = |v: &str| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("mask rule {part:?}: {v:?} is not a frame number"))
            };
            match range.to_ascii_lowercase().as_str() {
                "fallback" => out.fallback = Some(mask.to_string()),
                "otherwise" | "*" => out.rules.push(MaskRule {
                    frames: None,
                    mask: mask.to_string(),
                }),
                r => {
                    let r = r.strip_prefix("frames").unwrap_or(r).trim();
                    let (a, b) = match r.split_once('-') {
                        Some((a, b)) => (number(a)?, number(b)?),
                        None => (number(r)?, number(r)?),
                    };
                    if a > b {
                        return Err(format!(
                            "mask rule {part:?}: the range ends before it starts"
                        ));
                    }
                    out.rules.push(MaskRule {
                        frames: Some((a, b)),
                        mask: mask.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The mask for a face in `frame`, given which masks the face has.
    pub fn resolve(&self, frame: u64, has: impl Fn(&str) -> bool) -> Option<&str> {
        self.rules
            .iter()
            .filter(|r| r.frames.is_none_or(|(a, b)| (a..=b).contains(&frame)))
            .map(|r| r.mask.as_str())
            .find(|m| has(m))
            .or_else(|| self.fallback.as_deref().filter(|m| has(m)))
    }
}

impl crate::faceset::store::StoredFace {
    /// The stored mask `rules` pick for this face in `frame`, with its name.
    pub fn mask_by_rules<'a>(
        &'a self,
        frame: u64,
        rules: &'a MaskRules,
    ) -> Option<(&'a str, &'a crate::faceset::store::StoredMask)> {
        let name = rules.resolve(frame, |m| self.masks.contains_key(m))?;
        Some((name, self.masks.get(name)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_inclusive_and_rules_apply_in_order() {
        let r = MaskRules::parse(
            "10-50: xseg; 51: extended; otherwise: bisenet-fp_face; fallback: components",
        )
        .unwrap();
        let all = |_: &str| true;
        assert_eq!(r.resolve(9, all), Some("bisenet-fp_face"));
        assert_eq!(r.resolve(10, all), Some("xseg"));
        assert_eq!(r.resolve(50, all), Some("xseg"));
        assert_eq!(r.resolve(51, all), Some("extended"));
        assert_eq!(r.resolve(52, all), Some("bisenet-fp_face"));
    }

    #[test]
    fn a_missing_mask_falls_through_to_the_next_rule_then_the_fallback() {
        let r = MaskRules::parse(
            "frames 10-50: xseg; otherwise: bisenet-fp_face; fallback: components",
        )
        .unwrap();
        // No XSeg for this face: the next covering rule.
        assert_eq!(r.resolve(20, |m| m != "xseg"), Some("bisenet-fp_face"));
        // Only landmark masks: the fallback.
        assert_eq!(r.resolve(20, |m| m == "components"), Some("components"));
        assert_eq!(r.resolve(60, |m| m == "components"), Some("components"));
        // Nothing at all: no mask.
        assert_eq!(r.resolve(20, |_| false), None);
        // No fallback, no covering rule.
        let only = MaskRules::parse("0-5: xseg").unwrap();
        assert_eq!(only.resolve(6, |_| true), None);
    }

    #[test]
    fn bad_rules_name_the_problem() {
        for bad in ["10-50 xseg", "50-10: xseg", "a-b: xseg", "3: two words"] {
            let e = MaskRules::parse(bad).unwrap_err();
            assert!(e.contains("mask rule"), "{bad}: {e}");
        }
    }
}
