//! Just enough of a BTF reader to find a struct member's offset in the
//! running kernel, so that the eBPF program can read `task_struct` fields
//! without CO-RE (which aya does not do for Rust programs).
//!
//! Why not a crate: aya-obj parses BTF but keeps its type lookups
//! crate-private; btf-rs is LGPL-2.1, which our MIT/Apache licence does not
//! want to link statically. The format is small and stable (uapi btf.h).

use std::{fs, io, path::Path};

/// The default location of the kernel's BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "no BTF at {path} ({err}); the kernel needs CONFIG_DEBUG_INFO_BTF=y, or pass a BTF file for this kernel with --btf"
    )]
    Missing { path: String, err: io::Error },
    #[error("malformed BTF in {path}: {reason}")]
    Malformed { path: String, reason: &'static str },
    #[error("BTF in {path} has no member {member} in struct {ty}")]
    NoMember {
        path: String,
        ty: String,
        member: String,
    },
}

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

struct Type {
    name: u32,
    kind: u32,
    /// size, or the referenced type id
    size_or_type: u32,
    members: Vec<Member>,
}

/// Parsed kernel BTF (types and strings only).
pub struct Btf {
    path: String,
    strings: Vec<u8>,
    /// Index 0 is the void type.
    types: Vec<Type>,
}

impl Btf {
    /// Reads and parses a BTF file.
    pub fn read(path: &Path) -> Result<Self, BtfError> {
        let p = path.display().to_string();
        let data = fs::read(path).map_err(|source| BtfError::Missing {
            path: p.clone(),
            err: source,
        })?;
        Self::parse(p, &data)
    }

    fn parse(path: String, data: &[u8]) -> Result<Self, BtfError> {
        let bad = |reason| BtfError::Malformed {
            path: path.clone(),
            reason,
        };
        let u32_at = |off: usize| -> Result<u32, BtfError> {
            data.get(off..off + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| bad("truncated"))
        };
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != 0xeb9f {
            return Err(bad("bad magic (only little-endian BTF is supported)"));
        }
        let hdr_len = u32_at(4)? as usize;
        let type_off = u32_at(8)? as usize;
        let type_len = u32_at(12)? as usize;
        let str_off = u32_at(16)? as usize;
        let str_len = u32_at(20)? as usize;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or_else(|| bad("string section out of bounds"))?
            .to_vec();
        let mut types = vec![Type {
            name: 0,
            kind: 0,
            size_or_type: 0,
            members: Vec::new(),
        }];
        let mut off = hdr_len + type_off;
        let end = off + type_len;
        if end > data.len() {
            return Err(bad("type section out of bounds"));
        }
        while off < end {
            let name = u32_at(off)?;
            let info = u32_at(off + 4)?;
            let size_or_type = u32_at(off + 8)?;
            off += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = off + i * 12;
                        let raw = u32_at(m + 8)?;
                        members.push(Member {
                            name: u32_at(m)?,
                            ty: u32_at(m + 4)?,
                            bit_offset: if kind_flag { raw & 0x00ff_ffff } else { raw },
                        });
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                _ => 0,
            };
            off += extra;
            types.push(Type {
                name,
                kind,
                size_or_type,
                members,
            });
        }
        Ok(Self {
            path,
            strings,
            types,
        })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    /// Skips typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// The byte offset of `path` (e.g. ["thread_info", "status"]) within the
    /// struct named `ty`.
    pub fn member_offset(&self, ty: &str, path: &[&str]) -> Result<u32, BtfError> {
        let no_member = |member: &str| BtfError::NoMember {
            path: self.path.clone(),
            ty: ty.to_owned(),
            member: member.to_owned(),
        };
        let mut cur = self
            .types
            .iter()
            .find(|t| t.kind == KIND_STRUCT && self.name(t.name) == ty.as_bytes())
            .ok_or_else(|| no_member(path.first().copied().unwrap_or_default()))?;
        let mut bits = 0u32;
        for member in path {
            let m = cur
                .members
                .iter()
                .find(|m| self.name(m.name) == member.as_bytes())
                .ok_or_else(|| no_member(member))?;
            bits += m.bit_offset;
            cur = self.resolve(m.ty).ok_or_else(|| no_member(member))?;
        }
        Ok(bits / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_a_clear_error() {
        let Err(err) = Btf::read(Path::new("/nonexistent/vmlinux")) else {
            panic!("expected an error");
        };
        assert!(err.to_string().contains("CONFIG_DEBUG_INFO_BTF"));
    }

    #[test]
    fn kernel_thread_info_status() {
        // Every test machine of this project has kernel BTF.
        let btf = Btf::read(Path::new(VMLINUX)).unwrap();
        let off = btf.member_offset("task_struct", &["thread_info", "status"]);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(off.unwrap(), 16);
        _ = off;
        assert!(
            btf.member_offset("task_struct", &["no_such_member"])
                .is_err()
        );
    }
}
