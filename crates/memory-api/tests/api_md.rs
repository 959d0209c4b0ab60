//! The contract ChatDO depends on is `shared/design/api.md`. This test reads
//! it, takes its endpoint index (table A.1), and for every endpoint checks
//! that each key the page names for its response (and request, or query)
//! exists in the OpenAPI document generated from our types, and that response
//! keys are required (always sent, `null` when empty). The key lists below
//! are transcribed from api.md; each key is also checked to appear in the
//! endpoint's section of the page, so a transcription slip fails too, and an
//! endpoint added to the page without keys here fails.
//!
//! The page is read from `../../../shared/design/api.md` relative to this
//! crate (the checkout sits beside `shared/`), or from the file named by
//! `MEMORY_API_DESIGN_DOC` (for checkouts elsewhere, e.g. a worktree).

use serde_json::Value;

/// Keys api.md names for one endpoint. A key path is dotted: `sources.id`
/// means the `id` of an item of the `sources` list.
struct Keys {
    method: &'static str,
    /// As api.md's table writes it.
    path: &'static str,
    /// The api.md sections the keys are named in (headings' first words,
    /// e.g. `A.2.2` or `Our decisions`).
    sections: &'static [&'static str],
    /// Keys of the request body, or of the query for a GET.
    request: &'static [&'static str],
    /// Keys of the 200 response body.
    response: &'static [&'static str],
}

const SOURCE: &[&str] = &[
    "id",
    "display_name",
    "root_path",
    "status",
    "files_indexed",
    "bytes_indexed",
    "last_index_started_at",
    "last_index_completed_at",
    "last_error",
    "project_id",
    "latest_job",
    "latest_job.id",
    "latest_job.status",
    "latest_job.files_total",
    "latest_job.files_processed",
    "latest_job.bytes_processed",
    "latest_job.started_at",
    "latest_job.completed_at",
    "latest_job.error",
];

const ENDPOINTS: &[Keys] = &[
    Keys {
        method: "GET",
        path: "/health",
        sections: &["A.2.1", "Our decisions"],
        request: &[],
        response: &[
            "status",
            "service",
            "pid",
            "instance_id",
            "version",
            "port",
            "home",
            "started_at",
            "uptime_s",
            "state",
            "reasons",
        ],
    },
    Keys {
        method: "GET",
        path: "/sources",
        sections: &["A.2.2"],
        request: &[],
        // `sources.` + SOURCE, and connected_projects; built in `keys_of`.
        response: &["sources", "sources.connected_projects"],
    },
    Keys {
        method: "POST",
        path: "/sources",
        sections: &["A.2.3"],
        request: &["root_path", "display_name", "project_id"],
        response: &[
            "status",
            "source_id",
            "display_name",
            "root_path",
            "project_id",
            "files_indexed",
            "bytes_indexed",
            "job_id",
        ],
    },
    Keys {
        method: "DELETE",
        path: "/sources/{source_id}",
        sections: &["A.2.4"],
        request: &[],
        response: &["status", "message"],
    },
    Keys {
        method: "POST",
        path: "/reindex",
        sections: &["A.2.5"],
        request: &["source_id"],
        response: &["status", "files_indexed", "bytes_indexed", "job_id", "source_id"],
    },
    Keys {
        method: "GET",
        path: "/sources/{source_id}/status",
        // "The same object as a /sources element, without connected_projects."
        sections: &["A.2.6", "A.2.2"],
        request: &[],
        response: SOURCE,
    },
    Keys {
        method: "GET",
        path: "/sources/{source_id}/jobs",
        sections: &["A.2.7"],
        request: &["limit"],
        response: &[
            "jobs",
            "jobs.id",
            "jobs.source_id",
            "jobs.status",
            "jobs.started_at",
            "jobs.completed_at",
            "jobs.files_total",
            "jobs.files_processed",
            "jobs.bytes_processed",
            "jobs.error",
        ],
    },
    Keys {
        method: "GET",
        path: "/sources/{source_id}/chunk-stats",
        sections: &["A.2.8"],
        request: &[],
        response: &[
            "source_id",
            "total_chunks",
            "unique_chunks",
            "duplicate_rate",
            "avg_chunk_size",
            "min_chunk_size",
            "max_chunk_size",
            "total_files",
            "size_distribution",
            "size_distribution.range",
            "size_distribution.count",
        ],
    },
    Keys {
        method: "POST",
        path: "/search",
        sections: &["A.2.9"],
        request: &[
            "project_id",
            "query",
            "limit",
            "source_ids",
            "chat_id",
            "exclude_chat_ids",
        ],
        response: &[
            "results",
            "results.score",
            "results.project_id",
            "results.source_id",
            "results.file_path",
            "results.filetype",
            "results.chunk_index",
            "results.text",
            "results.start_char",
            "results.end_char",
            "results.source_type",
            "results.chat_id",
            "results.message_id",
            "results.message_uuid",
        ],
    },
    Keys {
        method: "POST",
        path: "/index-chat-message",
        sections: &["A.2.10"],
        request: &[
            "project_id",
            "chat_id",
            "message_id",
            "role",
            "content",
            "timestamp",
            "message_index",
            "message_uuid",
        ],
        response: &["status", "message", "job_id", "message_uuid"],
    },
    Keys {
        method: "GET",
        path: "/index-job-status/{job_id}",
        sections: &["A.2.11"],
        request: &[],
        response: &[
            "job_id",
            "state",
            "enqueue_time",
            "start_time",
            "end_time",
            "duration",
            "estimated_chunks",
            "computed_timeout",
            "error_message",
            "message_uuid",
        ],
    },
    Keys {
        method: "DELETE",
        path: "/chats/{project_id}/{chat_id}",
        sections: &["A.2.12"],
        request: &[],
        response: &["status", "message", "deleted_count"],
    },
    Keys {
        method: "POST",
        path: "/search-facts",
        sections: &["A.2.13"],
        request: &["project_id", "query", "limit", "exclude_message_uuid"],
        response: &[
            "facts",
            "facts.fact_id",
            "facts.project_id",
            "facts.fact_key",
            "facts.value_text",
            "facts.value_type",
            "facts.confidence",
            "facts.source_message_uuid",
            "facts.created_at",
            "facts.effective_at",
            "facts.supersedes_fact_id",
            "facts.is_current",
        ],
    },
    Keys {
        method: "GET",
        path: "/filetree/{source_id}",
        sections: &["A.2.14"],
        request: &["path", "max_depth", "max_entries"],
        response: &[
            "source_id",
            "root",
            "root.name",
            "root.path",
            "root.is_dir",
            "root.size_bytes",
            "root.modified_at",
            "root.children",
            "root.children.name",
            "root.children.children",
        ],
    },
    Keys {
        method: "GET",
        path: "/filetree/{source_id}/file",
        sections: &["A.2.15"],
        request: &["path", "max_bytes"],
        response: &[
            "source_id",
            "path",
            "encoding",
            "size_bytes",
            "content",
            "truncated",
            "is_binary",
        ],
    },
];

