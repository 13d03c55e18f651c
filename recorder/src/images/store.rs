//! The image rows, kept in the profile index's database beside its
//! entries: the table `images`, image key → the JSON of its [`ImageRow`]
//! (the same table and JSON as ever, so an older index loads unchanged).

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{ImageRow, ImagesError};
use crate::index::Index;

/// Image key → the JSON of its [`ImageRow`].
const IMAGES: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("images");

/// The image rows of an open index.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rows<'a>(&'a Index);

impl<'a> Rows<'a> {
    /// The rows of `index` (see [`Rows::create`]).
    pub(super) fn of(index: &'a Index) -> Self {
        Self(index)
    }

    /// Creates the table of the rows if it is new; once, when the index
    /// is opened.
    pub(super) fn create(&self) -> Result<(), ImagesError> {
        let tx = self.0.database().begin_write().map_err(|e| self.err(e))?;
        tx.open_table(IMAGES).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn err(&self, e: impl Into<redb::Error>) -> ImagesError {
        ImagesError::Store {
            path: self.0.path().to_owned(),
            source: Box::new(e.into()),
        }
    }

    /// Every row (a malformed one is skipped).
    pub(super) fn all(&self) -> Result<Vec<ImageRow>, ImagesError> {
        let tx = self.0.database().begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(IMAGES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (_, v) = row.map_err(|e| self.err(e))?;
            match serde_json::from_slice::<ImageRow>(v.value()) {
                Ok(r) => out.push(r),
                Err(e) => log::warn!("profile index: skipping a malformed image row: {e}"),
            }
        }
        Ok(out)
    }

    /// The row of image `key`.
    pub(super) fn get(&self, key: &str) -> Result<Option<ImageRow>, ImagesError> {
        let tx = self.0.database().begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(IMAGES).map_err(|e| self.err(e))?;
        let v = t.get(key).map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    /// Stores (replaces) `row`, and forgets the rows it took over, in one
    /// transaction.
    pub(super) fn put(&self, row: &ImageRow, taken_over: &[ImageRow]) -> Result<(), ImagesError> {
        let json = serde_json::to_vec(row).unwrap_or_default();
        let tx = self.0.database().begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(IMAGES).map_err(|e| self.err(e))?;
            for old in taken_over {
                t.remove(old.key.as_str()).map_err(|e| self.err(e))?;
            }
            t.insert(row.key.as_str(), json.as_slice())
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forgets the rows last seen before `older_than`; returns them.
    pub(super) fn expire(&self, older_than: u64) -> Result<Vec<ImageRow>, ImagesError> {
        let old: Vec<ImageRow> = self
            .all()?
            .into_iter()
            .filter(|r| r.last_seen < older_than)
            .collect();
        if old.is_empty() {
            return Ok(old);
        }
        let tx = self.0.database().begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(IMAGES).map_err(|e| self.err(e))?;
            for r in &old {
                t.remove(r.key.as_str()).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::key;

    #[test]
    fn rows_are_stored_replaced_taken_over_and_expired() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let rows = Rows::of(&index);
        rows.create().unwrap();
        let mut row = ImageRow::new(&key(Some("a"), Some("sha256:1"), None).unwrap(), 5);
        rows.put(&row, &[]).unwrap();
        row.runs = 3;
        rows.put(&row, &[]).unwrap();
        assert_eq!(rows.get("sha256:1").unwrap(), Some(row.clone()));
        assert_eq!(rows.all().unwrap(), [row.clone()]);
        let other = ImageRow::new(&key(None, None, Some("web")).unwrap(), 5);
        rows.put(&other, &[]).unwrap();
        rows.put(&row, std::slice::from_ref(&other)).unwrap();
        assert_eq!(rows.all().unwrap(), [row]);
        assert_eq!(rows.expire(5).unwrap().len(), 0);
        assert_eq!(rows.expire(6).unwrap().len(), 1);
        assert!(rows.all().unwrap().is_empty());
    }
}
