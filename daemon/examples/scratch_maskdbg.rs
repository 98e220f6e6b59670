use faceswapd::extract::geometry::Affine;
fn main() {
    let dir = std::path::Path::new("/tmp/stills_mask");
    let store = faceswapd::extract::store::Alignments::load(&dir.join("alignments.fsppa")).unwrap();
    for (i, e) in &store.frames {
        for f in &e.faces {
            let meta =
                faceswapd::extract::read_face_meta(&dir.join(f.file.as_ref().unwrap())).unwrap();
            let scale = 128.0 / meta.size as f64;
            let to_tile = Affine([[scale, 0.0, 0.0], [0.0, scale, 0.0]]).then_after(&meta.crop);
            for name in ["components", "extended"] {
                let m = f.masks[name].project(&to_tile, 128).unwrap();
                let top = (0..128).find(|y| (0..128).any(|x| m.data[y * 128 + x] > 0.5));
                let st = f.masks[name].plane().unwrap();
                let stop = (0..128).find(|y| (0..128).any(|x| st.data[y * 128 + x] > 0.5));
                let lm = f.face.landmarks68();
                let brow = lm[17..27]
                    .iter()
                    .map(|p| to_tile.apply(*p)[1])
                    .fold(f64::MAX, f64::min);
                println!("frame {i} {name}: tile top {top:?} brow {brow:.1}; stored top {stop:?}");
            }
        }
    }
}
