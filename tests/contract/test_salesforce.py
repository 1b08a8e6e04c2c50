"""salesforce-sim driven by `simple-salesforce`: login by the client-credentials flow, query and
query_all with nextRecordsUrl, the compound Name and parent fields, create, update, upsert by
external id, delete, describe and Describe Global, sObject Collections, getUpdated/getDeleted,
limits, and the error shapes.

simple-salesforce only speaks HTTPS to `*.salesforce.com`; the session's transport sends those
requests to the simulator over plain HTTP instead. Nothing else of the client is changed."""

import datetime
import os
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

MY_DOMAIN = "attio-sync-sim.my"


def unique(prefix):
    """A value no other test (or run against the same simulator) uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class ToSimulator(HTTPAdapter):
    """Sends https:// requests to the simulator over http://, keeping path and query."""

    def __init__(self, sim_url):
        super().__init__()
        self.sim = urlsplit(sim_url)

    def send(self, request, **kwargs):
        u = urlsplit(request.url)
        request.url = u._replace(scheme=self.sim.scheme, netloc=self.sim.netloc).geturl()
        return super().send(request, **kwargs)


@pytest.fixture(scope="module")
def sf():
    session = requests.Session()
    session.mount("https://", ToSimulator(os.environ["SALESFORCE_SIM_URL"]))
    return Salesforce(
        consumer_key="sim-consumer-key",
        consumer_secret="sim-consumer-secret",
        domain=MY_DOMAIN,
        version="62.0",
        session=session,
    )


def test_login_by_client_credentials(sf):
    assert sf.session_id
    assert sf.sf_version == "62.0"


def test_create_get_update_upsert_delete(sf):
    acct = sf.Account.create({"Name": "Acme"})
    c = sf.Contact.create({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com", "AccountId": acct["id"]})
    assert c["success"] is True
    sf.Contact.update(c["id"], {"Title": "Countess"})
    got = sf.Contact.get(c["id"])
    assert got["Title"] == "Countess" and got["Name"] == "Ada Lovelace"
    key = unique("att-")
    assert sf.Contact.upsert(f"Attio_Id__c/{key}", {"LastName": "Hopper"}) == 201
    # From API 46.0 an upsert that updates answers 200 with `created: false`.
    assert sf.Contact.upsert(f"Attio_Id__c/{key}", {"LastName": "Hopper", "Title": "Admiral"}) == 200
    assert sf.Contact.get_by_custom_id("Attio_Id__c", key)["Title"] == "Admiral"
    assert sf.Contact.delete(c["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(c["id"])


def test_soql_with_the_compound_name_and_parent_fields(sf):
    acct = sf.Account.create({"Name": "Globex"})
    scorpio, orphan = unique("Scorpio"), unique("Orphan")
    sf.Contact.create({"FirstName": "Hank", "LastName": scorpio, "AccountId": acct["id"]})
    sf.Contact.create({"LastName": orphan})
    rows = sf.query(
        f"SELECT Id, Name, Account.Name FROM Contact WHERE LastName IN ('{scorpio}', '{orphan}') ORDER BY LastName"
    )["records"]
    assert [r["Name"] for r in rows] == [orphan, f"Hank {scorpio}"]
    assert rows[0]["Account"] is None
    assert rows[1]["Account"]["Name"] == "Globex"
    with pytest.raises(SalesforceMalformedRequest) as e:
        sf.query("SELECT Nope.Name FROM Contact")
    assert e.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_query_all_follows_next_records_url(sf):
    prefix = unique("Bulk")
    for chunk in range(3):
        sf.restful(
            "composite/sobjects",
            method="POST",
            json={"allOrNone": True, "records": [{"attributes": {"type": "Account"}, "Name": f"{prefix} {chunk}-{i}"} for i in range(150)]},
        )
    # Pages of 200 (Salesforce's smallest batch) so 450 rows take three.
    sf.headers["Sforce-Query-Options"] = "batchSize=200"
    try:
        first = sf.query(f"SELECT Id FROM Account WHERE Name LIKE '{prefix}%'")
        assert first["totalSize"] == 450 and first["done"] is False and first["nextRecordsUrl"]
        assert len(first["records"]) == 200
        everything = sf.query_all(f"SELECT Id, Name FROM Account WHERE Name LIKE '{prefix}%'")
        assert len(everything["records"]) == 450
    finally:
        del sf.headers["Sforce-Query-Options"]


def test_collections_update_and_delete(sf):
    made = sf.restful(
        "composite/sobjects",
        method="POST",
        json={"allOrNone": False, "records": [{"attributes": {"type": "Contact"}, "LastName": n} for n in ("A", "B")]},
    )
    ids = [m["id"] for m in made]
    assert all(m["success"] for m in made)
    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"allOrNone": False, "records": [{"attributes": {"type": "Contact"}, "id": i, "Title": "T"} for i in ids]},
    )
    assert all(u["success"] for u in updated)
    gone = sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(ids), "allOrNone": "false"})
    assert all(g["success"] for g in gone)


def test_describe_describe_global_and_limits(sf):
    d = sf.Contact.describe()
    fields = {f["name"]: f for f in d["fields"]}
    assert fields["Name"]["updateable"] is False
    assert {"Contact", "Account", "Opportunity"} <= {o["name"] for o in sf.describe()["sobjects"]}
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] >= limits["DailyApiRequests"]["Remaining"] > 0


def test_describe_gives_types_picklists_and_what_is_required_or_read_only(sf):
    fields = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert fields["StageName"]["type"] == "picklist"
    assert "Closed Won" in [v["value"] for v in fields["StageName"]["picklistValues"]]
    assert fields["Amount"]["type"] == "double"
    assert fields["CloseDate"]["nillable"] is False
    contact = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert contact["LastName"]["nillable"] is False and contact["LastName"]["createable"] is True
    assert contact["Name"]["updateable"] is False
    assert contact["Email"]["type"] == "email"
    assert contact["AccountId"]["referenceTo"] == ["Account"]


def test_get_updated_and_get_deleted(sf):
    c = sf.Contact.create({"LastName": "Window"})
    sf.Contact.delete(c["id"])
    # Both calls cover whole minutes up to the last complete one: move the org's clock past it.
    moved = requests.post(os.environ["SALESFORCE_SIM_URL"] + "/_sim/clock", json={"advance_s": 120})
    now = datetime.datetime.strptime(moved.json()["now"], "%Y-%m-%dT%H:%M:%S.%f%z")
    end, start = now, now - datetime.timedelta(days=1)
    assert "ids" in sf.Contact.updated(start, end)
    deleted = sf.Contact.deleted(start, end)
    assert c["id"] in [r["id"] for r in deleted["deletedRecords"]]


def test_unknown_resources_answer_salesforce_errors(sf):
    with pytest.raises(SalesforceResourceNotFound) as e:
        sf.restful("no/such/resource")
    assert e.value.content[0]["errorCode"] == "NOT_FOUND"
