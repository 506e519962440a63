//! Hand-made conversations and user statuses for the storage tests: small, deterministic, and
//! shaped like the API's (customer, acd and agent participants; open segments and missing
//! metrics while in progress).
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use sluice::genesys::model::{ReceivedConversation, UserDetail};
use sluice::storage::models::ConversationRecord;

fn ts(t: DateTime<Utc>) -> String {
    sluice::genesys::model::instant::format(&t)
}

/// Conversation number `i` starting at `start`; `now` decides what has happened yet (pass a
/// far-future instant for the final version). Every 7th is abandoned in queue, every 3rd has
/// a hold.
pub fn conversation_json(i: u32, start: DateTime<Utc>, now: DateTime<Utc>) -> Value {
    let id = format!("c-{i:06}-{:08x}", i.wrapping_mul(2_654_435_761));
    let queue = format!("q-{}", i % 3);
    let user = format!("u-{}", i % 5);
    let abandoned = i.is_multiple_of(7);
    let ivr_end = start + Duration::seconds(20);
    let answered = ivr_end + Duration::seconds(15 + (i % 40) as i64);
    let talk_end = answered + Duration::seconds(120 + (i % 300) as i64);
    let hold = i.is_multiple_of(3);
    let hold_start = answered + Duration::seconds(30);
    let hold_end = hold_start + Duration::seconds(25);
    let acw_end = talk_end + Duration::seconds(20 + (i % 30) as i64);
    let end = if abandoned { answered } else { acw_end };

    let seg = |s: DateTime<Utc>, e: DateTime<Utc>, ty: &str, extra: Value| -> Option<Value> {
        if s > now {
            return None;
        }
        let mut v = json!({"segmentStart": ts(s), "segmentType": ty});
        if e <= now {
            v["segmentEnd"] = json!(ts(e));
        }
        if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
            for (k, val) in x {
                if k != "disconnectType" || e <= now {
                    m.insert(k, val);
                }
            }
        }
        Some(v)
    };
    let metric = |name: &str, value: i64, at: DateTime<Utc>| -> Option<Value> {
        (at <= now).then(|| json!({"name": name, "value": value, "emitDate": ts(at)}))
    };
    let ms = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_milliseconds();

    let cust_segments: Vec<Value> = seg(
        start,
        end,
        "interact",
        json!({"disconnectType": "endpoint"}),
    )
    .into_iter()
    .collect();
    let customer = json!({
        "participantId": format!("{id}-p-cust"), "purpose": "customer", "participantName": "Caller \u{00e9}\u{4e2d}",
        "sessions": [{"sessionId": format!("{id}-s-cust"), "mediaType": "voice", "direction": "inbound",
            "ani": "tel:+15551230000", "dnis": "tel:+15559870000",
            "segments": cust_segments}]
    });
    let acd_segments: Vec<Value> = [seg(
        ivr_end,
        answered,
        "interact",
        json!({"queueId": queue, "disconnectType": if abandoned {"peer"} else {"transfer"}}),
    )]
    .into_iter()
    .flatten()
    .collect();
    let mut acd_metrics: Vec<Value> = vec![metric("nOffered", 1, ivr_end)]
        .into_iter()
        .flatten()
        .collect();
    if abandoned {
        acd_metrics.extend(metric("tAbandon", ms(ivr_end, answered), answered));
    } else {
        acd_metrics.extend(metric("tAcd", ms(ivr_end, answered), answered));
    }
    let acd = json!({
        "participantId": format!("{id}-p-acd"), "purpose": "acd", "participantName": "Queue",
        "sessions": [{"sessionId": format!("{id}-s-acd"), "mediaType": "voice", "direction": "inbound",
            "segments": acd_segments, "metrics": acd_metrics}]
    });
    let mut participants = vec![customer, acd];
    if !abandoned && answered - Duration::seconds(5) <= now {
        let alert_start = answered - Duration::seconds(5);
        let mut segs: Vec<Value> = Vec::new();
        segs.extend(seg(
            alert_start,
            answered,
            "alert",
            json!({"queueId": queue}),
        ));
        if hold {
            segs.extend(seg(
                answered,
                hold_start,
                "interact",
                json!({"queueId": queue}),
            ));
            segs.extend(seg(hold_start, hold_end, "hold", json!({"queueId": queue})));
            segs.extend(seg(
                hold_end,
                talk_end,
                "interact",
                json!({"queueId": queue, "disconnectType": "peer"}),
            ));
        } else {
            segs.extend(seg(
                answered,
                talk_end,
                "interact",
                json!({"queueId": queue, "disconnectType": "peer"}),
            ));
        }
        segs.extend(seg(
            talk_end,
            acw_end,
            "wrapup",
            json!({"queueId": queue, "wrapUpCode": format!("wc-{}", i % 4)}),
        ));
        let held = if hold { ms(hold_start, hold_end) } else { 0 };
        let mut m: Vec<Value> = Vec::new();
        m.extend(metric("tAlert", 5000, answered));
        m.extend(metric("tAnswered", ms(ivr_end, answered), answered));
        m.extend(metric("nConnected", 1, answered));
        if hold {
            m.extend(metric("tHeld", held, hold_end));
        }
        m.extend(metric("tTalk", ms(answered, talk_end) - held, talk_end));
        m.extend(metric("tAcw", ms(talk_end, acw_end), acw_end));
        m.extend(metric("tHandle", ms(answered, acw_end), acw_end));
        participants.push(json!({
            "participantId": format!("{id}-p-agent"), "purpose": "agent", "userId": user, "participantName": "A. Agent",
            "sessions": [{"sessionId": format!("{id}-s-agent"), "mediaType": "voice", "direction": "inbound",
                "segments": segs, "metrics": m}]
        }));
    }
    let mut c = json!({
        "conversationId": id, "conversationStart": ts(start), "originatingDirection": "inbound",
        "divisionIds": ["d-1"], "mediaStatsMinConversationMos": 4.25 + (i % 10) as f64 / 100.0,
        "participants": participants,
    });
    if end <= now {
        c["conversationEnd"] = json!(ts(end));
    }
    c
}

