//! A state dir written by the real recorderd of 83eecbd while it recorded
//! real docker and containerd containers (`recorder/tests/fixtures/
//! state-83eecbd`, see its README) loads with today's `Container`: the
//! recordings of `recordings.json`, the index's entries and image rows,
//! what recorderctl printed; what is saved again loads the same, and a
//! manager started on it finishes the old recordings with their facts.

use super::*;
use crate::{
    container::{Container, Runtime},
    control::RecordingInfo,
    index::{Entry, Index},
    policy::ChosenBy,
    profile::{ACT_LOG, Policy, drift},
};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-83eecbd");
const IMAGE: &str = "recorder-fixture/busybox:83eecbd";
const IMAGE_ID: &str = "sha256:b209f6ebc622717a7a4a90b80929d55feb3e0336353c8e03a9fa513032f9b6f4";
/// The digest of the complain-mode profile the drift containers ran under.
const LOG_PROFILE: &str = "sha256:341d588236c39dc12547e4b35615651224e71bc2d20846ac856a3522065524a4";
const WEB: &str = "0221d74d49efd7f0384bb0ed6955c9c304e9e19a58c1acda3ff6d57db68b3f8c";
const WATCH: &str = "98470c933ef877a3f811b3778bf27a960b9737ff744f76a8b0f67cc5c5c24d7a";
const ONCE: &str = "2dfff2711bf3ae58645e2ca966aff1a396cc0afc8c24a2bb046e2f4300113f34";
const DRIFT: &str = "4975508fef981ec1d8b3a37a975f30cba0610f23d7d7645bc1f9c49644c2b385";
const NGINX: &str = "0000830100000000000000000000000000000000000000000000000000000053";
const NGINX_POD_UID: &str = "00008301-0000-4000-8000-000000000053";
const POSTGRES: &str = "0000830200000000000000000000000000000000000000000000000000000053";

/// Copies the fixture's `from` (a directory, recursively) to `to`.
fn copy(from: &str, to: &Path) {
    let from = Path::new(FIXTURE).join(from);
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(&from).expect("fixture") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy(
                &format!("{}/{}", from.display(), e.file_name().to_string_lossy()),
                &dest,
            );
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

/// The container whose key is `key` among `list`.
fn of<'a, T>(list: &'a [T], key: &str, c: impl Fn(&T) -> &Container) -> &'a T {
    list.iter()
        .find(|x| c(x).key() == key)
        .unwrap_or_else(|| panic!("no {key}"))
}

fn outside_names(o: &drift::Outside) -> Vec<String> {
    drift::names(o).into_keys().collect()
}

#[test]
fn recordings_of_83eecbd_load_with_their_facts() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy("state", dir.path());
    let recs = state::load(dir.path());
    assert_eq!(recs.len(), 4);
    let rec = |key| of(&recs, key, |r| &r.container);

    let web = rec(WEB);
    let c = &web.container;
    assert_eq!((c.runtime(), c.found.id.as_str()), (Runtime::Docker, WEB));
    assert_eq!(c.name.as_deref(), Some("fx83-web"));
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    assert_eq!(c.image_id.as_deref(), Some(IMAGE_ID));
    // 83eecbd kept no labels, nor pod names of docker containers.
    assert!(c.labels.is_empty() && c.pod.is_none() && c.pod_namespace.is_none());
    assert_eq!(
        (web.owner, web.cgroup.as_str()),
        (310, &*format!("/docker/{WEB}"))
    );
    assert!(matches!(&web.policy, Policy::Filter(f) if f.default_action == "SCMP_ACT_ERRNO"));
    assert!(web.chosen_profile.is_none() && web.drift.is_empty());
    let key = crate::images::key(c.image.as_deref(), c.image_id.as_deref(), c.name.as_deref());
    assert_eq!(key.map(|k| k.key).as_deref(), Some(IMAGE_ID));

    // Under a chosen complain-mode profile, with the drift seen so far.
    let watch = rec(WATCH);
    assert_eq!(watch.container.name.as_deref(), Some("fx83-watch"));
    let chosen = watch.chosen_profile.as_ref().expect("chosen");
    assert_eq!(
        (
            chosen.chosen_by,
            chosen.default_action.as_str(),
            chosen.digest.as_str()
        ),
        (ChosenBy::Docker, ACT_LOG, LOG_PROFILE)
    );
    assert_eq!(
        outside_names(&watch.drift),
        ["chmod", "clock_nanosleep", "dup2"]
    );
    assert_eq!(drift::names(&watch.drift)["chmod"], 1_796_618_141);

    // A Kubernetes container (ctr in a kubepods cgroup, CRI annotations).
    let c = &rec(NGINX).container;
    assert_eq!(c.runtime(), Runtime::Kubernetes);
    assert_eq!(c.found.pod_uid.as_deref(), Some(NGINX_POD_UID));
    assert_eq!(c.name.as_deref(), Some("shop/web/nginx"));
    assert_eq!(
        (c.pod.as_deref(), c.pod_namespace.as_deref()),
        (Some("web"), Some("shop"))
    );
    assert_eq!((c.image.as_deref(), c.image_id.as_deref()), (None, None));
    assert_eq!(rec(NGINX).policy, Policy::Unconfined);

    // containerd's namespace/id.
    let c = &rec("fx83/fx-app").container;
    assert_eq!(c.runtime(), Runtime::Containerd);
    assert_eq!(
        (c.found.id.as_str(), c.found.namespace.as_deref()),
        ("fx-app", Some("fx83"))
    );
    assert_eq!(c.name.as_deref(), Some("fx-app"));
    assert_eq!(c.image.as_deref(), Some("registry.example/shop/app:1.2"));

    // Saved again (today's form) and loaded: the same, labels too.
    let mut recs = recs;
    recs[0].container.labels = [("app".to_owned(), "shop".to_owned())].into();
    let again = tempfile::tempdir().expect("tempdir");
    state::save(again.path(), recs.clone());
    assert_eq!(state::load(again.path()), recs);
}

