//! Actors: who made a change (`created_by_actor`, webhook `actor`).

use serde::{Deserialize, Serialize};

use crate::macros::open_enum;

open_enum! {
    /// The kind of actor.
    pub enum ActorType {
        ApiToken = "api-token",
        WorkspaceMember = "workspace-member",
        System = "system",
        App = "app",
    }
}

/// An actor reference as Attio sends it. Both fields may be null (system actors have no id; some
/// live responses omit the type).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type", default)]
    pub actor_type: Option<ActorType>,
    #[serde(default)]
    pub id: Option<String>,
}

impl Actor {
    pub fn new(actor_type: ActorType, id: Option<String>) -> Self {
        Self {
            actor_type: Some(actor_type),
            id,
        }
    }

    /// Whether this actor is the API token with the given id (used to recognise our own writes).
    pub fn is_api_token(&self, token_id: &str) -> bool {
        self.actor_type == Some(ActorType::ApiToken) && self.id.as_deref() == Some(token_id)
    }
}
