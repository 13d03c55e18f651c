//! The import graph of the library crates, checked against the layer table
//! of docs/ARCHITECTURE.md: no module imports from a higher layer than its
//! own, and no two modules (files) import each other, directly or through
//! others. Test-only code (`#[cfg(test)]`, `tests/` directories) and the
//! binaries are left out: they sit above everything.
//!
//! A reference is a path starting with `crate`, `super` or `self`, or with
//! the name of a child module; it goes to the deepest module file it names,
//! through one `use` of that file (a re-export counts as the module it
//! re-exports from). A crate's own root (`lib.rs`) is never a target.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

use syn::visit::Visit;

/// A module of one crate, by its path (`daemon::manager`; the root is "").
type Module = String;

/// What one crate's sources say: every module file, what each imports
/// (name → the module it comes from), and which modules each refers to.
#[derive(Default)]
struct Crate {
    modules: BTreeSet<Module>,
    /// Names brought in by `use`, per module: name → the full path.
    uses: BTreeMap<Module, BTreeMap<String, Vec<String>>>,
    /// Every path each module refers to (already absolute, from the crate
    /// root), before resolution.
    paths: BTreeMap<Module, Vec<Vec<String>>>,
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// Collects the paths of one file.
struct Collector<'a> {
    module: &'a str,
    modules: &'a BTreeSet<Module>,
    paths: Vec<Vec<String>>,
    uses: BTreeMap<String, Vec<String>>,
}

