//! LoCoMo conversations (Maharana et al., ACL 2024, `data/locomo10.json` of
//! snap-research/locomo, one conversation per file here) turned into what the
//! recall benchmark sends and checks: one chat message per dialog turn, and
//! the questions whose evidence turns must come back. Kept apart from the
//! benchmark so the mapping (content, ids, timestamps, evidence clean-up) is
//! unit-tested on small inline data, not on the real files.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::Value;

/// The LoCoMo session time format, e.g. `1:56 pm on 8 May, 2023`.
const SESSION_TIME: &str = "%I:%M %p on %d %B, %Y";

/// LoCoMo's question categories 1-4 (5, adversarial, has no answer in the
/// conversation and is never asked), as numbered in the dataset's README.
pub const CATEGORIES: [(u8, &str); 4] = [
    (1, "multi-hop"),
    (2, "temporal"),
    (3, "open-domain"),
    (4, "single-hop"),
];

/// One dialog turn as indexed: the `/index-chat-message` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// `session_N`: the chat id.
    pub chat_id: String,
    /// The turn's `dia_id` (`D3:7`): the message id.
    pub message_id: String,
    /// Position of the turn in its session, from 0.
    pub index: usize,
    /// `"<speaker>: <text>"`, plus `" [shares <blip_caption>]"` when present.
    pub content: String,
    /// The session's date as ISO-8601 (`2023-05-08T13:56:00`), no offset:
    /// LoCoMo gives none.
    pub timestamp: String,
}

/// One question with evidence, in a category 1-4.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The question text, sent as the query.
    pub text: String,
    /// 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop.
    pub category: u8,
    /// The evidence `dia_id`s that exist in the conversation (at least one).
    pub evidence: Vec<String>,
    /// The chat ids (`session_N`) holding an evidence turn.
    pub sessions: Vec<String>,
}

/// One conversation: its turns in order, and its answerable questions.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// `sample_id` when the file has one, else the file stem: the project id.
    pub id: String,
    /// Every turn, session by session.
    pub turns: Vec<Turn>,
    /// Questions of categories 1-4 with at least one known evidence turn.
    pub questions: Vec<Question>,
    /// Evidence ids that name no turn (typos in the dataset such as `D:11:26`),
    /// dropped from their questions.
    pub unknown_evidence: Vec<String>,
    /// Questions of categories 1-4 left with no known evidence (not asked).
    pub questions_without_evidence: usize,
}

#[derive(Deserialize)]
struct RawTurn {
    speaker: String,
    dia_id: String,
    text: String,
    #[serde(default)]
    blip_caption: Option<String>,
}

#[derive(Deserialize)]
struct RawQuestion {
    question: String,
    #[serde(default)]
    category: Option<u8>,
    #[serde(default)]
    evidence: Vec<String>,
}

/// `content` of a turn: `"<speaker>: <text>"` plus `" [shares <caption>]"`.
pub fn content(speaker: &str, text: &str, caption: Option<&str>) -> String {
    match caption {
        Some(c) if !c.trim().is_empty() => format!("{speaker}: {text} [shares {c}]"),
        _ => format!("{speaker}: {text}"),
    }
}

