//! Image rows across an upgrade: a row keyed by id takes over the rows an
//! older recorderd kept of the same image (`reference@id`).

use super::*;
use crate::{images, index::Index};

#[tokio::test]
async fn a_row_keyed_by_id_takes_over_the_older_rows_of_its_image() {
    let s = Setup::new();
    // What an older recorderd left: a row keyed `test/img@sha256:beef`,
    // without label or references, and its file.
    let old_file = s
        .config
        .profiles_dir
        .join("images/test+img%40sha256%3Abeef.json");
    {
        let index = Index::open(&s.config.state_dir).expect("index");
        let mut old = images::ImageRow::new(&images::key(Some("test/img"), None, None).unwrap(), 7);
        old.add_run(None, &Profile::default(), 7);
        old.runs = 3;
        (old.key, old.image) = ("test/img@sha256:beef".into(), "test/img".into());
        (old.id, old.label) = (Some("sha256:beef".into()), String::new());
        index.put_image(&old).expect("put");
        std::fs::create_dir_all(old_file.parent().unwrap()).unwrap();
        std::fs::write(&old_file, "{}").unwrap();
    }
    gone_runs_of_one_image(&s, &[&["mkdir"], &["chmod"]], false);
    let mut m = s.manager();
    m.resume().await;
    let Outcome::Images(rows) = m.handle(Request::Images).await.expect("images") else {
        panic!("not images");
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r.key.as_str(), r.runs, r.first_seen),
        ("sha256:beef", 5, 7)
    );
    assert_eq!(r.references, ["test/img:latest"]);
    assert!(!old_file.exists(), "the older row's file stays");
    let new_file = s
        .config
        .profiles_dir
        .join("images")
        .join(format!("{}.json", images::file_stem(&r.label)));
    assert!(new_file.exists(), "{}", new_file.display());
}
