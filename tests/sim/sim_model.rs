//! Every JSON the simulator serves uses the official model names (camelCase, facts file §2–§5),
//! official enum values, and never a `null`.
use crate::common;

use std::collections::BTreeSet;

use chrono::Duration;
use common::sim::*;
use serde_json::{json, Value};
use sluice::genesys::model::Interval;

const PAGE: &[&str] = &[
    "conversations",
    "totalHits",
    "aggregations",
    "cursor",
    "dataAvailabilityDate",
    "userDetails",
    "jobId",
];
const CONVERSATION: &[&str] = &[
    "conversationId",
    "conversationStart",
    "conversationEnd",
    "conversationInitiator",
    "originatingDirection",
    "divisionIds",
    "externalTag",
    "mediaStatsMinConversationMos",
    "mediaStatsMinConversationRFactor",
    "customerParticipation",
    "originatingSocialMediaPublic",
    "selfServed",
    "inactivityTimeout",
    "knowledgeBaseIds",
    "accessAttributes",
    "associatedConversationId",
    "consultationConversationIds",
    "conferenceStart",
    "evaluations",
    "surveys",
    "resolutions",
    "participants",
];
const PARTICIPANT: &[&str] = &[
    "participantId",
    "participantName",
    "purpose",
    "userId",
    "teamId",
    "externalContactId",
    "externalOrganizationId",
    "flaggedReason",
    "screenRecording",
    "sessions",
    "attributes",
];
const SESSION: &[&str] = &[
    "sessionId",
    "mediaType",
    "direction",
    "ani",
    "dnis",
    "addressFrom",
    "addressTo",
    "addressSelf",
    "addressOther",
    "edgeId",
    "protocolCallId",
    "provider",
    "remote",
    "recording",
    "routingRing",
    "usedRouting",
    "requestedRoutings",
    "selectedAgentId",
    "outboundCampaignId",
    "outboundContactId",
    "outboundContactListId",
    "peerId",
    "flowInType",
    "flowOutType",
    "acwSkipped",
    "metrics",
    "segments",
    "flow",
    "mediaEndpointStats",
    "proposedAgents",
    "agentGroups",
];
const SEGMENT: &[&str] = &[
    "segmentStart",
    "segmentEnd",
    "segmentType",
    "queueId",
    "groupId",
    "wrapUpCode",
    "wrapUpNote",
    "wrapUpTags",
    "disconnectType",
    "errorCode",
    "conference",
    "audioMuted",
    "videoMuted",
    "subject",
    "requestedLanguageId",
    "requestedRoutingSkillIds",
    "requestedRoutingUserIds",
    "sipResponseCodes",
    "q850ResponseCodes",
    "sourceConversationId",
    "sourceSessionId",
    "destinationConversationId",
    "destinationSessionId",
    "scoredAgents",
    "properties",
];
const METRIC: &[&str] = &["name", "value", "emitDate"];
const FLOW: &[&str] = &[
    "flowId",
    "flowName",
    "flowVersion",
    "flowType",
    "entryType",
    "entryReason",
    "exitReason",
    "transferType",
    "transferTargetName",
    "transferTargetAddress",
    "issuedCallback",
    "startingLanguage",
    "endingLanguage",
    "outcomes",
];
const USER: &[&str] = &["userId", "primaryPresence", "routingStatus"];
const PRESENCE: &[&str] = &[
    "startTime",
    "endTime",
    "systemPresence",
    "organizationPresenceId",
];
const ROUTING: &[&str] = &["startTime", "endTime", "routingStatus"];
const STATUS: &[&str] = &[
    "state",
    "errorMessage",
    "submissionDate",
    "completionDate",
    "expirationDate",
];
const ERROR: &[&str] = &[
    "message",
    "code",
    "status",
    "entityId",
    "entityName",
    "messageWithParams",
    "messageParams",
    "contextId",
    "details",
    "errors",
    "limit",
];
const LIMIT: &[&str] = &["key", "namespace", "value"];