/// The record the Writer stores for [`conversation_json`].
pub fn record(i: u32, start: DateTime<Utc>, now: DateTime<Utc>) -> ConversationRecord {
    let text = serde_json::to_string(&conversation_json(i, start, now)).unwrap();
    let received: ReceivedConversation = serde_json::from_str(&text).unwrap();
    let is_final = received.conversation.conversation_end.is_some();
    ConversationRecord { received, is_final }
}

/// `n` final conversations, one every `spacing`, from `base`.
pub fn final_records(n: u32, base: DateTime<Utc>, spacing: Duration) -> Vec<ConversationRecord> {
    let far = base + Duration::days(3650);
    (0..n)
        .map(|i| record(i, base + spacing * i as i32, far))
        .collect()
}

/// Rows a set of records should produce (conversations + participants + sessions + segments +
/// metrics), counted from the payloads.
pub fn expected_rows(recs: &[ConversationRecord]) -> [usize; 5] {
    let mut n = [0usize; 5];
    for r in recs {
        let c = &r.received.conversation;
        n[0] += 1;
        n[1] += c.participants.len();
        for p in &c.participants {
            n[2] += p.sessions.len();
            for s in &p.sessions {
                n[3] += s.segments.len();
                n[4] += s.metrics.len();
            }
        }
    }
    n
}

/// A user's presence and routing timeline for one day starting at `day`, shaped by `seed`;
/// the last records may be open (no endTime) when `now` falls inside them.
pub fn user_detail(user: &str, day: DateTime<Utc>, seed: u32, now: DateTime<Utc>) -> UserDetail {
    let presences = [
        "AVAILABLE",
        "ON_QUEUE",
        "BREAK",
        "ON_QUEUE",
        "MEAL",
        "ON_QUEUE",
        "OFFLINE",
    ];
    let routings = [
        "IDLE",
        "INTERACTING",
        "IDLE",
        "NOT_RESPONDING",
        "INTERACTING",
    ];
    let mut t = day + Duration::hours(6) + Duration::minutes(seed as i64 % 50);
    let mut pres = Vec::new();
    let mut rout = Vec::new();
    let mut k = 0usize;
    // Ends after midnight on purpose: the last status crosses into the next day.
    while t < day + Duration::hours(25) {
        let len = Duration::minutes(37 + ((seed as i64 + k as i64 * 13) % 90));
        let e = t + len;
        if t > now {
            break;
        }
        let mut p = json!({"startTime": ts(t), "systemPresence": presences[k % presences.len()],
            "organizationPresenceId": format!("op-{}", k % presences.len())});
        let mut r = json!({"startTime": ts(t), "routingStatus": routings[k % routings.len()]});
        if e <= now {
            p["endTime"] = json!(ts(e));
            r["endTime"] = json!(ts(e));
        }
        pres.push(p);
        rout.push(r);
        t = e;
        k += 1;
    }
    serde_json::from_value(json!({"userId": user, "primaryPresence": pres, "routingStatus": rout}))
        .unwrap()
}

/// The simulator's deterministic org: `per_day` conversations a day over `days` days before
/// `now`, `users` agents.
pub fn sim_dataset(
    per_day: u32,
    days: u32,
    users: u32,
    now: DateTime<Utc>,
) -> sluice::sim::data::Dataset {
    let cfg = sluice::sim::SimConfig {
        seed: 11,
        days,
        per_day,
        users,
        now: Some(now),
        ..sluice::sim::SimConfig::default()
    };
    sluice::sim::data::Dataset::new(&cfg)
}

/// The simulator's conversations started in `[from, to)` as seen at `now` (in-progress ones
/// cut), as the Writer receives them; final when ended.
pub fn sim_records(
    ds: &sluice::sim::data::Dataset,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<ConversationRecord> {
    ds.conversations_started_in(sluice::genesys::model::Interval::new(from, to))
        .iter()
        .filter_map(|c| ds.view_at(c, now))
        .map(|c| {
            let raw_json = serde_json::to_string(&c).unwrap();
            ConversationRecord {
                is_final: c.conversation_end.is_some(),
                received: ReceivedConversation {
                    conversation: c,
                    raw_json,
                },
            }
        })
        .collect()
}
