//! recorderctl's text tables (`list`, `profiles`, `images`): every cell
//! escaped, since names, images and paths come from containers, and a
//! cell longer than its column's limit cut with an ellipsis, unless the
//! table is wide (`--wide`; `-o json` has every value whole).

use std::io::{self, Write};

/// What a column is at most wide, but for the last one (never cut).
pub const MAX_CELL: usize = 40;

pub use crate::escape::escape;

/// `s` escaped, and cut to `width` characters, the last one an ellipsis,
/// when longer.
pub fn cell(s: &str, width: usize) -> String {
    let escaped = escape(s);
    if escaped.chars().count() <= width || width == 0 {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

/// A column: its header and whether it is right-aligned (numbers).
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub header: &'static str,
    pub right: bool,
}

/// A left-aligned column.
pub const fn left(header: &'static str) -> Column {
    Column {
        header,
        right: false,
    }
}

/// A right-aligned column.
pub const fn right(header: &'static str) -> Column {
    Column {
        header,
        right: true,
    }
}

/// Writes `rows` under `columns`, one space apart: each column as wide as
/// its widest cell, cells cut at [`MAX_CELL`] unless `wide`; the last
/// column is neither padded nor cut.
pub fn write(
    w: &mut impl Write,
    columns: &[Column],
    rows: &[Vec<String>],
    wide: bool,
) -> io::Result<()> {
    let last = columns.len().saturating_sub(1);
    let limit = |i: usize| {
        if wide || i == last {
            usize::MAX
        } else {
            MAX_CELL
        }
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, c)| cell(c, limit(i)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .filter_map(|r| r.get(i))
                .map(|s| s.chars().count())
                .chain([c.header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |w: &mut dyn Write, row: &[&str]| -> io::Result<()> {
        let mut text = String::new();
        for (i, (c, s)) in columns.iter().zip(row).enumerate() {
            if i > 0 {
                text.push(' ');
            }
            let width = widths[i];
            if i == last {
                text.push_str(s);
            } else if c.right {
                text.push_str(&format!("{s:>width$}"));
            } else {
                text.push_str(&format!("{s:<width$}"));
            }
        }
        writeln!(w, "{text}")
    };
    let headers: Vec<&str> = columns.iter().map(|c| c.header).collect();
    line(w, &headers)?;
    for row in &cells {
        let row: Vec<&str> = row.iter().map(String::as_str).collect();
        line(w, &row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_cut_with_an_ellipsis_and_stay_escaped() {
        assert_eq!(cell("short", 10), "short");
        assert_eq!(cell("abcdefghijkl", 5), "abcd…");
        // Escaped first, then cut: no raw control character survives.
        let cut = cell("\x1b\x1b\x1b\x1b", 8);
        assert_eq!(cut, "\\u{1b}\\…");
        assert!(!cut.contains('\x1b'));
    }

    #[test]
    fn columns_fit_their_cells_and_long_ones_are_cut_unless_wide() {
        let long = "r".repeat(130);
        let rows = vec![
            vec![long.clone(), "1".to_owned(), "yes".to_owned()],
            vec![
                "app:1".to_owned(),
                "12".to_owned(),
                "no: 2/5 runs".to_owned(),
            ],
        ];
        let cols = [left("IMAGE"), right("RUNS"), left("READY")];
        let mut out = Vec::new();
        write(&mut out, &cols, &rows, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cut = format!("{}…", "r".repeat(MAX_CELL - 1));
        assert_eq!(lines[0], format!("{:<MAX_CELL$} RUNS READY", "IMAGE"));
        assert_eq!(lines[1], format!("{cut}    1 yes"));
        assert_eq!(
            lines[2],
            format!("{:<MAX_CELL$}   12 no: 2/5 runs", "app:1")
        );
        let mut out = Vec::new();
        write(&mut out, &cols, &rows, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().nth(1).unwrap().starts_with(&long), "{text}");
    }
}
