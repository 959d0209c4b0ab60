//! Chat messages: the input/ack types, validation, the upsert that commits a message
//! together with its pending index job, and the deletion of a whole chat. Functions here
//! run inside the writer's transaction and must not open their own; they never index
//! (the chat stage in `memory-indexer` does, after the caller has been answered).

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::chat_jobs;
use crate::clock;
use crate::error::{SqlContext, StoreError};

/// Largest accepted `content`, in bytes (1 MiB).
pub const MAX_CONTENT_BYTES: usize = 1024 * 1024;
/// Largest accepted `project_id`, `chat_id` or `message_id`, in bytes.
pub const MAX_ID_BYTES: usize = 512;
/// Largest accepted `role`, in bytes.
pub const MAX_ROLE_BYTES: usize = 256;

/// `POST /index-chat-message`'s body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessageIn {
    /// Project the chat belongs to (non-empty).
    pub project_id: String,
    /// Chat the message belongs to (non-empty).
    pub chat_id: String,
    /// Message id within the chat (non-empty).
    pub message_id: String,
    /// `user`, `assistant`, ... (not interpreted).
    pub role: String,
    /// The text; at most [`MAX_CONTENT_BYTES`].
    pub content: String,
    /// ISO-8601, kept exactly as sent; `Z`, offsets and naive times are accepted.
    pub timestamp: String,
    /// Position of the message in its chat.
    pub message_index: i64,
    /// Client-chosen UUID for a new message; ignored when the message already exists.
    pub message_uuid: Option<String>,
}

/// What the store answers once the message and its job are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatAck {
    /// The index job's id, `<chat_id>:<message_id>:<epoch_ms>`.
    pub job_id: String,
    /// The message's UUID (existing one on update).
    pub message_uuid: String,
}

/// A committed upsert, with what the in-memory tracker needs.
#[derive(Debug, Clone)]
pub(crate) struct Enqueued {
    pub ack: ChatAck,
    pub enqueue_ms: i64,
}

fn require_id(name: &str, value: &str) -> Result<(), StoreError> {
    if value.trim().is_empty() {
        return Err(StoreError::InvalidInput(format!(
            "{name} is required and cannot be empty"
        )));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "{name} is longer than {MAX_ID_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Checks a chat's identity (for delete).
pub(crate) fn validate_chat_ids(project_id: &str, chat_id: &str) -> Result<(), StoreError> {
    require_id("project_id", project_id)?;
    require_id("chat_id", chat_id)
}

/// Checks a message and normalises its UUID to the hyphenated lower-case form.
pub(crate) fn validate(m: &mut ChatMessageIn) -> Result<(), StoreError> {
    require_id("project_id", &m.project_id)?;
    require_id("chat_id", &m.chat_id)?;
    require_id("message_id", &m.message_id)?;
    if m.role.len() > MAX_ROLE_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "role is longer than {MAX_ROLE_BYTES} bytes"
        )));
    }
    if m.content.len() > MAX_CONTENT_BYTES {
        return Err(StoreError::InvalidInput(format!(
            "content is {} bytes; the limit is {MAX_CONTENT_BYTES}",
            m.content.len()
        )));
    }
    if !clock::is_iso8601(&m.timestamp) {
        return Err(StoreError::InvalidInput(format!(
            "timestamp is not an ISO-8601 date-time: {:?}",
            m.timestamp.chars().take(64).collect::<String>()
        )));
    }
    if let Some(raw) = &m.message_uuid {
        let parsed = Uuid::try_parse(raw.trim()).map_err(|_| {
            StoreError::InvalidInput(format!(
                "message_uuid is not a UUID: {:?}",
                raw.chars().take(64).collect::<String>()
            ))
        })?;
        m.message_uuid = Some(parsed.hyphenated().to_string());
    }
    Ok(())
}

/// Inserts or updates the message (keyed by project, chat and message id) and enqueues
/// its index job, in the caller's transaction.
pub(crate) fn upsert(conn: &Connection, m: &ChatMessageIn) -> Result<Enqueued, StoreError> {
    let existing: Option<String> = conn
        .prepare_cached(
            "SELECT message_uuid FROM chat_messages
             WHERE project_id = ?1 AND chat_id = ?2 AND message_id = ?3",
        )
        .ctx(UPSERT)?
        .query_row(params![m.project_id, m.chat_id, m.message_id], |r| r.get(0))
        .optional()
        .ctx(UPSERT)?;
    let now = clock::now_iso();
    let message_uuid = match existing {
        Some(uuid) => update(conn, uuid, m, &now)?,
        None => insert(conn, m, &now)?,
    };
    let (job_id, enqueue_ms) = chat_jobs::enqueue(
        conn,
        &m.chat_id,
        &m.message_id,
        &message_uuid,
        m.content.chars().count(),
    )?;
    Ok(Enqueued {
        ack: ChatAck { job_id, message_uuid },
        enqueue_ms,
    })
}

/// The error context of [`upsert`] and its parts.
const UPSERT: &str = "while storing a chat message";

