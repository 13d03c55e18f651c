//! The layout of the `cgroup:cgroup_mkdir` tracepoint record, which
//! `cgroup_mkdir` and `cgroup_rmdir` read at offsets set at load time.

use std::path::Path;

use super::error::KernelError;

/// Offsets of the `cgroup:cgroup_mkdir` record fields, from tracefs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupTpFormat {
    pub root: u32,
    pub id: u32,
    pub path: u32,
    /// The new cgroup's depth (the root's is 0).
    pub level: u32,
}

impl CgroupTpFormat {
    /// Parses `events/cgroup/cgroup_mkdir/format`.
    pub fn parse(text: &str) -> Option<Self> {
        let field = |name: &str| {
            text.lines().find_map(|l| {
                let l = l.trim();
                let decl = l.strip_prefix("field:")?.split(';').next()?;
                if !decl.ends_with(&format!(" {name}")) && !decl.ends_with(&format!(" {name}[]")) {
                    return None;
                }
                l.split(';')
                    .find_map(|p| p.trim().strip_prefix("offset:"))
                    .and_then(|v| v.parse().ok())
            })
        };
        Some(Self {
            root: field("root")?,
            id: field("id")?,
            path: field("path")?,
            level: field("level")?,
        })
    }

    pub(super) fn read(tracefs: &Path) -> Result<Self, KernelError> {
        let path = tracefs.join("events/cgroup/cgroup_mkdir/format");
        let text = std::fs::read_to_string(&path).map_err(|e| KernelError::Format {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).ok_or(KernelError::Format {
            path,
            reason: "fields root, id, level and path not found".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_mkdir_format() {
        let text = "name: cgroup_mkdir\nID: 544\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
            \tfield:int root;\toffset:8;\tsize:4;\tsigned:1;\n\
            \tfield:int level;\toffset:12;\tsize:4;\tsigned:1;\n\
            \tfield:u64 id;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:__data_loc char[] path;\toffset:24;\tsize:4;\tsigned:0;\n\n\
            print fmt: \"root=%d id=%llu level=%d path=%s\", REC->root, REC->id\n";
        assert_eq!(
            CgroupTpFormat::parse(text),
            Some(CgroupTpFormat {
                root: 8,
                id: 16,
                path: 24,
                level: 12,
            })
        );
        assert_eq!(
            CgroupTpFormat::parse("format:\n\tfield:int root;\toffset:8;\n"),
            None
        );
    }
}
