"""hubspot-sim driven by HubSpot's Python client (`hubspot-api-client`), through its typed
methods: objects CRUD, batch upsert by a unique property, batch read, search with filter groups,
sorts and paging, default associations, archive, property definitions, and the 404, 409 and 429
answers."""

import json
import os
import secrets

import hubspot
import pytest
from hubspot.crm.associations.v4 import ApiException as AssocApiException
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyCreate


def client(url):
    # Every bearer token is an account of its own in hubspot-sim.
    return hubspot.Client.create(access_token=f"pat-na1-{secrets.token_hex(8)}", host=url)


@pytest.fixture
def hs():
    return client(os.environ["HUBSPOT_SIM_URL"])


def contact(hs, email, **props):
    return hs.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": email, **props})
    )


def test_create_answers_with_the_system_properties(hs):
    c = contact(hs, "ada@example.com", firstname="Ada")
    for p in ("hs_object_id", "createdate", "lastmodifieddate"):
        assert c.properties.get(p), p
    assert c.properties["hs_object_id"] == c.id


def test_reads_take_exploded_properties_and_a_python_boolean(hs):
    c = contact(hs, "grace@example.com", firstname="Grace", lastname="Hopper")
    got = hs.crm.contacts.basic_api.get_by_id(
        c.id, properties=["email", "firstname"], properties_with_history=["firstname"], archived=False
    )
    assert got.properties["email"] == "grace@example.com"
    assert got.properties["firstname"] == "Grace"
    page = hs.crm.contacts.basic_api.get_page(limit=10, properties=["email", "lastname"], archived=False)
    assert [r.properties["lastname"] for r in page.results] == ["Hopper"]


def test_update_archive_and_the_404_shape(hs):
    c = contact(hs, "alan@example.com")
    up = hs.crm.contacts.basic_api.update(c.id, SimplePublicObjectInput(properties={"jobtitle": "Mathematician"}))
    assert up.properties["jobtitle"] == "Mathematician"
    hs.crm.contacts.basic_api.archive(c.id)
    with pytest.raises(ApiException) as e:
        hs.crm.contacts.basic_api.get_by_id(c.id)
    assert e.value.status == 404
    body = json.loads(e.value.body)
    assert body["status"] == "error" and body["category"] == "OBJECT_NOT_FOUND"


def test_a_duplicate_unique_value_is_a_409(hs):
    contact(hs, "dup@example.com")
    with pytest.raises(ApiException) as e:
        contact(hs, "dup@example.com")
    assert e.value.status == 409
    assert json.loads(e.value.body)["category"] == "CONFLICT"


def test_batch_upsert_by_a_unique_property_and_batch_read(hs):
    up = hs.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                SimplePublicObjectBatchInputUpsert(id="e1@example.com", id_property="email", properties={"firstname": "One"}),
                SimplePublicObjectBatchInputUpsert(id="e2@example.com", id_property="email", properties={"firstname": "Two"}),
            ]
        )
    )
    ids = sorted(r.id for r in up.results)
    assert len(ids) == 2
    again = hs.crm.contacts.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[SimplePublicObjectBatchInputUpsert(id="e1@example.com", id_property="email", properties={"firstname": "Uno"})]
        )
    )
    assert again.results[0].id in ids, "an upsert by a unique value updates"
    read = hs.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids], properties=["firstname"], properties_with_history=[]
        )
    )
    assert sorted(r.properties["firstname"] for r in read.results) == ["Two", "Uno"]


def test_search_with_filter_groups_sorts_and_paging(hs):
    for i in range(5):
        contact(hs, f"s{i}@example.com", lastname=f"L{i}", jobtitle="engineer" if i % 2 else "manager")
    req = lambda after=None: PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "jobtitle", "operator": "EQ", "value": "manager"}]}],
        sorts=[{"propertyName": "lastname", "direction": "DESCENDING"}],
        properties=["lastname"],
        limit=2,
        after=after,
    )
    first = hs.crm.contacts.search_api.do_search(public_object_search_request=req())
    assert first.total == 3
    assert [r.properties["lastname"] for r in first.results] == ["L4", "L2"]
    rest = hs.crm.contacts.search_api.do_search(public_object_search_request=req(first.paging.next.after))
    assert [r.properties["lastname"] for r in rest.results] == ["L0"]


def test_default_associations_both_ways(hs):
    c = contact(hs, "assoc@example.com")
    co = hs.crm.companies.basic_api.create(CompanyCreate(properties={"name": "Acme", "domain": "acme.com"}))
    made = hs.crm.associations.v4.basic_api.create_default("contacts", c.id, "companies", co.id)
    pairs = {(r._from.id, r.to.id) for r in made.results}
    assert pairs == {(c.id, co.id), (co.id, c.id)}
    assert all(r.association_spec.association_type_id for r in made.results)
    listed = hs.crm.associations.v4.basic_api.get_page("contacts", c.id, "companies", limit=10)
    assert [r.to_object_id for r in listed.results] == [co.id]
    back = hs.crm.associations.v4.basic_api.get_page("companies", co.id, "contacts")
    assert [r.to_object_id for r in back.results] == [c.id]
    hs.crm.associations.v4.basic_api.archive("contacts", c.id, "companies", co.id)
    assert hs.crm.associations.v4.basic_api.get_page("contacts", c.id, "companies").results == []


def test_property_definitions_with_types_options_and_read_only_values(hs):
    props = {p.name: p for p in hs.crm.properties.core_api.get_all(object_type="deals").results}
    stage = props["dealstage"]
    assert stage.type == "enumeration" and stage.field_type == "select"
    assert "closedwon" in [o.value for o in stage.options]
    assert props["amount"].type == "number"
    assert props["hs_lastmodifieddate"].modification_metadata.read_only_value is True
    assert props["dealname"].modification_metadata.read_only_value is False
    one = hs.crm.properties.core_api.get_by_name(object_type="contacts", property_name="email")
    assert one.name == "email" and one.has_unique_value is True


def test_the_rolling_window_answers_429_with_its_policy():
    hs = client(os.environ["HUBSPOT_SIM_LIMITED_URL"])
    with pytest.raises(ApiException) as e:
        for i in range(50):
            contact(hs, f"r{i}@example.com")
    assert e.value.status == 429
    body = json.loads(e.value.body)
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