const MEDIA: &[&str] = &[
    "callback",
    "chat",
    "cobrowse",
    "email",
    "internalmessage",
    "message",
    "screenmonitoring",
    "screenshare",
    "unknown",
    "video",
    "voice",
];
const SEGMENT_TYPES: &[&str] = &[
    "alert",
    "barging",
    "callback",
    "coaching",
    "contacting",
    "converting",
    "delay",
    "dialing",
    "hold",
    "interact",
    "ivr",
    "monitoring",
    "parked",
    "scheduled",
    "screenmonitoring",
    "sharing",
    "system",
    "transmitting",
    "unknown",
    "uploading",
    "voicemail",
    "wrapup",
];
const DISCONNECT: &[&str] = &[
    "client",
    "conferenceTransfer",
    "consultTransfer",
    "dndEndpoint",
    "dndTransfer",
    "endpoint",
    "error",
    "forwardTransfer",
    "inactivity",
    "noAnswerTransfer",
    "notAvailableTransfer",
    "other",
    "peer",
    "sessionExpired",
    "spam",
    "system",
    "takeover",
    "timeout",
    "transfer",
    "transportFailure",
    "uncallable",
];
const PURPOSE: &[&str] = &[
    "acd",
    "agent",
    "api",
    "botflow",
    "campaign",
    "customer",
    "dialer",
    "external",
    "fax",
    "group",
    "inbound",
    "ivr",
    "manual",
    "outbound",
    "station",
    "user",
    "voicemail",
    "voicesurveyflow",
    "workflow",
];
const METRICS: &[&str] = &[
    "nOffered",
    "nConnected",
    "nTransferred",
    "nBlindTransferred",
    "nConsult",
    "nConsultTransferred",
    "nError",
    "nOverSla",
    "nOutbound",
    "nOutboundAttempted",
    "nOutboundConnected",
    "nFlow",
    "tAlert",
    "tAnswered",
    "tAcd",
    "tTalk",
    "tTalkComplete",
    "tHeld",
    "tHeldComplete",
    "tAcw",
    "tHandle",
    "tAbandon",
    "tShortAbandon",
    "tIvr",
    "tFlow",
    "tFlowOut",
    "tDialing",
    "tContacting",
    "tVoicemail",
    "tMonitoring",
    "tNotResponding",
    "tUserResponseTime",
    "tAgentResponseTime",
    "oMediaCount",
    "oMessageCount",
];
const PRESENCES: &[&str] = &[
    "AVAILABLE",
    "AWAY",
    "BUSY",
    "OFFLINE",
    "IDLE",
    "ON_QUEUE",
    "MEAL",
    "TRAINING",
    "MEETING",
    "BREAK",
];
const ROUTINGS: &[&str] = &[
    "OFF_QUEUE",
    "IDLE",
    "INTERACTING",
    "NOT_RESPONDING",
    "COMMUNICATING",
];

/// Which model an object at `path` is.
fn model_of(path: &[&str]) -> &'static [&'static str] {
    match path.last().copied() {
        None => PAGE,
        Some("conversations") => CONVERSATION,
        Some("participants") => PARTICIPANT,
        Some("sessions") => SESSION,
        Some("segments") => SEGMENT,
        Some("metrics") => METRIC,
        Some("flow") => FLOW,
        Some("userDetails") => USER,
        Some("primaryPresence") => PRESENCE,
        Some("routingStatus") => ROUTING,
        Some("limit") => LIMIT,
        Some(other) => panic!("unexpected object at {other}"),
    }
}

