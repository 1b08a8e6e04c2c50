//! Associations v4 between contacts, companies and deals: default (unlabelled) associations are
//! made, listed page by page and removed. HubSpot creates and removes both directions at once.

use domain::ids::ExternalId;
use ports::error::{PortError, PortResult};
use reqwest::Method;
use serde::Deserialize;

use crate::wire::decode;
use crate::{HubSpotClient, rejected};

#[derive(Debug, Deserialize)]
struct AssocPage {
    results: Vec<AssocResult>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssocResult {
    to_object_id: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<Next>,
}

#[derive(Debug, Deserialize)]
struct Next {
    after: String,
}

impl HubSpotClient {
    fn association_path(&self, from: &str, from_id: &ExternalId, to: &str) -> String {
        format!(
            "{}/{from}/{from_id}/associations/{to}",
            self.config.associations_prefix
        )
    }

    /// Associates two records with HubSpot's default type for the pair (e.g. contact → company,
    /// 279). `NotFound` when either record does not exist; `Rejected` when the pair of objects
    /// has no default association type.
    pub async fn associate(
        &self,
        from: &str,
        from_id: &ExternalId,
        to: &str,
        to_id: &ExternalId,
    ) -> PortResult<()> {
        let path = format!(
            "{}/{from}/{from_id}/associations/default/{to}/{to_id}",
            self.config.associations_prefix
        );
        let answer = self.send(Method::PUT, &path, &[], None).await?;
        match answer.status {
            200 | 201 => Ok(()),
            s => Err(rejected(s, &answer.body)),
        }
    }

    /// The ids of the `to` records associated with one record, every page. `NotFound` when the
    /// record does not exist.
    pub async fn associations(
        &self,
        from: &str,
        from_id: &ExternalId,
        to: &str,
    ) -> PortResult<Vec<ExternalId>> {
        let path = self.association_path(from, from_id, to);
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", self.config.association_page.to_string())];
            if let Some(a) = &after {
                query.push(("after", a.clone()));
            }
            let answer = self.send(Method::GET, &path, &query, None).await?;
            if answer.status != 200 {
                return Err(rejected(answer.status, &answer.body));
            }
            let page: AssocPage = decode(answer.body, "association page")?;
            for r in page.results {
                let raw = match r.to_object_id {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    other => {
                        return Err(PortError::backend(
                            "HubSpot association page (unexpected shape)",
                            format!("toObjectId {other}"),
                        ));
                    }
                };
                ids.push(ExternalId::parse(&raw).map_err(|e| {
                    PortError::backend("HubSpot association page (bad toObjectId)", e)
                })?);
            }
            match page.paging.and_then(|p| p.next) {
                Some(next) => after = Some(next.after),
                None => return Ok(ids),
            }
        }
    }

    /// Removes the association between two records in both directions. Removing one that does
    /// not exist succeeds, as in HubSpot.
    pub async fn dissociate(
        &self,
        from: &str,
        from_id: &ExternalId,
        to: &str,
        to_id: &ExternalId,
    ) -> PortResult<()> {
        let path = format!("{}/{to_id}", self.association_path(from, from_id, to));
        let answer = self.send(Method::DELETE, &path, &[], None).await?;
        match answer.status {
            200 | 204 => Ok(()),
            s => Err(rejected(s, &answer.body)),
        }
    }
}
