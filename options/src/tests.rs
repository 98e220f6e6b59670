use super::*;

#[test]
fn every_name_and_alias_reads_back_as_its_member() {
    fn check<T: std::str::FromStr + PartialEq + std::fmt::Debug + Copy>(
        all: &[T],
        name: fn(T) -> &'static str,
        aliases: fn(T) -> &'static [&'static str],
    ) where
        T::Err: std::fmt::Debug,
    {
        for m in all {
            assert_eq!(name(*m).parse::<T>().unwrap(), *m);
            assert_eq!(name(*m).to_ascii_uppercase().parse::<T>().unwrap(), *m);
            for a in aliases(*m) {
                assert_eq!(a.parse::<T>().unwrap(), *m, "{a}");
            }
        }
    }
    check(MergeMode::ALL, MergeMode::name, MergeMode::aliases);
    check(MaskMode::ALL, MaskMode::name, MaskMode::aliases);
    check(
        ColorTransferMode::ALL,
        ColorTransferMode::name,
        ColorTransferMode::aliases,
    );
    check(BalanceSpace::ALL, BalanceSpace::name, BalanceSpace::aliases);
    check(SharpenKind::ALL, SharpenKind::name, SharpenKind::aliases);
    check(ImageFormat::ALL, ImageFormat::name, ImageFormat::aliases);
    check(Centering::ALL, Centering::name, Centering::aliases);
    check(SortMethod::ALL, SortMethod::name, SortMethod::aliases);
    check(LandmarkMask::ALL, LandmarkMask::name, LandmarkMask::aliases);
    check(
        OptimizerKind::ALL,
        OptimizerKind::name,
        OptimizerKind::aliases,
    );
    check(Precision::ALL, Precision::name, Precision::aliases);
}

#[test]
fn an_unknown_name_is_refused_with_every_accepted_name() {
    let e = "bogus".parse::<MergeMode>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown merge mode \"bogus\": use one of original, overlay, hist-match, seamless, \
         seamless-hist-match, raw-rgb, raw-predict"
    );
}

#[test]
fn serde_writes_the_name_and_reads_old_spellings() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Rec {
        mask: MaskMode,
        centering: Centering,
        #[serde(deserialize_with = "empty_as_default")]
        precision: Precision,
    }
    let r = Rec {
        mask: MaskMode::LearnedPrdTimesDst,
        centering: Centering::DflWholeFace,
        precision: Precision::Bf16,
    };
    let text = toml::to_string(&r).unwrap();
    assert_eq!(
        text,
        "mask = \"learned-prd*learned-dst\"\ncentering = \"wf\"\nprecision = \"bf16\"\n"
    );
    assert_eq!(toml::from_str::<Rec>(&text).unwrap(), r);
    // Face files of earlier releases wrote the variant's Rust name; job records wrote "" for f32.
    let old: Rec =
        toml::from_str("mask = \"prd*dst\"\ncentering = \"DflWholeFace\"\nprecision = \"\"\n")
            .unwrap();
    assert_eq!(old.centering, Centering::DflWholeFace);
    assert_eq!(old.precision, Precision::F32);
    assert!(
        toml::from_str::<Rec>("mask = \"nope\"\ncentering = \"f\"\nprecision = \"f32\"\n").is_err()
    );
}

#[test]
fn c_names_are_the_names() {
    for m in MaskMode::ALL {
        assert_eq!(m.c_name().to_str().unwrap(), m.name());
    }
}