fn check(
    v: &Value,
    path: &mut Vec<&'static str>,
    root: &'static [&'static str],
    seen: &mut BTreeSet<String>,
) {
    match v {
        Value::Null => panic!("null at {path:?}"),
        Value::Array(a) => a.iter().for_each(|x| check(x, path, root, seen)),
        Value::Object(m) => {
            let attributes = path.last() == Some(&"attributes");
            let model = if path.is_empty() || attributes {
                root
            } else {
                model_of(path)
            };
            for (k, x) in m {
                if attributes {
                    assert!(x.is_string(), "attributes are strings");
                    continue;
                }
                let known = model.iter().find(|n| **n == k.as_str()).copied();
                let Some(name) = known else {
                    panic!("{k:?} is not an official field of {path:?}")
                };
                seen.insert(name.to_string());
                let enum_ok =
                    |list: &[&str]| assert!(list.contains(&x.as_str().unwrap()), "{k}={x}");
                match name {
                    "mediaType" => enum_ok(MEDIA),
                    "segmentType" => enum_ok(SEGMENT_TYPES),
                    "disconnectType" => enum_ok(DISCONNECT),
                    "purpose" | "conversationInitiator" => enum_ok(PURPOSE),
                    "direction" | "originatingDirection" => enum_ok(&["inbound", "outbound"]),
                    "systemPresence" => enum_ok(PRESENCES),
                    "routingStatus" if x.is_string() => enum_ok(ROUTINGS),
                    "name" if path.last() == Some(&"metrics") => enum_ok(METRICS),
                    "usedRouting" => enum_ok(&[
                        "Bullseye",
                        "Conditional",
                        "Direct",
                        "Last",
                        "Manual",
                        "Predictive",
                        "Preferred",
                        "Standard",
                        "Vip",
                    ]),
                    _ => {}
                }
                path.push(name);
                check(x, path, root, seen);
                path.pop();
            }
        }
        _ => {}
    }
}

fn check_doc(v: &Value, root: &'static [&'static str]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    check(v, &mut Vec::new(), root, &mut seen);
    seen
}

#[actix_rt::test]
async fn field_names_and_enums_are_official_and_never_null() {
    let mut cfg = small_config();
    cfg.job_concurrency = 1;
    let sim = start(cfg);
    let api = Api::new(&sim).login().await;
    let n = test_now();
    let day = Interval::new(n - Duration::days(1), n).to_string();
    // A whole day of query pages, including in-progress conversations.
    let mut seen = BTreeSet::new();
    for page in 1..=5 {
        let r = api
            .post(
                QUERY,
                &json!({"interval": day, "paging": {"pageSize": 100, "pageNumber": page}}),
            )
            .await;
        seen.extend(check_doc(&r.json(), PAGE));
    }
    for f in [
        "conversationEnd",
        "segmentEnd",
        "wrapUpCode",
        "queueId",
        "emitDate",
        "flow",
        "userId",
        "disconnectType",
        "mediaStatsMinConversationMos",
    ] {
        assert!(seen.contains(f), "{f} is served");
    }
    assert!(
        !seen.contains("attributes"),
        "the query has no participant attributes"
    );
    // Users page.
    let r = api.post(USERS_QUERY, &json!({"interval": day})).await;
    let s = check_doc(&r.json(), PAGE);
    assert!(s.contains("organizationPresenceId") && s.contains("endTime"));
    // Job submission, status, results, availability.
    let r = api.post(CONV_JOBS, &json!({"interval": day})).await;
    check_doc(&r.json(), PAGE);
    let id = r.json()["jobId"].as_str().unwrap().to_string();
    loop {
        let st = api.get(&format!("{CONV_JOBS}/{id}")).await.json();
        check_doc(&st, STATUS);
        if st["state"] == "FULFILLED" {
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await; // polling interval
    }
    let r = api
        .get(&format!("{CONV_JOBS}/{id}/results?pageSize=200"))
        .await;
    assert!(check_doc(&r.json(), PAGE).contains("attributes"));
    check_doc(
        &api.get(&format!("{CONV_JOBS}/availability")).await.json(),
        PAGE,
    );
    // Error bodies: 400, 404, 401, and the 429 of the job cap (with its limit object).
    check_doc(
        &api.post(QUERY, &json!({"interval": "x"})).await.json(),
        ERROR,
    );
    check_doc(&api.get("/nowhere").await.json(), ERROR);
    check_doc(&Api::new(&sim).post(QUERY, &json!({})).await.json(), ERROR);
    let mut limited = small_config();
    limited.no_limits = false;
    limited.job_concurrency = 0;
    let sim2 = start(limited);
    let api2 = Api::new(&sim2).login().await;
    let r = api2.post(CONV_JOBS, &json!({"interval": day})).await;
    assert_eq!(r.status, 429);
    assert!(check_doc(&r.json(), ERROR).contains("limit"));
}