/// Response keys api.md names that our schema may omit: `connected_projects`
/// is in every `/sources` item but not in `/sources/{id}/status` (one type).
const NOT_REQUIRED: &[&str] = &["sources.connected_projects"];

fn api_md() -> String {
    let path = match std::env::var_os("MEMORY_API_DESIGN_DOC") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/design/api.md"),
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the HTTP contract {} ({e}): this test checks our OpenAPI document against it. \
             The checkout must sit beside `shared/` (shared/design/api.md), or set \
             MEMORY_API_DESIGN_DOC to the file",
            path.display()
        )
    })
}

/// `(method, path)` of every row of api.md's endpoint index (A.1).
fn endpoint_index(md: &str) -> Vec<(String, String)> {
    let start = md
        .find("### A.1")
        .expect("api.md has an endpoint index (### A.1)");
    let table = &md[start..];
    let table = &table[..table[4..].find("\n### ").map_or(table.len(), |i| i + 4)];
    let rows: Vec<(String, String)> = table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // | # | Method | Path | ...
            if cells.len() > 4 && cells[1].parse::<u32>().is_ok() {
                Some((cells[2].to_string(), cells[3].trim_matches('`').to_string()))
            } else {
                None
            }
        })
        .collect();
    assert!(
        rows.len() >= 15,
        "api.md's endpoint index has {} rows; expected 15 or more",
        rows.len()
    );
    rows
}

/// The text of the section whose heading starts with `name` (up to the next
/// heading of the same or a higher level).
fn section<'a>(md: &'a str, name: &str) -> &'a str {
    let mut lines = md.split_inclusive('\n');
    let mut offset = 0;
    let mut found: Option<(usize, usize)> = None;
    for l in lines.by_ref() {
        let hashes = l.chars().take_while(|c| *c == '#').count();
        if hashes > 0 && l[hashes..].trim_start().starts_with(name) {
            found = Some((offset, hashes));
            offset += l.len();
            break;
        }
        offset += l.len();
    }
    let (start, level) = found.unwrap_or_else(|| panic!("api.md has no section {name:?}"));
    let mut end = offset;
    for l in lines {
        let hashes = l.chars().take_while(|c| *c == '#').count();
        if hashes > 0 && hashes <= level {
            break;
        }
        end += l.len();
    }
    &md[start..end]
}

