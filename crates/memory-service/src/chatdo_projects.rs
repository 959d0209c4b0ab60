//! ChatDO's own `server/data/projects.json`, read and (on `DELETE /sources/{id}`)
//! edited the way the original service did. ChatDO's backend owns that file: we
//! only read project names for `connected_projects`, and remove a deleted source's
//! id from each project's `memory_sources`. The edit removes exactly the bytes of
//! that array element (and its comma): every other byte of the backend's file
//! stays as it was, formatting included, and the file is replaced atomically
//! (temporary file in the same directory, fsync, rename), so the backend never
//! reads half a file. (The original re-serialised the whole file with
//! `json.dump(indent=2)`; keeping the backend's bytes is the safer choice.)
//!
//! The file is a JSON array of projects: `{"id", "name", "memory_sources": [ids],
//! ...}` (api.md A.2.2, chatdo-data.md). A missing file means "no projects"; an
//! unreadable or malformed one is an error the caller logs, as the original did.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use jsonc_parser::ast::{Array, ObjectPropName, Value as Ast};
use jsonc_parser::common::Ranged;
use serde_json::Value;

/// What can go wrong with ChatDO's projects file.
#[derive(Debug, thiserror::Error)]
pub enum ProjectsError {
    /// Reading, writing or renaming failed.
    #[error("{action} {path}: {cause}")]
    Io {
        /// What we were doing ("reading", "writing", "replacing").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error, embedded in the message (not a `source()`: the
        /// message is logged with `%e`, which shows no chain).
        cause: std::io::Error,
    },
    /// The file is not a JSON array of projects.
    #[error("{path} is not ChatDO's projects file (a JSON array of projects): {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

fn read(path: &Path) -> Result<Option<String>, ProjectsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(ProjectsError::Io {
            action: "reading",
            path: path.to_path_buf(),
            cause,
        }),
    }
}

fn malformed(path: &Path, why: impl Into<String>) -> ProjectsError {
    ProjectsError::Malformed {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

fn projects(path: &Path, text: &str) -> Result<Vec<Value>, ProjectsError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err(malformed(path, "the top level is not an array")),
        Err(e) => Err(malformed(path, e.to_string())),
    }
}

/// Source id -> names of the projects whose `memory_sources` hold it, in file order.
/// A project's name is its `name`, else its `id`, else `"Unknown"` (the original's
/// rule). A missing file gives an empty map.
pub fn connected_projects(path: &Path) -> Result<HashMap<String, Vec<String>>, ProjectsError> {
    let Some(text) = read(path)? else {
        return Ok(HashMap::new());
    };
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for p in projects(path, &text)? {
        let name = p
            .get("name")
            .or_else(|| p.get("id"))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "Unknown".into());
        let ids = p.get("memory_sources").and_then(Value::as_array);
        for id in ids.into_iter().flatten().filter_map(Value::as_str) {
            map.entry(id.to_string()).or_default().push(name.clone());
        }
    }
    Ok(map)
}

/// Byte ranges to cut from `array` so that the elements equal to the string `id`
/// disappear with their separating commas; the rest of the text is untouched.
fn cuts(array: &Array<'_>, id: &str) -> Vec<(usize, usize)> {
    let els = &array.elements;
    let gone: Vec<bool> = els
        .iter()
        .map(|e| matches!(e, Ast::StringLit(s) if s.value == id))
        .collect();
    if !gone.contains(&true) {
        return Vec::new();
    }
    let Some(first_kept) = gone.iter().position(|g| !g) else {
        // Every element goes: the array becomes `[]`.
        let r = array.range();
        return vec![(r.start + 1, r.end - 1)];
    };
    let mut out = Vec::new();
    for (i, _) in gone.iter().enumerate().filter(|(_, g)| **g) {
        if i < first_kept {
            // Leading elements: the element, its comma and the space up to the next one.
            out.push((els[i].range().start, els[i + 1].range().start));
        } else {
            // Later ones: from the end of the previous element (its comma) to its end.
            out.push((els[i - 1].range().end, els[i].range().end));
        }
    }
    out
}

