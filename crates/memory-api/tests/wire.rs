//! The wire rules the types must keep (crate docs): a field documented "or
//! null" is sent as an explicit `null`; a field documented "omitted" is left
//! out; optional request fields left unset are not sent. ChatDO's backend
//! reads some of these bodies with `dict[...]`, so a null turning into an
//! absent key is a `KeyError` there.

use memory_api::search::{SearchRequest, SearchResult, SourceType};
use memory_api::sources::{AddSource, Skipped, Source, SourceStatus};
use serde_json::{Value, json};

fn source(connected_projects: Option<Vec<String>>) -> Source {
    Source {
        id: "docs-dir".into(),
        display_name: "docs".into(),
        root_path: "/d".into(),
        status: SourceStatus::Idle,
        files_indexed: 0,
        bytes_indexed: 0,
        last_index_started_at: None,
        last_index_completed_at: None,
        last_error: None,
        project_id: "general".into(),
        latest_job: None,
        files_skipped: 0,
        skipped: Skipped::default(),
        connected_projects,
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn nulls_are_explicit_and_connected_projects_is_omitted_outside_lists() {
    let status = serde_json::to_value(source(None)).unwrap();
    assert!(status.get("connected_projects").is_none(), "{status}");
    for k in [
        "last_index_started_at",
        "last_index_completed_at",
        "last_error",
        "latest_job",
    ] {
        assert_eq!(status[k], Value::Null, "{k} is sent as null");
    }
    let listed = serde_json::to_value(source(Some(vec![]))).unwrap();
    assert_eq!(listed["connected_projects"], json!([]));
    assert_eq!(
        listed["skipped"],
        json!({"binary": 0, "too_large": 0, "unsupported": 0, "unreadable": 0, "extraction_failed": 0, "ignored": 0})
    );
}

#[test]
fn a_search_result_has_every_field() {
    let r = SearchResult {
        score: 0.5,
        project_id: "p".into(),
        source_id: "project-p".into(),
        file_path: None,
        filetype: None,
        chunk_index: 0,
        text: "t".into(),
        start_char: 0,
        end_char: 1,
        source_type: SourceType::Chat,
        chat_id: Some("c".into()),
        message_id: Some("m".into()),
        message_uuid: None,
    };
    let v = serde_json::to_value(r).unwrap();
    assert_eq!(
        keys(&v),
        [
            "chat_id",
            "chunk_index",
            "end_char",
            "file_path",
            "filetype",
            "message_id",
            "message_uuid",
            "project_id",
            "score",
            "source_id",
            "source_type",
            "start_char",
            "text"
        ]
    );
    assert_eq!(
        (&v["source_type"], &v["file_path"]),
        (&json!("chat"), &Value::Null)
    );
}

#[test]
fn requests_leave_out_what_is_unset_and_read_defaults() {
    let add = AddSource {
        root_path: "/d".into(),
        display_name: None,
        project_id: None,
        source_id: None,
    };
    assert_eq!(serde_json::to_value(add).unwrap(), json!({"root_path": "/d"}));
    let q: SearchRequest = serde_json::from_value(json!({"project_id": "p", "query": "q"})).unwrap();
    assert_eq!((q.limit, &q.source_ids, &q.chat_id), (10, &None, &None));
    assert_eq!(
        serde_json::to_value(&q).unwrap(),
        json!({"project_id": "p", "query": "q", "limit": 10})
    );
}