#[test]
fn the_index_of_83eecbd_loads_with_its_facts_and_image_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy("state", dir.path());
    let index = Index::open(dir.path()).expect("index");
    let entries = index.load().expect("entries");
    assert_eq!(entries.len(), 4);
    let entry = |key| of(&entries, key, |e| &e.container);

    let once = entry(ONCE);
    let c = &once.container;
    assert_eq!(
        (c.runtime(), c.name.as_deref()),
        (Runtime::Docker, Some("fx83-once"))
    );
    assert_eq!(
        (c.image.as_deref(), c.image_id.as_deref()),
        (Some(IMAGE), Some(IMAGE_ID))
    );
    assert_eq!(once.image_key.as_deref(), Some(IMAGE_ID));
    assert_eq!(once.written, 1_796_618_136);
    assert!(once.drift.is_none());

    let d = entry(DRIFT).drift.as_ref().expect("drift");
    assert_eq!(entry(DRIFT).container.name.as_deref(), Some("fx83-drift"));
    assert_eq!(
        (d.profile.chosen_by, d.profile.digest.as_str()),
        (ChosenBy::Docker, LOG_PROFILE)
    );
    assert_eq!(d.policy.default_action, ACT_LOG);
    assert_eq!(outside_names(&d.outside), ["chmod", "clock_nanosleep"]);

    let c = &entry(POSTGRES).container;
    assert_eq!(c.runtime(), Runtime::Kubernetes);
    assert_eq!(c.name.as_deref(), Some("default/db-0/postgres"));
    assert_eq!(
        (c.pod.as_deref(), c.pod_namespace.as_deref()),
        (Some("db-0"), Some("default"))
    );
    // 83eecbd kept no pod UID in the index.
    assert_eq!(c.found.pod_uid, None);

    let fx = entry("fx83/fx-once");
    assert_eq!(
        (
            fx.container.found.id.as_str(),
            fx.container.found.namespace.as_deref()
        ),
        ("fx-once", Some("fx83"))
    );
    assert_eq!(
        fx.container.image.as_deref(),
        Some("registry.example/shop/once:3")
    );
    assert_eq!(
        fx.image_key.as_deref(),
        Some("registry.example/shop/once:3")
    );

    // Each entry's profile and each image row's profile are in the fixture.
    for e in &entries {
        let file = e.path.file_name().expect("file name");
        assert!(
            Path::new(FIXTURE).join("profiles").join(file).is_file(),
            "{e:?}"
        );
    }
    drop(index);
    let book = crate::images::ImageBook::open(dir.path()).expect("image book");
    let rows = book.images().expect("image rows");
    let mut keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "default/db-0/postgres",
            "registry.example/shop/once:3",
            IMAGE_ID
        ]
    );
    for r in &rows {
        let file = Path::new(FIXTURE)
            .join("profiles/images")
            .join(r.file_name());
        assert!(file.is_file(), "{}", file.display());
    }

    // Added again to a new index and loaded: the same.
    drop(book);
    let again = tempfile::tempdir().expect("tempdir");
    let index = Index::open(again.path()).expect("index");
    index.add_all(entries.clone()).expect("add");
    assert_eq!(index.load().expect("entries"), entries);
}

