//! Image profiles: every recorded container of an image adds its profile
//! (as written, with its recording-time policy's answers) to the image's
//! merged profile, whose `ready` verdict says when it is fit to enforce.
//! This module is their one home, behind [`ImageBook`]: the rows and the
//! key of an image (`keys.rs`, `row.rs`), their storage in the profile
//! index (`store.rs`), their files `<profiles-dir>/images/<file>.json` and
//! the retention of per-container files (`files.rs`), and `[images]`
//! (`config.rs`). The daemon calls the book on its blocking pool
//! (`daemon/images.rs`).

mod book;
mod config;
mod error;
mod files;
mod keys;
mod row;
mod store;

pub use book::{Added, ImageBook, Rewritten, Written};
pub use config::ImagesConfig;
pub use error::ImagesError;
pub use keys::{
    ImageKey, KeyedBy, file_name, file_stem, is_id_prefix, key, normalise, short_id, shown, unmark,
};
pub use recorder_api::image::ReadyRule;
pub use row::{ImageInfo, ImageRow, Start, find, syscalls};