/// `1:56 pm on 8 May, 2023` as `2023-05-08T13:56:00`.
pub fn session_timestamp(s: &str) -> Result<String> {
    let t = NaiveDateTime::parse_from_str(s.trim(), SESSION_TIME)
        .with_context(|| format!("session date {s:?} is not like \"1:56 pm on 8 May, 2023\""))?;
    Ok(t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// The evidence ids of one question: LoCoMo sometimes joins two in one string
/// (`"D8:6; D9:17"`).
fn split_evidence(raw: &[String]) -> impl Iterator<Item = &str> {
    raw.iter()
        .flat_map(|e| e.split(';'))
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// Reads one conversation file; `stem` names it when it has no `sample_id`.
pub fn parse(v: &Value, stem: &str) -> Result<Conversation> {
    let obj = v.as_object().context("not a JSON object")?;
    // locomo10.json nests the sessions under "conversation"; the split files do not.
    let conv = obj.get("conversation").and_then(Value::as_object).unwrap_or(obj);
    let id = obj
        .get("sample_id")
        .and_then(Value::as_str)
        .unwrap_or(stem)
        .to_string();
    let turns = parse_turns(conv)?;
    let session_of: HashMap<&str, &str> = turns
        .iter()
        .map(|t| (t.message_id.as_str(), t.chat_id.as_str()))
        .collect();
    let raw_qa: Vec<RawQuestion> = match obj.get("qa") {
        Some(q) => serde_json::from_value(q.clone()).context("qa is not a list of questions")?,
        None => Vec::new(),
    };
    let (mut questions, mut unknown_evidence, mut without) = (Vec::new(), Vec::new(), 0);
    for q in raw_qa {
        let Some(category @ 1..=4) = q.category else {
            continue;
        };
        let mut evidence: Vec<String> = Vec::new();
        for e in split_evidence(&q.evidence) {
            if !session_of.contains_key(e) {
                unknown_evidence.push(e.to_string());
            } else if !evidence.iter().any(|x| x == e) {
                evidence.push(e.to_string());
            }
        }
        if evidence.is_empty() {
            without += 1;
            continue;
        }
        let mut sessions: Vec<String> = evidence
            .iter()
            .map(|e| session_of[e.as_str()].to_string())
            .collect();
        sessions.sort();
        sessions.dedup();
        questions.push(Question {
            text: q.question,
            category,
            evidence,
            sessions,
        });
    }
    Ok(Conversation {
        id,
        turns,
        questions,
        unknown_evidence,
        questions_without_evidence: without,
    })
}

/// Every turn of every `session_N` of `conv`, sessions in numeric order, each
/// stamped with its session's `session_N_date_time`.
fn parse_turns(conv: &serde_json::Map<String, Value>) -> Result<Vec<Turn>> {
    let mut sessions: BTreeMap<usize, &Value> = BTreeMap::new();
    for (k, v) in conv {
        if let Some(n) = k.strip_prefix("session_").and_then(|n| n.parse().ok()) {
            sessions.insert(n, v);
        }
    }
    if sessions.is_empty() {
        bail!("no session_N keys");
    }
    let mut turns = Vec::new();
    for (n, raw) in sessions {
        let chat_id = format!("session_{n}");
        let date = conv
            .get(&format!("session_{n}_date_time"))
            .and_then(Value::as_str)
            .with_context(|| format!("{chat_id} has no session_{n}_date_time"))?;
        let timestamp = session_timestamp(date).with_context(|| chat_id.clone())?;
        let raw: Vec<RawTurn> = serde_json::from_value(raw.clone())
            .with_context(|| format!("{chat_id} is not a list of turns"))?;
        for (index, t) in raw.into_iter().enumerate() {
            turns.push(Turn {
                chat_id: chat_id.clone(),
                message_id: t.dia_id,
                index,
                content: content(&t.speaker, &t.text, t.blip_caption.as_deref()),
                timestamp: timestamp.clone(),
            });
        }
    }
    Ok(turns)
}

/// Every `*.json` of `dir`, by name, parsed.
pub fn load_dir(dir: &Path) -> Result<Vec<Conversation>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the LoCoMo directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!(
            "no *.json conversation in {} (see /work/shared/data/locomo/README.md for the format)",
            dir.display()
        );
    }
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let v: Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?;
            let stem = p
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            parse(&v, &stem).with_context(|| format!("{} is not a LoCoMo conversation", p.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn session_dates_become_iso() {
        assert_eq!(
            session_timestamp("1:56 pm on 8 May, 2023").unwrap(),
            "2023-05-08T13:56:00"
        );
        assert_eq!(
            session_timestamp("11:01 am on 17 December, 2022").unwrap(),
            "2022-12-17T11:01:00"
        );
        assert_eq!(
            session_timestamp("12:05 am on 1 January, 2024").unwrap(),
            "2024-01-01T00:05:00"
        );
        assert!(session_timestamp("8 May 2023").is_err());
    }

    #[test]
    fn turns_questions_and_evidence() {
        let v = json!({
            "speaker_a": "Ann", "speaker_b": "Bo",
            "session_2_date_time": "4:04 pm on 20 January, 2023",
            "session_2": [{"speaker": "Bo", "dia_id": "D2:1", "text": "Later."}],
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ann", "dia_id": "D1:1", "text": "Hi!"},
                {"speaker": "Bo", "dia_id": "D1:2", "text": "Look.", "blip_caption": "a photo of a dog"}
            ],
            "session_1_summary": "not a session",
            "qa": [
                {"question": "Who?", "answer": "Bo", "evidence": ["D1:2; D2:1"], "category": 1},
                {"question": "Typo?", "answer": 1, "evidence": ["D:1:1"], "category": 2},
                {"question": "Adversarial?", "evidence": ["D1:1"], "category": 5},
                {"question": "Dup?", "evidence": ["D1:1", "D1:1", "D9:9"], "category": 4}
            ]
        });
        let c = parse(&v, "26").unwrap();
        assert_eq!(c.id, "26");
        let ids: Vec<_> = c
            .turns
            .iter()
            .map(|t| (t.chat_id.as_str(), t.message_id.as_str(), t.index))
            .collect();
        assert_eq!(
            ids,
            [
                ("session_1", "D1:1", 0),
                ("session_1", "D1:2", 1),
                ("session_2", "D2:1", 0)
            ]
        );
        assert_eq!(c.turns[1].content, "Bo: Look. [shares a photo of a dog]");
        assert_eq!(c.turns[0].content, "Ann: Hi!");
        assert_eq!(c.turns[2].timestamp, "2023-01-20T16:04:00");
        assert_eq!(c.questions.len(), 2);
        assert_eq!(c.questions[0].evidence, ["D1:2", "D2:1"]);
        assert_eq!(c.questions[0].sessions, ["session_1", "session_2"]);
        assert_eq!(c.questions[1].evidence, ["D1:1"]);
        assert_eq!(c.unknown_evidence, ["D:1:1", "D9:9"]);
        assert_eq!(c.questions_without_evidence, 1);
    }

    #[test]
    fn sample_id_wins_over_the_stem() {
        let v = json!({"sample_id": "conv-26", "conversation": {
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": "A", "dia_id": "D1:1", "text": "x"}]
        }, "qa": []});
        let c = parse(&v, "26").unwrap();
        assert_eq!(c.id, "conv-26");
        assert_eq!(c.turns.len(), 1);
    }
}