/// Every response key of `k` as a dotted path.
fn response_keys(k: &Keys) -> Vec<String> {
    let mut keys: Vec<String> = k.response.iter().map(|s| s.to_string()).collect();
    if k.path == "/sources" && k.method == "GET" {
        keys.extend(SOURCE.iter().map(|s| format!("sources.{s}")));
    }
    keys
}

/// The object schemas `s` stands for: `$ref`s followed, `oneOf`/`anyOf`/
/// `allOf` branches and array items opened.
fn objects<'a>(doc: &'a Value, s: &'a Value, out: &mut Vec<&'a Value>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap();
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "dangling $ref {r}");
        return objects(doc, target, out);
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(branches) = s.get(combinator).and_then(Value::as_array) {
            for b in branches {
                objects(doc, b, out);
            }
        }
    }
    if let Some(items) = s.get("items") {
        objects(doc, items, out);
    }
    if s.get("properties").is_some() {
        out.push(s);
    }
}

/// Whether `path` (dotted) exists under `schema`; `Err` says what is missing.
/// With `required`, its last key must also be required (always present).
fn check_key(doc: &Value, schema: &Value, path: &str, required: bool) -> Result<(), String> {
    let mut current = vec![schema];
    let segments: Vec<&str> = path.split('.').collect();
    for (i, seg) in segments.iter().enumerate() {
        let mut objs = Vec::new();
        for s in &current {
            objects(doc, s, &mut objs);
        }
        let holders: Vec<&Value> = objs
            .into_iter()
            .filter(|o| o["properties"].get(*seg).is_some())
            .collect();
        if holders.is_empty() {
            return Err(format!("no property {seg:?}"));
        }
        if i + 1 == segments.len() && required {
            let is_required = holders.iter().all(|o| {
                o["required"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|x| x == *seg))
            });
            if !is_required {
                return Err(format!("{seg:?} is not required (api.md: always present)"));
            }
        }
        current = holders.iter().map(|o| &o["properties"][*seg]).collect();
    }
    Ok(())
}

#[test]
fn every_api_md_endpoint_has_the_keys_api_md_names() {
    let md = api_md();
    let doc: Value = serde_json::from_str(&memory_api::openapi_json()).expect("the document is JSON");
    let mut problems = Vec::new();
    for (method, path) in endpoint_index(&md) {
        let Some(k) = ENDPOINTS.iter().find(|k| k.method == method && k.path == path) else {
            problems.push(format!(
                "api.md lists {method} {path}, which this test has no keys for: add them to ENDPOINTS"
            ));
            continue;
        };
        let text: String = k.sections.iter().map(|s| section(&md, s)).collect();
        let op = &doc["paths"][path.as_str()][method.to_ascii_lowercase()];
        if op.is_null() {
            problems.push(format!("{method} {path}: not in the OpenAPI document"));
            continue;
        }
        let response = &op["responses"]["200"]["content"]["application/json"]["schema"];
        for key in response_keys(k) {
            let last = key.rsplit('.').next().unwrap();
            if !text.contains(last) {
                problems.push(format!(
                    "{method} {path}: the test's key {key:?} is not named in api.md {:?}",
                    k.sections
                ));
            }
            let required = !NOT_REQUIRED.contains(&key.as_str());
            if let Err(e) = check_key(&doc, response, &key, required) {
                problems.push(format!("{method} {path}: response key {key:?}: {e}"));
            }
        }
        for key in k.request {
            if !text.contains(key) {
                problems.push(format!(
                    "{method} {path}: the test's request key {key:?} is not named in api.md {:?}",
                    k.sections
                ));
            }
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            let in_query = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query" && p["name"] == *key));
            let in_body = !body.is_null() && check_key(&doc, body, key, false).is_ok();
            if !(in_query || in_body) {
                problems.push(format!(
                    "{method} {path}: request key {key:?} is neither in the body schema nor a query parameter"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the OpenAPI document (from memory-api's types) disagrees with api.md:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_error_answer_is_the_detail_body() {
    let doc: Value = serde_json::from_str(&memory_api::openapi_json()).unwrap();
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    count += 1;
                    assert_eq!(
                        resp["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(count > 10, "only {count} error answers documented");
}
