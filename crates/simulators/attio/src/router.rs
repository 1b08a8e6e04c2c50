//! The router: every route of the simulated API, its fault layer and Attio's answer to an unknown
//! endpoint. Handlers live with their resource (`objects`, `records`, `lists`, `webhooks`,
//! `activities`); what they share is in `extract`.

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, Uri};
use axum::routing::{get, post};

use crate::Sim;
use crate::error::ApiError;
use crate::objects::*;
use crate::records::*;

pub fn router(sim: Arc<Sim>) -> Router {
    let app = Router::new()
        .route("/v2/self", get(whoami))
        .route("/v2/objects", get(list_objects))
        .route("/v2/objects/{object}", get(get_object))
        .route(
            "/v2/{target}/{identifier}/attributes",
            get(list_attributes).post(crate::objects::create_attribute),
        )
        .route(
            "/v2/{target}/{identifier}/attributes/{attribute}",
            get(get_attribute),
        )
        .route(
            "/v2/{target}/{identifier}/attributes/{attribute}/options",
            get(list_options),
        )
        .route(
            "/v2/{target}/{identifier}/attributes/{attribute}/statuses",
            get(list_statuses),
        )
        .route("/v2/objects/{object}/records/query", post(query_records))
        .route(
            "/v2/objects/{object}/records",
            post(create_record).put(assert_record),
        )
        .route(
            "/v2/objects/{object}/records/{record_id}",
            get(get_record)
                .patch(patch_record)
                .put(put_record)
                .delete(delete_record),
        )
        .route(
            "/v2/objects/{object}/records/{record_id}/attributes/{attribute}/values",
            get(attribute_values),
        )
        .route(
            "/v2/objects/{object}/records/{record_id}/entries",
            get(record_entries),
        )
        .route("/v2/lists", get(crate::lists::list_lists))
        .route("/v2/lists/{list}", get(crate::lists::get_list))
        .route(
            "/v2/lists/{list}/entries/query",
            post(crate::lists::query_entries),
        )
        .route(
            "/v2/lists/{list}/entries",
            post(crate::lists::create_entry).put(crate::lists::assert_entry),
        )
        .route(
            "/v2/lists/{list}/entries/{entry_id}",
            get(crate::lists::get_entry)
                .patch(crate::lists::patch_entry)
                .put(crate::lists::put_entry)
                .delete(crate::lists::delete_entry),
        )
        .route(
            "/v2/lists/{list}/entries/{entry_id}/attributes/{attribute}/values",
            get(crate::lists::entry_values),
        )
        .route(
            "/v2/webhooks",
            get(crate::webhooks::list).post(crate::webhooks::create),
        )
        .route(
            "/v2/webhooks/{webhook}",
            get(crate::webhooks::get)
                .patch(crate::webhooks::update)
                .delete(crate::webhooks::delete),
        )
        .route("/v2/workspace_members", get(list_members))
        .route("/v2/workspace_members/{member}", get(get_member))
        .route(
            "/v2/notes",
            get(crate::activities::list_notes).post(crate::activities::create_note),
        )
        .route(
            "/v2/notes/{note}",
            get(crate::activities::get_note).delete(crate::activities::delete_note),
        )
        .route(
            "/v2/tasks",
            get(crate::activities::list_tasks).post(crate::activities::create_task),
        )
        .route(
            "/v2/tasks/{task}",
            get(crate::activities::get_task)
                .patch(crate::activities::update_task)
                .delete(crate::activities::delete_task),
        )
        .route("/_sim/faults", sim_support::faults_route::<crate::Sim>())
        .route(
            "/v2/objects/{object}/records/merge",
            post(crate::records::merge_api),
        )
        .route(
            "/_sim/objects/{object}/records/{survivor}/merge",
            post(merge_records),
        )
        .fallback(unknown_route)
        // Attio answers an unsupported method on a known path as an unknown endpoint.
        .method_not_allowed_fallback(unknown_route)
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            crate::faults::layer,
        ))
        .with_state(sim);
    sim_support::requests::RequestLog::default().wrap(app)
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "Could not find endpoint \"{method} {}\".",
        uri.path()
    ))
}