/// Removes `source_id` from every project's `memory_sources` in ChatDO's projects
/// file, changing no other byte, and replaces the file atomically. Returns how many
/// entries were removed (0: the file is missing or never named it, and is not
/// rewritten).
pub fn remove_source(path: &Path, source_id: &str) -> Result<usize, ProjectsError> {
    let Some(text) = read(path)? else {
        return Ok(0);
    };
    // Strict JSON first (what ChatDO's `json.load` accepts), then the positions.
    projects(path, &text)?;
    let parsed = jsonc_parser::parse_to_ast(
        &text,
        &jsonc_parser::CollectOptions {
            comments: jsonc_parser::CommentCollectionStrategy::Off,
            tokens: false,
        },
        &jsonc_parser::ParseOptions::default(),
    )
    .map_err(|e| malformed(path, e.to_string()))?;
    let Some(Ast::Array(top)) = parsed.value else {
        return Err(malformed(path, "the top level is not an array"));
    };
    let mut ranges = Vec::new();
    let mut removed = 0;
    for project in &top.elements {
        let Ast::Object(obj) = project else { continue };
        for prop in &obj.properties {
            let name = match &prop.name {
                ObjectPropName::String(s) => s.value.as_ref(),
                ObjectPropName::Word(w) => w.value,
            };
            if name != "memory_sources" {
                continue;
            }
            if let Ast::Array(ids) = &prop.value {
                removed += ids
                    .elements
                    .iter()
                    .filter(|e| matches!(e, Ast::StringLit(s) if s.value == source_id))
                    .count();
                ranges.extend(cuts(ids, source_id));
            }
        }
    }
    if removed == 0 {
        return Ok(0);
    }
    ranges.sort_unstable();
    let mut edited = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in ranges {
        edited.push_str(&text[at..start]);
        at = end;
    }
    edited.push_str(&text[at..]);
    replace_atomically(path, edited.as_bytes())?;
    Ok(removed)
}

/// Writes `bytes` to a temporary file beside `path` (same permissions), fsyncs it,
/// renames it over `path` and fsyncs the directory.
fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProjectsError> {
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |cause| ProjectsError::Io {
            action,
            path: p,
            cause,
        }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("writing", &tmp)(e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("replacing", path)(e));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"[
  {
    "id": "11111111-1111-4111-8111-111111111111",
    "name": "Alpha",
    "memory_sources": ["docs-dir", "x-dir",   "docs-dir"],
    "trashed": false
  },
  {"id": "p2", "memory_sources": [ "docs-dir" ], "name": "Béta"},
  {"id": "p3", "memory_sources": [
      "docs-dir",
      "y-dir"
  ]},
  {"memory_sources": ["x-dir"]}
]
"#;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("projects.json");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn names_by_source() {
        let (_d, p) = file(FILE);
        let m = connected_projects(&p).unwrap();
        assert_eq!(m["docs-dir"], ["Alpha", "Alpha", "Béta", "p3"]);
        assert_eq!(m["x-dir"], ["Alpha", "Unknown"]);
        assert_eq!(m["y-dir"], ["p3"]);
        assert!(
            connected_projects(&p.with_file_name("none.json"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn removal_touches_only_the_id() {
        let (_d, p) = file(FILE);
        assert_eq!(remove_source(&p, "docs-dir").unwrap(), 4);
        let want = FILE
            .replace(r#"["docs-dir", "x-dir",   "docs-dir"]"#, r#"["x-dir"]"#)
            .replace(r#"[ "docs-dir" ]"#, "[]")
            .replace("[\n      \"docs-dir\",\n      \"y-dir\"", "[\n      \"y-dir\"");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), want);
        let m = connected_projects(&p).unwrap();
        assert!(!m.contains_key("docs-dir"));
        // Nothing to remove: the file is not rewritten.
        let before = std::fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(remove_source(&p, "docs-dir").unwrap(), 0);
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), before);
        assert_eq!(
            std::fs::read_dir(p.parent().unwrap()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn escaped_ids_and_last_elements() {
        let (_d, p) = file("[{\"memory_sources\":[\"a\",\"\\u0062-dir\"]}]");
        assert_eq!(remove_source(&p, "b-dir").unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "[{\"memory_sources\":[\"a\"]}]"
        );
    }

    #[test]
    fn malformed_files_are_errors_and_stay_untouched() {
        for text in [
            "{\"memory_sources\": [\"a\"]}",
            "[{\"memory_sources\": [\"a\",]}]",
            "not json",
        ] {
            let (_d, p) = file(text);
            assert!(
                matches!(remove_source(&p, "a"), Err(ProjectsError::Malformed { .. })),
                "{text}"
            );
            assert!(connected_projects(&p).is_err(), "{text}");
            assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
        }
    }
}
