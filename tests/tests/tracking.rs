//! Faces over time in real videos: track ids, frames reported as low-confidence while a hand
//! covers the face, three people kept apart in a panning shot, and what temporal smoothing buys.

use std::path::Path;

use faceswap_tests::test_asset;
use faceswapd::extract::{ExtractRequest, ExtractSummary, run_extraction};
use faceswapd::faceset::ALIGNMENTS_FILE;
use faceswapd::faceset::face::{ExtractSettings, Face};
use faceswapd::faceset::store::Alignments;
use faceswapd::geometry::Centering;
use faceswapd::geometry::inter_ocular;
use faceswapd::paths::Dirs;
use faceswapd::track::{Smoothing, jitter};

fn extract(video: &Path, out: &Path, smoothing: Option<Smoothing>) -> (ExtractSummary, Alignments) {
    let models = faceswapd::extract::default_models(&Dirs::resolve().unwrap())
        .expect("converted models are cached (run installers/test.sh)");
    let req = ExtractRequest {
        input: video.to_path_buf(),
        output: out.to_path_buf(),
        size: 64,
        centering: Centering::DflFull,
        every_nth: 1,
        settings: ExtractSettings::default(),
        smoothing,
    };
    let summary = run_extraction(&req, &models, |_, _| true).unwrap();
    for line in summary.report() {
        println!("{line}");
    }
    (
        summary,
        Alignments::load(&out.join(ALIGNMENTS_FILE)).unwrap(),
    )
}

/// The only face of each frame in `range`.
fn faces_in(store: &Alignments, range: std::ops::RangeInclusive<u64>) -> Vec<(u64, &Face)> {
    store
        .frames
        .range(range)
        .map(|(i, e)| {
            assert_eq!(e.faces.len(), 1, "frame {i}");
            (*i, &e.faces[0].face)
        })
        .collect()
}

#[test]
fn the_hand_is_reported_the_track_holds_and_smoothing_halves_the_jitter() {
    let video = test_asset("WolfgangLanger_Pexels.mp4").unwrap();
    let root = tempfile::tempdir().unwrap();
    let (summary, smooth) = extract(&video, &root.path().join("on"), Some(Smoothing::default()));
    let (_, raw) = extract(&video, &root.path().join("off"), None);

    // One person, one track from the first frame to the last.
    assert_eq!(summary.tracks.len(), 1, "{:?}", summary.tracks);
    let t = &summary.tracks[0];
    assert_eq!((t.first, t.last, t.frames), (0, 471, 472));
    assert!(
        smooth
            .frames
            .values()
            .all(|e| e.faces.iter().all(|f| f.track == Some(0)))
    );
    // The hand is over the face from about frame 90 to 230 (gone from 240 on).
    let share = |range: std::ops::RangeInclusive<u64>| {
        let n = (range.end() - range.start() + 1) as f64;
        t.low_confidence
            .iter()
            .filter(|i| range.contains(i))
            .count() as f64
            / n
    };
    let (hand, clear) = (share(90..=230), share(240..=471));
    println!(
        "low-confidence: {:.0}% of frames 90-230 (hand), {:.1}% of frames 240-471",
        hand * 100.0,
        clear * 100.0
    );
    assert!(hand >= 0.5 && clear <= 0.05, "{hand} {clear}");

    // Smoothing on frames 240-472: jitter falls, the landmarks stay near the raw ones.
    let (on, off) = (faces_in(&smooth, 240..=471), faces_in(&raw, 240..=471));
    let (j_on, j_off) = (jitter(&on).unwrap(), jitter(&off).unwrap());
    let shift = on
        .iter()
        .zip(&off)
        .map(|((_, a), (_, b))| {
            let (la, lb) = (a.landmarks68(), b.landmarks68());
            la.iter()
                .zip(&lb)
                .map(|(p, q)| (p[0] - q[0]).hypot(p[1] - q[1]))
                .sum::<f64>()
                / 68.0
                / inter_ocular(&lb)
        })
        .sum::<f64>()
        / on.len() as f64;
    println!(
        "frames 240-471: jitter {:.2}% → {:.2}% of the eye distance ({:.0}% less); mean shift from the raw landmarks {:.2}%",
        j_off * 100.0,
        j_on * 100.0,
        (1.0 - j_on / j_off) * 100.0,
        shift * 100.0
    );
    assert!(j_on <= 0.6 * j_off, "{j_on} vs {j_off}");
    assert!(shift < 0.015, "{shift}");
    assert_eq!(smooth.smoothing, Some(Smoothing::default()));
    assert_eq!(raw.smoothing, None);
}

#[test]
fn three_people_in_a_panning_shot_keep_three_tracks() {
    let root = tempfile::tempdir().unwrap();
    let video = root.path().join("pan.mp4");
    let still = test_asset("vladmandic_faceapi_sample3_multiface.jpg").unwrap();
    // Two seconds panning across the three-face still (all three stay in view).
    let args = [
        "-loop",
        "1",
        "-i",
        still.to_str().unwrap(),
        "-vf",
        "crop=1500:1055:'420-n*200/47':150,scale=640:450,format=yuv420p",
        "-frames:v",
        "48",
        "-r",
        "24",
        "-c:v",
        "libx264",
    ];
    faceswap_tests::ffmpeg(&args, &video);
    let (summary, store) = extract(
        &video,
        &root.path().join("faces"),
        Some(Smoothing::default()),
    );
    assert_eq!(summary.tracks.len(), 3, "{:?}", summary.tracks);
    for t in &summary.tracks {
        assert_eq!((t.first, t.last, t.frames), (0, 47, 48), "{}", t.line());
        assert!(t.lost.is_empty());
    }
    // Each frame holds one face of each track, and a track stays on its side of the picture.
    let mut order = None;
    for (i, e) in &store.frames {
        let mut by_x: Vec<(f64, u32)> = e
            .faces
            .iter()
            .map(|f| (f.face.landmarks68()[30][0], f.track.unwrap()))
            .collect();
        by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ids: Vec<u32> = by_x.iter().map(|(_, id)| *id).collect();
        assert_eq!(ids.len(), 3, "frame {i}");
        assert_eq!(order.get_or_insert_with(|| ids.clone()), &ids, "frame {i}");
    }
    // Picking a person by a reference face: each woman's face cut from the still itself
    // finds her track in the video.
    let order = order.unwrap();
    let photos = faceswap_tests::faceset_from_photos(
        &root.path().join("still"),
        &["vladmandic_faceapi_sample3_multiface.jpg"],
        64,
    )
    .unwrap();
    let still = Alignments::load(&photos.join(ALIGNMENTS_FILE)).unwrap();
    let mut faces: Vec<_> = still.frames[&0].faces.iter().collect();
    faces.sort_by(|a, b| a.face.landmarks[30][0].total_cmp(&b.face.landmarks[30][0]));
    for (k, f) in faces.iter().enumerate() {
        let reference = photos.join(f.file.as_ref().unwrap());
        let (id, sim) =
            faceswapd::track::track_for_reference(&root.path().join("faces"), &reference).unwrap();
        println!("reference {k} (left to right) → track {id}, similarity {sim:.2}");
        assert_eq!(id, order[k]);
    }
}