/// Updates the stored message `uuid` in place with `m`'s role, content, timestamp
/// and index (`now`: its `updated_at`); returns `uuid`.
fn update(conn: &Connection, uuid: String, m: &ChatMessageIn, now: &str) -> Result<String, StoreError> {
    conn.prepare_cached(
        "UPDATE chat_messages SET role = ?2, content = ?3, timestamp = ?4,
                message_index = ?5, updated_at = ?6
         WHERE message_uuid = ?1",
    )
    .ctx(UPSERT)?
    .execute(params![
        uuid,
        m.role,
        m.content,
        m.timestamp,
        m.message_index,
        now
    ])
    .ctx(UPSERT)?;
    Ok(uuid)
}

/// Inserts `m` as a new message under the client's UUID, else a new v4 one; returns
/// it. A client UUID that another message holds is invalid input.
fn insert(conn: &Connection, m: &ChatMessageIn, now: &str) -> Result<String, StoreError> {
    let uuid = match &m.message_uuid {
        Some(u) => u.clone(),
        None => Uuid::new_v4().hyphenated().to_string(),
    };
    let taken = conn
        .prepare_cached("SELECT 1 FROM chat_messages WHERE message_uuid = ?1")
        .ctx(UPSERT)?
        .exists([&uuid])
        .ctx(UPSERT)?;
    if taken {
        return Err(StoreError::InvalidInput(format!(
            "message_uuid {uuid} already belongs to another message"
        )));
    }
    conn.prepare_cached(
        "INSERT INTO chat_messages (message_uuid, project_id, chat_id, message_id, role,
                content, timestamp, message_index, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )
    .ctx(UPSERT)?
    .execute(params![
        uuid,
        m.project_id,
        m.chat_id,
        m.message_id,
        m.role,
        m.content,
        m.timestamp,
        m.message_index,
        now
    ])
    .ctx(UPSERT)?;
    Ok(uuid)
}

/// What deleting a chat removed.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeletedChat {
    /// Messages deleted.
    pub messages: u64,
    /// Facts deleted (those whose source message was in the chat).
    pub facts: u64,
    /// Pending jobs deleted, as `(enqueue_ms, job_id)`.
    pub pending_jobs: Vec<(i64, String)>,
}

/// Deletes a chat's facts (those stored from its messages), chunks (and so their FTS
/// rows, by trigger), jobs and messages, in the caller's transaction.
pub(crate) fn delete(conn: &Connection, project_id: &str, chat_id: &str) -> Result<DeletedChat, StoreError> {
    let context = format!("while deleting chat {chat_id} of project {project_id}");
    let pending_jobs = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT j.enqueue_ms, j.job_id FROM chat_index_jobs j
                 JOIN chat_messages m ON m.message_uuid = j.message_uuid
                 WHERE m.project_id = ?1 AND m.chat_id = ?2 AND j.state IN ('queued', 'running')",
            )
            .ctx(&context)?;
        let rows = stmt
            .query_map([project_id, chat_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .ctx(&context)?;
        rows.collect::<Result<Vec<_>, _>>().ctx(&context)?
    };
    let facts = crate::facts::delete_for_chat(conn, project_id, chat_id)?;
    conn.prepare_cached("DELETE FROM chunks WHERE kind = 'chat' AND project_id = ?1 AND chat_id = ?2")
        .ctx(&context)?
        .execute([project_id, chat_id])
        .ctx(&context)?;
    conn.prepare_cached(
        "DELETE FROM chat_index_jobs WHERE message_uuid IN
             (SELECT message_uuid FROM chat_messages WHERE project_id = ?1 AND chat_id = ?2)",
    )
    .ctx(&context)?
    .execute([project_id, chat_id])
    .ctx(&context)?;
    let messages = conn
        .prepare_cached("DELETE FROM chat_messages WHERE project_id = ?1 AND chat_id = ?2")
        .ctx(&context)?
        .execute([project_id, chat_id])
        .ctx(&context)?;
    Ok(DeletedChat {
        messages: messages as u64,
        facts,
        pending_jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> ChatMessageIn {
        ChatMessageIn {
            project_id: "p".into(),
            chat_id: "c".into(),
            message_id: "m".into(),
            role: "user".into(),
            content: "hello".into(),
            timestamp: "2025-12-27T21:10:29Z".into(),
            message_index: 0,
            message_uuid: None,
        }
    }

    #[test]
    fn validation_table() {
        type Mutation = fn(&mut ChatMessageIn);
        let cases: Vec<(&str, Mutation)> = vec![
            ("empty project", |m| m.project_id.clear()),
            ("blank chat", |m| m.chat_id = "  ".into()),
            ("empty message id", |m| m.message_id.clear()),
            ("long id", |m| m.chat_id = "x".repeat(MAX_ID_BYTES + 1)),
            ("big content", |m| m.content = "x".repeat(MAX_CONTENT_BYTES + 1)),
            ("bad timestamp", |m| m.timestamp = "now".into()),
            ("bad uuid", |m| m.message_uuid = Some("not-a-uuid".into())),
        ];
        for (name, mutate) in cases {
            let mut m = msg();
            mutate(&mut m);
            assert!(
                matches!(validate(&mut m), Err(StoreError::InvalidInput(_))),
                "{name}"
            );
        }
        let mut m = msg();
        m.content = "x".repeat(MAX_CONTENT_BYTES);
        m.message_uuid = Some("6F9619FF-8B86-D011-B42D-00C04FC964FF".into());
        validate(&mut m).expect("valid");
        assert_eq!(
            m.message_uuid.as_deref(),
            Some("6f9619ff-8b86-d011-b42d-00c04fc964ff")
        );
    }
}
