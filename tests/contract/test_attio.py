"""attio-sim driven by Attio's Python SDK (`attio` on PyPI, generated from Attio's current OpenAPI
document), through its typed methods, over what an integration uses. Every call goes through the
SDK's own request building and response validation: a field the SDK requires, or a shape it
refuses, fails here."""

import os
import secrets

import attio
import pytest
from attio import errors


@pytest.fixture
def sdk():
    # Every well-formed 64-character token is a workspace of its own in attio-sim.
    return attio.SDK(oauth2=secrets.token_hex(32), server_url=os.environ["ATTIO_SIM_URL"])


def field(value, key):
    """A field of a typed value (the SDK's models) or of a plain dict."""
    return value[key] if isinstance(value, dict) else getattr(value, key)


def person(sdk, email, first, last, title=None):
    values = {
        "email_addresses": [email],
        "name": [{"first_name": first, "last_name": last, "full_name": f"{first} {last}"}],
    }
    if title:
        values["job_title"] = [title]
    r = sdk.records.post_v2_objects_object_records(object="people", data={"values": values})
    return r.data.id.record_id


def test_self_describes_the_token(sdk):
    me = sdk.meta.get_v2_self()
    assert me.active is True
    assert me.token_level in ("workspace", "user")
    assert me.workspace_id


def test_records_query_with_filters_sorts_and_pages(sdk):
    for i, (first, last) in enumerate([("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing")]):
        person(sdk, f"p{i}@example.com", first, last)
    # The SDK sends limit and offset as JSON numbers with a fraction part (10.0).
    page = sdk.records.post_v2_objects_object_records_query(
        object="people",
        sorts=[{"direction": "asc", "attribute": "name", "field": "last_name"}],
        limit=2,
        offset=0,
    )
    names = [field(r.values["name"][0], "last_name") for r in page.data]
    assert names == ["Hopper", "Lovelace"]
    rest = sdk.records.post_v2_objects_object_records_query(object="people", limit=2, offset=2)
    assert len(rest.data) == 1
    only = sdk.records.post_v2_objects_object_records_query(
        object="people", filter_={"email_addresses": "p2@example.com"}
    )
    assert [field(r.values["name"][0], "first_name") for r in only.data] == ["Alan"]


def test_assert_get_patch_put_delete(sdk):
    data = {"values": {"email_addresses": ["grace@example.com"], "job_title": ["Rear Admiral"]}}
    first = sdk.records.put_v2_objects_object_records(
        object="people", matching_attribute="email_addresses", data=data
    )
    again = sdk.records.put_v2_objects_object_records(
        object="people", matching_attribute="email_addresses", data=data
    )
    rid = first.data.id.record_id
    assert again.data.id.record_id == rid, "asserting twice finds the same record"
    got = sdk.records.get_v2_objects_object_records_record_id_(object="people", record_id=rid)
    assert field(got.data.values["job_title"][0], "value") == "Rear Admiral"
    sdk.records.patch_v2_objects_object_records_record_id_(
        object="people", record_id=rid, data={"values": {"job_title": ["Commodore"]}}
    )
    sdk.records.put_v2_objects_object_records_record_id_(
        object="people",
        record_id=rid,
        data={"values": {"email_addresses": ["grace@example.com"], "job_title": ["Admiral"]}},
    )
    got = sdk.records.get_v2_objects_object_records_record_id_(object="people", record_id=rid)
    assert field(got.data.values["job_title"][0], "value") == "Admiral"
    history = sdk.records.get_v2_objects_object_records_record_id_attributes_attribute_values(
        object="people", record_id=rid, attribute="job_title", show_historic=True
    )
    assert len(history.data) >= 3
    sdk.records.delete_v2_objects_object_records_record_id_(object="people", record_id=rid)
    # The SDK parses a 404 into the typed error Attio's document declares for it.
    with pytest.raises(errors.GetV2ObjectsObjectRecordsRecordIDInvalidRequestError) as e:
        sdk.records.get_v2_objects_object_records_record_id_(object="people", record_id=rid)
    assert e.value.status_code == 404


