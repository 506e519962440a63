//! The platform API's directory listings (users, queues, wrap-up codes, divisions) and their
//! serde types. Every listing pages the same way: `pageSize` + `pageNumber` (from 1) in, an
//! `EntityListing` (`entities`, `pageNumber`, `pageCount`, `total`, `nextUri`) out.
//! [`GenesysClient::list_all`] pages to the end through the same RateLimiter as every call.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ApiError, GenesysClient, Priority};

/// Entities per page asked for. The SDK documents default 25; 100 is accepted by every
/// listing (see README, "Directory").
pub const DIRECTORY_PAGE_SIZE: u32 = 100;
/// Pages read from one listing at most (a guard against a server that never ends).
pub const MAX_PAGES: u32 = 10_000;

/// A directory listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listing {
    /// `GET /api/v2/users?state=any` (active, inactive and deleted users).
    Users,
    /// `GET /api/v2/routing/queues`.
    Queues,
    /// `GET /api/v2/routing/wrapupcodes`.
    WrapupCodes,
    /// `GET /api/v2/authorization/divisions`.
    Divisions,
}

impl Listing {
    pub const ALL: [Listing; 4] = [
        Listing::Divisions,
        Listing::Queues,
        Listing::WrapupCodes,
        Listing::Users,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Listing::Users => "/api/v2/users",
            Listing::Queues => "/api/v2/routing/queues",
            Listing::WrapupCodes => "/api/v2/routing/wrapupcodes",
            Listing::Divisions => "/api/v2/authorization/divisions",
        }
    }

    /// The endpoint's name in metrics and logs.
    pub fn endpoint(self) -> &'static str {
        match self {
            Listing::Users => "users.list",
            Listing::Queues => "routing.queues.list",
            Listing::WrapupCodes => "routing.wrapupcodes.list",
            Listing::Divisions => "authorization.divisions.list",
        }
    }

    /// Query parameters besides paging.
    fn extra_query(self) -> Vec<(&'static str, String)> {
        match self {
            // The default is `active`; history still names inactive and deleted users.
            Listing::Users => vec![("state", "any".into())],
            _ => Vec::new(),
        }
    }
}

/// One page of a listing; entities kept raw so each row stores exactly what was sent.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityListing {
    #[serde(default)]
    pub entities: Vec<Box<RawValue>>,
    pub page_number: Option<i64>,
    pub page_count: Option<i64>,
    pub total: Option<i64>,
    pub next_uri: Option<String>,
}

/// A reference to another entity (`division`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DomainRef {
    pub id: String,
    pub name: Option<String>,
}

/// The fields Sluice keeps of any directory entity (absent ones are `None`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct DirectoryEntity {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub state: Option<String>,
    pub division: Option<DomainRef>,
}

/// An entity and its JSON as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntity {
    pub entity: DirectoryEntity,
    pub raw_json: String,
}

/// Parses the entities of a page; an entity without an id is skipped (it cannot be keyed).
pub fn parse_entities(page: &EntityListing) -> Vec<ListedEntity> {
    page.entities
        .iter()
        .filter_map(|raw| {
            serde_json::from_str::<DirectoryEntity>(raw.get())
                .ok()
                .filter(|e| !e.id.is_empty())
                .map(|entity| ListedEntity {
                    entity,
                    raw_json: raw.get().to_string(),
                })
        })
        .collect()
}

/// Whether another page follows `page` (page `asked`): by `pageCount` when given, else by
/// `nextUri`; an empty page always ends the listing.
pub fn has_next(page: &EntityListing, asked: u32) -> bool {
    if page.entities.is_empty() {
        return false;
    }
    match page.page_count {
        Some(count) => i64::from(asked) < count,
        None => page.next_uri.is_some(),
    }
}

impl GenesysClient {
    /// One page of `listing`.
    pub async fn directory_page(
        &self,
        listing: Listing,
        page_number: u32,
        page_size: u32,
        p: Priority,
    ) -> Result<EntityListing, ApiError> {
        let mut query = vec![
            ("pageSize", page_size.to_string()),
            ("pageNumber", page_number.to_string()),
        ];
        query.extend(listing.extra_query());
        self.get_json(listing.endpoint(), listing.path().to_string(), query, p)
            .await
    }

    /// Every entity of `listing`, paged to the end; returns them and the pages read.
    pub async fn list_all(
        &self,
        listing: Listing,
        p: Priority,
    ) -> Result<(Vec<ListedEntity>, u32), ApiError> {
        let mut out = Vec::new();
        let mut page_number = 1;
        loop {
            let page = self
                .directory_page(listing, page_number, DIRECTORY_PAGE_SIZE, p)
                .await?;
            out.extend(parse_entities(&page));
            if !has_next(&page, page_number) || page_number >= MAX_PAGES {
                return Ok((out, page_number));
            }
            page_number += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(json: &str) -> EntityListing {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn pages_end_by_page_count_or_next_uri_or_an_empty_page() {
        let p = page(r#"{"entities":[{"id":"a"}],"pageNumber":1,"pageCount":2}"#);
        assert!(has_next(&p, 1));
        assert!(!has_next(&p, 2));
        let p = page(r#"{"entities":[{"id":"a"}],"nextUri":"/api/v2/users?pageNumber=2"}"#);
        assert!(has_next(&p, 1));
        let p = page(r#"{"entities":[],"pageCount":9}"#);
        assert!(!has_next(&p, 1));
    }

    #[test]
    fn entities_keep_their_raw_json_and_entities_without_id_are_skipped() {
        let p = page(
            r#"{"entities":[{"id":"u1","name":"Ann","email":"a@x","state":"deleted",
                "division":{"id":"d1","name":"Home"},"extra":[1,2]},{"name":"no id"},"junk"]}"#,
        );
        let got = parse_entities(&p);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].entity.state.as_deref(), Some("deleted"));
        assert_eq!(got[0].entity.division.as_ref().unwrap().id, "d1");
        assert!(got[0].raw_json.contains("\"extra\":[1,2]"));
    }

    /// A listing page is server input: any body either fails to parse (an error, not a panic)
    /// or yields entities that all have an id, and paging always ends on an empty page.
    mod hostile_input {
        use super::super::*;
        use proptest::prelude::*;

        fn entity_like() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,30}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
                ("\\PC{0,12}", proptest::option::of("\\PC{0,12}")).prop_map(|(id, name)| {
                    serde_json::json!({"id": id, "name": name, "division": {"id": "d"}}).to_string()
                }),
                Just("null".to_string()),
                Just("{\"id\":7}".to_string()),
            ]
        }

        proptest! {
            #[test]
            fn any_body_parses_or_errs(body in "\\PC{0,80}") {
                let _ = serde_json::from_str::<EntityListing>(&body);
            }

            #[test]
            fn listed_entities_always_have_an_id(
                entities in proptest::collection::vec(entity_like(), 0..6),
                page_count in proptest::option::of(-3i64..5),
                asked in 0u32..6,
            ) {
                let body = format!(
                    "{{\"entities\":[{}],\"pageCount\":{}}}",
                    entities.join(","),
                    page_count.map_or("null".to_string(), |c| c.to_string())
                );
                let page: EntityListing = serde_json::from_str(&body).unwrap();
                for e in parse_entities(&page) {
                    prop_assert!(!e.entity.id.is_empty());
                }
                if entities.is_empty() {
                    prop_assert!(!has_next(&page, asked));
                }
            }
        }
    }
}