impl Collector<'_> {
    /// `segments` made absolute (from the crate root), or `None` for a path
    /// into another crate or a local name.
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let mut base: Vec<String> = if self.module.is_empty() {
            Vec::new()
        } else {
            self.module.split("::").map(str::to_owned).collect()
        };
        let mut rest = segments;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("self") => rest = &rest[1..],
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            Some(first) => {
                let child = if base.is_empty() {
                    first.to_owned()
                } else {
                    format!("{}::{first}", base.join("::"))
                };
                if !self.modules.contains(&child) {
                    return None;
                }
            }
            None => return None,
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn add(&mut self, segments: &[String]) {
        if let Some(path) = self.absolute(segments) {
            self.paths.push(path);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                let mut full = prefix.clone();
                if name != "self" {
                    full.push(name.clone());
                }
                self.bind(full, if name == "self" { None } else { Some(name) });
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                if r.ident != "self" {
                    full.push(r.ident.to_string());
                }
                self.bind(full, Some(r.rename.to_string()));
            }
            syn::UseTree::Glob(_) => {
                let full = prefix.clone();
                self.bind(full, None);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn bind(&mut self, full: Vec<String>, name: Option<String>) {
        if let Some(path) = self.absolute(&full) {
            let name = name.or_else(|| path.last().cloned());
            if let Some(name) = name {
                self.uses.insert(name, path.clone());
            }
            self.paths.push(path);
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if !is_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    /// `pub(super)` and `pub(crate)` name no dependency.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.add(&segments);
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Paths inside macro calls (format!, matches!, …) are tokens to syn:
        // read `a::b::c` runs out of them.
        let mut run: Vec<String> = Vec::new();
        let mut colons = false;
        let flush = |run: &mut Vec<String>, this: &mut Self| {
            if run.len() > 1 {
                this.add(run);
            }
            run.clear();
        };
        let tokens: Vec<proc_macro2::TokenTree> = m.tokens.clone().into_iter().collect();
        let mut stack = vec![tokens];
        while let Some(tokens) = stack.pop() {
            for t in tokens {
                match t {
                    proc_macro2::TokenTree::Ident(i) => {
                        if !colons {
                            flush(&mut run, self);
                        }
                        run.push(i.to_string());
                        colons = false;
                    }
                    proc_macro2::TokenTree::Punct(p) if p.as_char() == ':' => colons = true,
                    proc_macro2::TokenTree::Group(g) => {
                        flush(&mut run, self);
                        stack.push(g.stream().into_iter().collect());
                    }
                    _ => {
                        flush(&mut run, self);
                        colons = false;
                    }
                }
            }
            flush(&mut run, self);
        }
        syn::visit::visit_macro(self, m);
    }
}

/// The module path of `rel` (`daemon/mod.rs` → `daemon`), or `None` for
/// what is not library code (binaries, test directories).
fn module_of(rel: &str) -> Option<Module> {
    let rel = rel.strip_suffix(".rs")?;
    let mut parts: Vec<&str> = rel.split('/').collect();
    if parts.first() == Some(&"bin") || parts.contains(&"tests") {
        return None;
    }
    if matches!(parts.last(), Some(&"mod") | Some(&"lib")) {
        parts.pop();
    }
    Some(parts.join("::"))
}

fn files(dir: &Path, rel: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir.join(rel))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if entry.file_type()?.is_dir() {
            files(dir, &path, out)?;
        } else if path.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn read_crate(src: &Path) -> anyhow::Result<Crate> {
    let mut rels = Vec::new();
    files(src, "", &mut rels)?;
    let mut krate = Crate::default();
    let sources: Vec<(Module, String)> = rels
        .iter()
        .filter_map(|rel| Some((module_of(rel)?, rel.clone())))
        .collect();
    krate.modules = sources.iter().map(|(m, _)| m.clone()).collect();
    for (module, rel) in &sources {
        let text = fs::read_to_string(src.join(rel))?;
        let file = syn::parse_file(&text).map_err(|e| anyhow::anyhow!("{rel}: {e}"))?;
        let mut c = Collector {
            module,
            modules: &krate.modules,
            paths: Vec::new(),
            uses: BTreeMap::new(),
        };
        c.visit_file(&file);
        krate.paths.insert(module.clone(), c.paths);
        krate.uses.insert(module.clone(), c.uses);
    }
    Ok(krate)
}

impl Crate {
    /// The module an absolute path lands in: the deepest module file it
    /// names, followed through that file's `use` of the next segment.
    fn target(&self, path: &[String], depth: usize) -> Option<Module> {
        let mut module = String::new();
        let mut i = 0;
        while i < path.len() {
            let next = if module.is_empty() {
                path[i].clone()
            } else {
                format!("{module}::{}", path[i])
            };
            if !self.modules.contains(&next) {
                break;
            }
            module = next;
            i += 1;
        }
        if let (Some(name), true) = (path.get(i), depth < 8)
            && let Some(via) = self.uses.get(&module).and_then(|u| u.get(name))
        {
            let mut again = via.clone();
            again.extend(path[i + 1..].iter().cloned());
            if again != path
                && let Some(t) = self.target(&again, depth + 1)
            {
                return Some(t);
            }
        }
        (!module.is_empty()).then_some(module)
    }

    /// Which modules each module refers to (itself and its own children's
    /// declarations left out).
    fn edges(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut edges = BTreeMap::new();
        for (from, paths) in &self.paths {
            let to: BTreeSet<Module> = paths
                .iter()
                .filter_map(|p| self.target(p, 0))
                .filter(|t| t != from)
                .collect();
            edges.insert(from.clone(), to);
        }
        edges
    }
}

/// Every cycle of modules, each once (as the strongly connected components
/// of more than one module).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    // Kosaraju: order by finish time, then walk the reversed graph.
    fn finish<'a>(
        n: &'a str,
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        seen: &mut BTreeSet<&'a str>,
        order: &mut Vec<&'a str>,
    ) {
        if !seen.insert(n) {
            return;
        }
        for m in edges.get(n).into_iter().flatten() {
            finish(m, edges, seen, order);
        }
        order.push(n);
    }
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for n in edges.keys() {
        finish(n, edges, &mut seen, &mut order);
    }
    let mut reverse: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, tos) in edges {
        for to in tos {
            reverse.entry(to.as_str()).or_default().push(from.as_str());
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for n in order.into_iter().rev() {
        if assigned.contains(n) {
            continue;
        }
        let mut component = Vec::new();
        let mut stack = vec![n];
        while let Some(m) = stack.pop() {
            if !assigned.insert(m) {
                continue;
            }
            component.push(m.to_owned());
            stack.extend(reverse.get(m).into_iter().flatten());
        }
        if component.len() > 1 {
            component.sort();
            out.push(component);
        }
    }
    out
}

/// The layer of each top-level module, lowest first, from the numbered
/// list under "Layers, lowest first" in docs/ARCHITECTURE.md: every
/// backquoted `name.rs` or `name/` of an item.
fn layer_table(architecture: &str) -> anyhow::Result<BTreeMap<String, usize>> {
    let start = architecture
        .find("Layers, lowest first")
        .ok_or_else(|| anyhow::anyhow!("no \"Layers, lowest first\" in the page"))?;
    let mut layers = BTreeMap::new();
    let mut layer = 0;
    for line in architecture[start..].lines().skip(1) {
        let trimmed = line.trim_start();
        if trimmed.starts_with('|') {
            break;
        }
        if let Some((n, _)) = trimmed.split_once(". ")
            && let Ok(n) = n.parse::<usize>()
        {
            layer = n;
        }
        if layer == 0 {
            continue;
        }
        for (i, quoted) in trimmed.split('`').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            let name = quoted
                .strip_suffix(".rs")
                .or_else(|| quoted.strip_suffix('/'))
                .filter(|n| !n.contains('/') && !n.is_empty());
            if let Some(name) = name {
                layers.insert(name.to_owned(), layer);
            }
        }
    }
    anyhow::ensure!(
        layers.len() > 10,
        "too few modules in the layer list: {layers:?}"
    );
    Ok(layers)
}