/// What recorderctl of 83eecbd printed with `-o json` is read, and written
/// again as the same JSON: the protocol's `list`, `profiles` and `drift`
/// replies, and the index's entries (stored as this JSON), did not change.
#[test]
fn the_json_of_83eecbd_is_read_and_written_the_same() {
    let read = |file: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(Path::new(FIXTURE).join(file)).expect("fixture");
        serde_json::from_str(&text).expect("json")
    };
    let list = read("wire/list.json");
    let infos: Vec<RecordingInfo> = serde_json::from_value(list.clone()).expect("list");
    assert_eq!(infos.len(), 4);
    let nginx = of(&infos, NGINX, |i| &i.container);
    assert_eq!(
        nginx.container.found.pod_uid.as_deref(),
        Some(NGINX_POD_UID)
    );
    assert_eq!(nginx.container.pod.as_deref(), Some("web"));
    assert_eq!(serde_json::to_value(&infos).expect("json"), list);

    let profiles = read("wire/profiles.json");
    let entries: Vec<Entry> = serde_json::from_value(profiles.clone()).expect("profiles");
    assert_eq!(entries.len(), 4);
    assert_eq!(serde_json::to_value(&entries).expect("json"), profiles);

    let drift = read("wire/drift.json");
    let reports: Vec<crate::control::DriftReport> =
        serde_json::from_value(drift.clone()).expect("drift");
    assert_eq!(reports.len(), 2);
    assert_eq!(serde_json::to_value(&reports).expect("json"), drift);
}

/// A manager started on the state dir of 83eecbd takes up its recordings
/// (their containers are gone: it writes their profiles), and its index
/// then holds the old entries and the new ones, with their facts.
#[tokio::test]
async fn a_manager_on_the_state_of_83eecbd_finishes_its_recordings() {
    let s = Setup::new();
    copy("state", &s.config.state_dir);
    copy("profiles", &s.config.profiles_dir);
    // The kernel kept the sets of two of them.
    for owner in [348, 386] {
        s.fake().enrol(owner, owner, "gone");
        s.fake().call(owner, "mkdir");
    }
    let mut m = s.manager();
    m.resume().await;
    assert!(m.recordings().is_empty(), "their cgroups are gone");
    let Outcome::Profiles(entries) = m.handle(Request::Profiles).await.expect("index") else {
        panic!("not the index");
    };
    assert_eq!(entries.len(), 8);
    let entry = |key| of(&entries, key, |e| &e.container);
    let nginx = entry(NGINX);
    assert_eq!(nginx.container.name.as_deref(), Some("shop/web/nginx"));
    assert_eq!(
        nginx.container.found.pod_uid.as_deref(),
        Some(NGINX_POD_UID)
    );
    assert_eq!(nginx.container.pod_namespace.as_deref(), Some("shop"));
    assert_eq!(allowed(&nginx.path), ["mkdir"]);
    assert_eq!(
        entry("fx83/fx-app").path,
        s.config.profiles_dir.join("fx83+fx-app.json")
    );
    assert_eq!(entry(WEB).container.image_id.as_deref(), Some(IMAGE_ID));
    // The drift the state kept went to the index with the profile.
    let watch = entry(WATCH).drift.as_ref().expect("drift");
    assert_eq!(
        outside_names(&watch.outside),
        ["chmod", "clock_nanosleep", "dup2"]
    );
    // ...and `drift` answers from the index, for old and new entries.
    for (name, outside) in [
        ("fx83-watch", &["chmod", "clock_nanosleep", "dup2"][..]),
        ("fx83-drift", &["chmod", "clock_nanosleep"][..]),
    ] {
        let req = Request::Drift {
            container: Some(name.to_owned()),
            widen: false,
        };
        let Ok(Outcome::Drift(d)) = m.handle(req).await else {
            panic!("no drift of {name}");
        };
        assert_eq!((d[0].name.as_deref(), d[0].running), (Some(name), false));
        assert_eq!(d[0].outside, outside);
    }
}
