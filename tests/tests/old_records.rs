//! What protocol v7 wrote (job records with options as strings, old spellings; a face file's
//! metadata with serde's derived `Centering` names) still loads, typed, in this release.

use std::path::Path;

use faceswap_protocol::{
    BalanceSpace, Centering, ColorTransferMode, ConvertJob, ExtractJob, ImageFormat, JobSpec,
    JobState, MaskMode, MergeMode, OptimizerKind, Precision, SharpenKind, SortMethod, ToolJob,
    ToolSpec, TrainJob,
};
use faceswapd::faceset::FaceMeta;
use faceswapd::jobs::JobManager;

fn v7() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/protocol-v7"))
}

#[test]
fn job_records_written_by_protocol_v7_load_typed_and_none_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(v7().join("jobs")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let dirs = faceswapd::paths::Dirs {
        data: dir.path().join("data"),
        cache: dir.path().join("cache"),
        config: dir.path().join("config"),
    };
    let runtime = faceswapd::runtime::Runtime::new(dirs, Default::default());
    let jobs = JobManager::open(dir.path(), 20, faceswapd::stages::HANDLERS, runtime).unwrap();
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("corrupt"))
        .collect();
    assert!(aside.is_empty(), "set aside: {aside:?}");
    assert_eq!(jobs.list().len(), 7);

    match jobs.get(1).unwrap().spec {
        JobSpec::Extract(ExtractJob {
            centering, size, ..
        }) => {
            assert_eq!((centering, size), (Centering::DflWholeFace, 256))
        }
        other => panic!("{other:?}"),
    }
    let train = |id| match jobs.get(id).unwrap().spec {
        JobSpec::Train(TrainJob { settings, .. }) => settings,
        other => panic!("{other:?}"),
    };
    let t = train(2);
    assert_eq!(
        (t.optimizer, t.precision),
        (OptimizerKind::RmsProp, Precision::F32)
    );
    assert_eq!(t.archi, "liae-ud");
    let t = train(3);
    assert_eq!(
        (t.optimizer, t.precision),
        (OptimizerKind::Lion, Precision::F16)
    );
    let r = jobs.get(4).unwrap();
    assert_eq!(r.state, JobState::Cancelled);
    match r.spec {
        JobSpec::Convert(ConvertJob { settings: s, .. }) => {
            assert_eq!(s.mode, MergeMode::SeamlessHistMatch);
            assert_eq!(s.mask_mode, MaskMode::LearnedPrdTimesDst);
            assert_eq!(s.color, ColorTransferMode::Mkl);
            assert_eq!(s.balance_space, BalanceSpace::Hsv);
            assert_eq!(s.sharpen_kind, SharpenKind::Unsharp);
            assert_eq!(s.image_format, ImageFormat::Tiff);
        }
        other => panic!("{other:?}"),
    }
    match jobs.get(5).unwrap().spec {
        JobSpec::Tool(ToolJob {
            tool: ToolSpec::Sort { by, .. },
            ..
        }) => {
            assert_eq!(by, SortMethod::Histogram)
        }
        other => panic!("{other:?}"),
    }
    match jobs.get(6).unwrap().spec {
        JobSpec::Tool(ToolJob {
            tool: ToolSpec::Extract { centering, .. },
            ..
        }) => {
            assert_eq!(centering, Centering::Head)
        }
        other => panic!("{other:?}"),
    }
    jobs.shutdown();
}

#[test]
fn a_face_file_written_by_protocol_v7_keeps_its_centering() {
    let text = std::fs::read_to_string(v7().join("face-meta.toml")).unwrap();
    let meta: FaceMeta = toml::from_str(&text).unwrap();
    assert_eq!(meta.centering, Centering::DflWholeFace);
    // Written again, it carries the one name the CLI uses, and reads back the same.
    let again = toml::to_string(&meta).unwrap();
    assert!(again.contains("centering = \"wf\""), "{again}");
    assert_eq!(toml::from_str::<FaceMeta>(&again).unwrap(), meta);
}