/// What is wrong with one crate's imports: cycles, and (with a layer table)
/// modules without a layer and imports from a higher layer.
fn problems(src: &Path, layers: Option<&BTreeMap<String, usize>>) -> anyhow::Result<Vec<String>> {
    let krate = read_crate(src)?;
    let edges = krate.edges();
    let mut problems: Vec<String> = cycles(&edges)
        .into_iter()
        .map(|c| format!("import circle: {}", c.join(" <-> ")))
        .collect();
    let Some(layers) = layers else {
        return Ok(problems);
    };
    let top = |m: &str| m.split("::").next().unwrap_or(m).to_owned();
    for module in &krate.modules {
        let t = top(module);
        if !t.is_empty() && !layers.contains_key(&t) {
            problems.push(format!("{t} has no layer in docs/ARCHITECTURE.md"));
        }
    }
    for (from, tos) in &edges {
        for to in tos {
            let (f, t) = (top(from), top(to));
            if let (Some(lf), Some(lt)) = (layers.get(&f), layers.get(&t))
                && lt > lf
            {
                problems.push(format!(
                    "{from} (layer {lf}) imports {to} (layer {lt}): upward"
                ));
            }
        }
    }
    problems.dedup();
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges_of(files: &[(&str, &str)]) -> BTreeMap<Module, BTreeSet<Module>> {
        let dir = std::env::temp_dir().join(format!("xtask-layers-{}", std::process::id()));
        _ = fs::remove_dir_all(&dir);
        for (rel, text) in files {
            let path = dir.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let edges = read_crate(&dir).unwrap().edges();
        fs::remove_dir_all(&dir).unwrap();
        edges
    }

    /// The checker itself: it sees `crate::`, `super::`, child-module and
    /// macro paths, follows re-exports, and skips test code.
    #[test]
    fn the_checker_sees_circles_and_follows_reexports() {
        let edges = edges_of(&[
            ("lib.rs", "pub mod a; pub mod b; pub mod d;"),
            ("a.rs", "pub fn f() { crate::b::g(); }"),
            ("b.rs", "use crate::a::f; pub fn g() {}"),
            (
                "d/mod.rs",
                "mod e; mod f; pub use e::E; pub fn top() { f::x(); }",
            ),
            ("d/e.rs", "pub struct E; impl E { pub(super) fn new() {} }"),
            (
                "d/f.rs",
                "pub fn x() { let _ = format!(\"{}\", super::E::default()); }\n\
                 #[cfg(test)] mod tests { use crate::a::f; }",
            ),
        ]);
        let circles = cycles(&edges);
        assert_eq!(circles, vec![vec!["a".to_owned(), "b".to_owned()]]);
        // super::E is d::e through d's re-export, so d <-> d::f is no circle.
        assert_eq!(edges["d::f"], BTreeSet::from(["d::e".to_owned()]));
        assert_eq!(
            edges["d"],
            BTreeSet::from(["d::e".to_owned(), "d::f".to_owned()])
        );
    }

    /// No import circle and no upward import among the library's modules
    /// (issue 27), by the layer table of docs/ARCHITECTURE.md.
    #[test]
    fn no_import_circle_and_no_upward_import() {
        let root = crate::workspace_root();
        let page = fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
        let layers = layer_table(&page).unwrap();
        let mut all = problems(&root.join("recorder/src"), Some(&layers)).unwrap();
        for krate in ["recorder-profile", "recorder-api"] {
            let src = root.join(krate).join("src");
            if src.is_dir() {
                all.extend(
                    problems(&src, None)
                        .unwrap()
                        .into_iter()
                        .map(|p| format!("{krate}: {p}")),
                );
            }
        }
        assert!(all.is_empty(), "{}", all.join("\n"));
    }
}
