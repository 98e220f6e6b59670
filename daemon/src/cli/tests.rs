use super::values::parse_loss;
use super::*;

fn generate(args: &[&str]) -> MaskGenerateArgs {
    let cli =
        Cli::try_parse_from([&["faceswapd", "mask", "generate", "faces"], args].concat()).unwrap();
    match cli.command {
        Command::Mask(MaskCommand::Generate(a)) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn losses_parse_as_name_and_weight() {
    assert_eq!(parse_loss("ms_ssim:0.5"), Ok(("ms_ssim".into(), 0.5)));
    assert_eq!(parse_loss("mae"), Ok(("mae".into(), 1.0)));
    assert!(parse_loss("mae:lots").unwrap_err().contains("not a weight"));
    let cli = Cli::try_parse_from([
        "faceswapd",
        "train",
        "--a",
        "a",
        "--b",
        "b",
        "--model",
        "m",
        "--loss",
        "gmsd:2",
        "--loss",
        "ffl",
    ])
    .unwrap();
    let Command::Train(t) = cli.command else {
        panic!("not train")
    };
    assert_eq!(
        t.settings().losses,
        vec![("gmsd".into(), 2.0), ("ffl".into(), 1.0)]
    );
}

#[test]
fn bisenet_comes_from_the_flag_else_the_config() {
    let mut cfg = crate::config::MasksConfig::default();
    assert!(
        crate::masks::bisenet_choice(&generate(&[]).bisenet_request().unwrap(), &cfg).is_none(),
        "nothing configured"
    );
    cfg.bisenet_model = "/models/bisenet.onnx".into();
    let (model, parts) =
        crate::masks::bisenet_choice(&generate(&[]).bisenet_request().unwrap(), &cfg).unwrap();
    assert_eq!(model, PathBuf::from("/models/bisenet.onnx"));
    assert!(
        parts.glasses && !parts.hair && !parts.ears,
        "faceswap's defaults"
    );
    let (model, parts) = crate::masks::bisenet_choice(
        &generate(&["--bisenet", "other.onnx", "--hair"])
            .bisenet_request()
            .unwrap(),
        &cfg,
    )
    .unwrap();
    assert_eq!(model, PathBuf::from("other.onnx"));
    assert!(parts.hair);
    assert!(generate(&["--no-bisenet"]).bisenet_request().is_none());
    assert!(
        Cli::try_parse_from([
            "faceswapd",
            "mask",
            "generate",
            "f",
            "--bisenet",
            "x",
            "--no-bisenet"
        ])
        .is_err()
    );
}