def test_lists_entries_and_a_records_entries(sdk):
    lists = sdk.lists.get_v2_lists()
    sales = next(l for l in lists.data if l.api_slug == "sales")
    deal = sdk.records.post_v2_objects_object_records(
        object="deals", data={"values": {"name": ["Acme renewal"], "stage": ["Lead"]}}
    ).data.id.record_id
    entry = sdk.entries.post_v2_lists_list_entries(
        list_id="sales",
        data={"parent_record_id": deal, "parent_object": "deals", "entry_values": {}},
    )
    eid = entry.data.id.entry_id
    found = sdk.entries.post_v2_lists_list_entries_query(list_id="sales", limit=10, offset=0)
    assert eid in [e.id.entry_id for e in found.data]
    got = sdk.entries.get_v2_lists_list_entries_entry_id_(list_id="sales", entry_id=eid)
    assert got.data.parent_record_id == deal
    of_record = sdk.records.get_v2_objects_object_records_record_id_entries(
        object="deals", record_id=deal
    )
    assert [(e.list_id, e.entry_id) for e in of_record.data] == [(sales.id.list_id, eid)]
    sdk.entries.delete_v2_lists_list_entries_entry_id_(list_id="sales", entry_id=eid)


def test_notes(sdk):
    rid = person(sdk, "ada@example.com", "Ada", "Lovelace")
    note = sdk.notes.post_v2_notes(
        data={
            "parent_object": "people",
            "parent_record_id": rid,
            "title": "First call",
            "format": "plaintext",
            "content": "Talked about engines.",
        }
    )
    nid = note.data.id.note_id
    listed = sdk.notes.get_v2_notes(parent_object="people", parent_record_id=rid, limit=10)
    assert [n.id.note_id for n in listed.data] == [nid]
    assert sdk.notes.get_v2_notes_note_id_(note_id=nid).data.title == "First call"
    sdk.notes.delete_v2_notes_note_id_(note_id=nid)


def test_tasks_have_completed_at(sdk):
    rid = person(sdk, "alan@example.com", "Alan", "Turing")
    task = sdk.tasks.post_v2_tasks(
        data={
            "content": "Send the paper",
            "format": "plaintext",
            "deadline_at": None,
            "is_completed": False,
            "linked_records": [{"target_object": "people", "target_record_id": rid}],
            "assignees": [],
        }
    )
    tid = task.data.id.task_id
    assert task.data.completed_at is None
    done = sdk.tasks.patch_v2_tasks_task_id_(task_id=tid, data={"is_completed": True})
    assert done.data.is_completed is True and done.data.completed_at is not None
    listed = sdk.tasks.get_v2_tasks(limit=10)
    assert tid in [t.id.task_id for t in listed.data]
    sdk.tasks.delete_v2_tasks_task_id_(task_id=tid)


def test_webhooks(sdk):
    hook = sdk.webhooks.post_v2_webhooks(
        data={
            "target_url": "https://example.com/hooks",
            "subscriptions": [{"event_type": "record.created", "filter": None}],
        }
    )
    wid = hook.data.id.webhook_id
    assert hook.data.secret
    assert wid in [w.id.webhook_id for w in sdk.webhooks.get_v2_webhooks().data]
    sdk.webhooks.patch_v2_webhooks_webhook_id_(
        webhook_id=wid, data={"target_url": "https://example.com/other"}
    )
    assert sdk.webhooks.get_v2_webhooks_webhook_id_(webhook_id=wid).data.target_url == "https://example.com/other"
    sdk.webhooks.delete_v2_webhooks_webhook_id_(webhook_id=wid)


def test_objects_and_attributes(sdk):
    slugs = [o.api_slug for o in sdk.objects.get_v2_objects().data]
    assert {"people", "companies", "deals"} <= set(slugs)
    attrs = sdk.attributes.get_v2_target_identifier_attributes(target="objects", identifier="people")
    assert "email_addresses" in [a.api_slug for a in attrs.data]
    stage = sdk.attributes.get_v2_target_identifier_attributes_attribute_statuses(
        target="lists", identifier="sales", attribute="stage"
    )
    assert stage.data
