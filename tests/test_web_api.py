"""The web page's server side through Starlette's test client: pages, the JSON API, security."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from microdb import MicroDB, UnsupportedFeature
from microdb.web import create_app

XSS = "<script>alert('x')</script>"
DEEP: dict[str, Any] = {"a": 1}
for _ in range(30):
    DEEP = {"$and": [DEEP]}


def csrf_of(client: TestClient, path: str = "/") -> str:
    """The CSRF token a page hands its script."""
    found = re.search(r'name="csrf-token" content="([^"]*)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def errors_in(html: str) -> list[str]:
    """The inline error messages of a page."""
    return re.findall(r'class="error" id="error">(.*?)</p>', html, re.S)


@pytest.fixture
def people(tmp_path: Any) -> Iterator[MicroDB]:
    """A SQLite database with 120 people, a rich value each, and one index."""
    db = MicroDB(f"sqlite:///{tmp_path / 'people.db'}")
    table = db.table("people")
    table.insert_many(
        {"name": f"person {i}", "age": i, "born": dt.date(1990, 1, 1 + i % 28), "pay": Decimal("10.50"),
         "address": {"city": "Oslo" if i % 2 else "Rome", "tags": [i, i + 1]}}
        for i in range(120)
    )
    table.create_index("age")
    yield db
    db.close()


@pytest.fixture
def client(people: MicroDB) -> TestClient:
    """A read-write client with no sign-in, speaking from the server's own origin."""
    return TestClient(create_app(people, write=True))


@pytest.fixture
def writer(client: TestClient) -> Callable[..., Any]:
    """Send a write the way the page's script does (CSRF token, same origin)."""
    token = csrf_of(client)

    def send(method: str, url: str, body: Any = None) -> Any:
        return client.request(method, url, json=body, headers={"x-csrf-token": token, "origin": "http://testserver"})

    return send


# -- pages ------------------------------------------------------------------------------
def test_tables_page_lists_counts_and_indexes(client: TestClient) -> None:
    """The front page shows each table with its document count and its indexes."""
    html = client.get("/").text
    assert '<a href="/t/people">people</a>' in html
    assert ">120<" in html
    assert '<code class="index">age</code>' in html


def test_table_page_shows_a_page_of_collapsible_documents(client: TestClient) -> None:
    """The table page shows 50 documents in id order, folded JSON, rich values by type."""
    html = client.get("/t/people").text
    ids = [int(i) for i in re.findall(r'<li class="doc" data-id="(\d+)"', html)]
    assert ids == list(range(1, 51))
    assert '<details class="json object">' in html
    assert '<span class="type">date</span> <span class="text">1990-01-01</span>' in html
    assert '<span class="type">decimal</span> <span class="text">10.50</span>' in html
    assert 'href="/t/people?after=50"' in html and 'id="prev"' not in html


def test_pages_follow_ids_both_ways(client: TestClient) -> None:
    """Next and previous pages are found by id (keyset), with the right links."""
    html = client.get("/t/people?after=100&limit=10").text
    assert [int(i) for i in re.findall(r'data-id="(\d+)"', html)] == list(range(101, 111))
    assert 'href="/t/people?before=101&amp;limit=10"' in html
    html = client.get("/t/people?after=110&limit=10").text
    assert [int(i) for i in re.findall(r'data-id="(\d+)"', html)] == list(range(111, 121))
    assert 'id="next"' not in html
    html = client.get("/t/people?before=11&limit=10").text
    assert [int(i) for i in re.findall(r'data-id="(\d+)"', html)] == list(range(1, 11))
    assert 'id="prev"' not in html


def test_paging_skips_gaps_on_every_backend(db: MicroDB) -> None:
    """Deleted ranges (larger than a window) leave no empty page, on every storage."""
    table = db.table("t")
    table.insert_many({"n": i} for i in range(3000))
    table.remove(doc_ids=range(11, 2990))
    api = TestClient(create_app(db))
    first = api.get("/api/tables/t/documents?limit=10").json()
    assert [d["id"] for d in first["documents"]] == list(range(1, 11))
    second = api.get(f"/api/tables/t/documents?limit=10&after={first['next_after']}").json()
    assert [d["id"] for d in second["documents"]] == list(range(2990, 3000))
    assert second["next_after"] == 2999
    last = api.get("/api/tables/t/documents?limit=10&after=2999").json()
    assert [d["id"] for d in last["documents"]] == [3000] and last["next_after"] is None
    back = api.get("/api/tables/t/documents?limit=10&before=2990").json()
    assert [d["id"] for d in back["documents"]] == list(range(1, 11)) and back["prev_before"] is None


def test_query_box_shows_documents_count_plan_and_time(client: TestClient) -> None:
    """A filter with sort, fields and limit shows the documents, the count, explain() and the time."""
    html = client.get("/t/people", params={"filter": '{"age": {"$gte": 100}}', "sort": "-age",
                                           "fields": "name, age", "limit": "3"}).text
    assert [int(i) for i in re.findall(r'data-id="(\d+)"', html)] == [120, 119, 118]
    assert '<strong id="matches">20</strong>' in html
    assert re.search(r'id="time">\d+\.\d\d ms<', html)
    plan = re.search(r'<pre id="plan">(.*?)</pre>', html, re.S)
    assert plan is not None and "&#34;index&#34;" in plan.group(1)
    assert "address" not in html.split('id="docs"')[1].split("</ol>")[0]  # projected away


def test_query_with_rich_value_in_filter(client: TestClient) -> None:
    """Tagged values in a filter compare as the rich type they name."""
    found = client.get("/api/tables/people/query", params={"filter": '{"born": {"$datetime": "x"}}'})
    assert found.status_code == 400 and "$datetime" in found.json()["error"]
    found = client.get("/api/tables/people/query", params={"filter": '{"born": {"$date": "1990-01-03"}}'}).json()
    assert {d["id"] for d in found["documents"]} == {3, 31, 59, 87, 115}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filter": "{bad"}, "the filter is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ({"filter": "[1]"}, "a filter must be a JSON object"),
        ({"filter": '{"age": {"$near": 3}}'}, "unknown operator '$near' at field 'age'"),
        ({"filter": "{}", "sort": "-"}, "a sort key needs a field name"),
        ({"filter": "{}", "limit": "many"}, "limit must be a whole number"),
        ({"filter": "{}", "limit": "5000"}, "limit must be between 0 and 1000"),
        ({"filter": json.dumps({"name": {"$regex": "a" * 600}})}, "is 600 characters long; the limit is 512"),
        ({"filter": json.dumps({"name": "a" * 5000})}, "the limit is 4096"),
        ({"filter": json.dumps(DEEP)}, "the limit is 24"),
    ],
)
def test_query_errors_show_inline(client: TestClient, params: dict[str, str], message: str) -> None:
    """A bad query shows its exact error beside the query box, never a stack trace."""
    response = client.get("/t/people", params=params)
    assert response.status_code == 200
    shown = errors_in(response.text)
    assert len(shown) == 1 and message in shown[0].replace("&#34;", '"').replace("&#39;", "'")
    assert "Traceback" not in response.text
    api = client.get("/api/tables/people/query", params=params)
    assert api.status_code == 400 and message in api.json()["error"]


def test_document_page_and_missing_ones(client: TestClient) -> None:
    """A document has its own page; a missing document or table is a 404 page."""
    html = client.get("/t/people/doc/7").text
    assert "Document 7" in html and '"$decimal": "10.50"' in html.replace("&#34;", '"')
    assert client.get("/t/people/doc/999").status_code == 404
    assert client.get("/t/people/doc/x").status_code == 404
    assert client.get("/t/nobody").status_code == 404
    assert client.get("/api/tables/nobody/documents").json() == {"error": "no table 'nobody'"}


# -- the JSON API -----------------------------------------------------------------------
def test_api_reads(client: TestClient) -> None:
    """The API lists tables, pages documents in tagged JSON and reads one."""
    info = client.get("/api").json()
    assert info["write"] is True and info["tables"][0]["name"] == "people"
    page = client.get("/api/tables/people/documents?limit=2").json()
    assert page["next_after"] == 2 and page["prev_before"] is None
    assert client.get("/api/tables/people/count").json() == {"count": 120}
    assert page["documents"][0]["doc"]["born"] == {"$date": "1990-01-01"}
    assert client.get("/api/tables/people/documents/2").json()["doc"]["age"] == 1
    assert client.get("/api/tables/people/indexes").json() == [{"path": ["age"], "unique": False}]


def test_api_writes_round_trip_rich_values(people: MicroDB, writer: Callable[..., Any]) -> None:
    """Insert, replace and delete through the API; tagged values come back as Python types."""
    made = writer("POST", "/api/tables/people/documents", {"doc": {"name": "Zed", "at": {"$datetime": "2024-05-01T12:00:00"}}})
    assert made.status_code == 200
    new_id = made.json()["id"]
    assert people.table("people").get(doc_id=new_id)["at"] == dt.datetime(2024, 5, 1, 12)
    changed = writer("PUT", f"/api/tables/people/documents/{new_id}", {"doc": {"name": "Zoe"}})
    assert changed.json() == {"id": new_id, "doc": {"name": "Zoe"}}
    assert dict(people.table("people").get(doc_id=new_id)) == {"name": "Zoe"}  # replaced, not merged
    assert writer("DELETE", f"/api/tables/people/documents/{new_id}").json() == {"deleted": new_id}
    assert people.table("people").get(doc_id=new_id) is None
    assert writer("DELETE", f"/api/tables/people/documents/{new_id}").status_code == 404
    assert writer("POST", "/api/tables/fresh/documents", {"doc": {"a": 1}}).json() == {"id": 1}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"doc": [1]}, 400, 'send the document as {"doc": {...}}'),
        ({"doc": {"when": {"$datetime": "yesterday"}}}, 400, "bad $datetime value 'yesterday'"),
        ({"doc": {"n": {"$decimal": "ten"}}}, 400, "bad $decimal value"),
        ({"doc": {"age": 5}}, 409, "unique"),
    ],
)
def test_api_write_errors_are_exact_and_change_nothing(people: MicroDB, writer: Callable[..., Any], body: Any,
                                                       status: int, message: str) -> None:
    """A refused write answers with the exact reason and leaves the document as it was."""
    people.table("people").create_index("age", unique=True)
    before = dict(people.table("people").get(doc_id=1))
    response = writer("PUT", "/api/tables/people/documents/1", body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert dict(people.table("people").get(doc_id=1)) == before


def test_api_bad_json_body(writer: Callable[..., Any], client: TestClient) -> None:
    """A body that is not JSON is refused with the parser's message."""
    token = csrf_of(client)
    response = client.post("/api/tables/people/documents", content=b"{oops", headers={"x-csrf-token": token})
    assert response.status_code == 400 and response.json()["error"].startswith("the request body is not JSON")


def test_api_indexes(people: MicroDB, writer: Callable[..., Any]) -> None:
    """Indexes are created (unique ones checked) and dropped through the API."""
    made = writer("POST", "/api/tables/people/indexes", {"field": "address.city"})
    assert {"path": ["address", "city"], "unique": False} in made.json()
    refused = writer("POST", "/api/tables/people/indexes", {"field": "address.city", "unique": False})
    assert refused.status_code == 200  # the same index again is a no-op
    dup = writer("POST", "/api/tables/people/indexes", {"field": "pay", "unique": True})
    assert dup.status_code == 409
    assert writer("DELETE", "/api/tables/people/indexes/address.city").status_code == 200
    assert writer("DELETE", "/api/tables/people/indexes/address.city").status_code == 404
    assert people.table("people").indexes() == [{"path": ["age"], "unique": False}]


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_export_table_and_query(client: TestClient, fmt: str) -> None:
    """The table, or a query's documents, download as JSON, NDJSON or CSV."""
    whole = client.get(f"/api/tables/people/export?format={fmt}")
    assert whole.status_code == 200 and "attachment" in whole.headers["content-disposition"]
    some = client.get("/api/tables/people/export", params={"format": fmt, "filter": '{"age": {"$lt": 2}}', "sort": "-age"})
    if fmt == "json":
        assert len(whole.json()) == 120
        assert some.json() == [
            {"id": 2, "doc": {"name": "person 1", "age": 1, "born": {"$date": "1990-01-02"}, "pay": {"$decimal": "10.50"},
                              "address": {"city": "Oslo", "tags": [1, 2]}}},
            {"id": 1, "doc": {"name": "person 0", "age": 0, "born": {"$date": "1990-01-01"}, "pay": {"$decimal": "10.50"},
                              "address": {"city": "Rome", "tags": [0, 1]}}},
        ]
    elif fmt == "ndjson":
        assert len(whole.text.splitlines()) == 120
        assert [json.loads(line)["id"] for line in some.text.splitlines()] == [2, 1]
    else:
        assert whole.text.count("\n") == 121
        assert some.text.splitlines() == [
            "id,name,age,born,pay,address",
            '2,person 1,1,1990-01-02,10.50,"{""city"":""Oslo"",""tags"":[1,2]}"',
            '1,person 0,0,1990-01-01,10.50,"{""city"":""Rome"",""tags"":[0,1]}"',
        ]


def test_export_errors(client: TestClient) -> None:
    """An unknown format or a bad filter is a 400 with the reason, before any download."""
    bad = client.get("/api/tables/people/export?format=xml")
    assert bad.status_code == 400 and "unknown export format 'xml'" in bad.json()["error"]
    assert client.get("/api/tables/people/export", params={"filter": "{"}).status_code == 400


# -- security ---------------------------------------------------------------------------
WRITES = [
    ("POST", "/api/tables/people/documents", {"doc": {"a": 1}}),
    ("PUT", "/api/tables/people/documents/1", {"doc": {"a": 1}}),
    ("DELETE", "/api/tables/people/documents/1", None),
    ("POST", "/api/tables/people/indexes", {"field": "name"}),
    ("DELETE", "/api/tables/people/indexes/age", None),
]


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
def test_read_only_refuses_every_write(people: MicroDB, method: str, url: str, body: Any) -> None:
    """Without write=True every write is refused with 403 and changes nothing."""
    client = TestClient(create_app(people))
    before = [dict(d) for d in people.table("people").all()], people.table("people").indexes()
    response = client.request(method, url, json=body, headers={"x-csrf-token": csrf_of(client)})
    assert response.status_code == 403 and "read-only" in response.json()["error"]
    assert ([dict(d) for d in people.table("people").all()], people.table("people").indexes()) == before
    html = client.get("/t/people/doc/1").text
    assert 'id="edit"' not in html and "read-only" in html


@pytest.mark.parametrize(("method", "url", "body"), WRITES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"x-csrf-token": "forged"}, {"origin": "http://evil.example", "keep-token": "1"},
     {"sec-fetch-site": "cross-site", "keep-token": "1"}],
    ids=["no-token", "wrong-token", "other-origin", "cross-site-fetch"],
)
def test_csrf_refuses_every_cross_site_write(people: MicroDB, client: TestClient, method: str, url: str,
                                             body: Any, headers: dict[str, str]) -> None:
    """A write without the page's CSRF token, or from another origin, is refused and changes nothing."""
    headers = dict(headers)
    if headers.pop("keep-token", None):
        headers["x-csrf-token"] = csrf_of(client)
    before = [dict(d) for d in people.table("people").all()], people.table("people").indexes()
    response = client.request(method, url, json=body, headers=headers)
    assert response.status_code == 403 and response.json()["error"].startswith("refused")
    assert ([dict(d) for d in people.table("people").all()], people.table("people").indexes()) == before


def test_token_signs_in_like_jupyter(people: MicroDB) -> None:
    """With a token, nothing is readable until ``?token=`` sets the session cookie."""
    client = TestClient(create_app(people, write=True, token="s3cret"))
    assert client.get("/").status_code == 401
    assert client.get("/api/tables").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    signed = client.get("/t/people?token=s3cret&limit=5", follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/t/people?limit=5"
    assert "httponly" in signed.headers["set-cookie"].lower() and "samesite=strict" in signed.headers["set-cookie"].lower()
    assert client.get("/t/people?limit=5").status_code == 200
    token = csrf_of(client)
    assert client.post("/api/tables/people/documents", json={"doc": {}}).status_code == 403
    assert client.post("/api/tables/people/documents", json={"doc": {}}, headers={"x-csrf-token": token}).status_code == 200
    other = TestClient(create_app(people, token="s3cret"))
    assert other.get("/api/tables", headers={"authorization": "Bearer s3cret"}).status_code == 200
    assert other.get("/api/tables", headers={"authorization": "Bearer nope"}).status_code == 401


def test_password_login(people: MicroDB) -> None:
    """With a password, pages send the browser to /login; the right password signs it in."""
    client = TestClient(create_app(people, password="open sesame"))
    first = client.get("/t/people", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/login?next=/t/people"
    wrong = client.post("/login?next=/t/people", content=b"password=nope",
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert wrong.status_code == 401 and "Wrong password" in wrong.text
    right = client.post("/login?next=//evil.example", content=b"password=open+sesame",
                        headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/"
    assert client.get("/t/people").status_code == 200


def test_host_check_refuses_rebinding(people: MicroDB) -> None:
    """With allowed hosts (as on loopback), a request naming another host is refused."""
    client = TestClient(create_app(people, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://127.0.0.1")
    assert client.get("/").status_code == 200
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400


def test_every_response_has_the_security_headers(client: TestClient) -> None:
    """Pages, API answers, errors and static files all carry the CSP and friends."""
    for url in ["/", "/t/people", "/t/nobody", "/api/tables", "/api/tables/nobody/documents", "/static/app.js"]:
        headers = client.get(url).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_user_data_is_escaped_everywhere(people: MicroDB) -> None:
    """Documents, keys, index fields and table names holding markup are shown as text on every page."""
    name = "t<img src=x onerror=alert(1)>"
    people.table(name).insert({XSS: XSS, "list": [XSS], "nested": {"k": XSS}})
    people.table(name).create_index(XSS.replace("/", ""))
    client = TestClient(create_app(people, write=True))
    quoted = "/t/" + quote(name, safe="")
    pages = ["/", quoted, quoted + "/doc/1", quoted + "/new", "/t/people?filter=" + quote(XSS),
             "/t/people?sort=" + quote(XSS), "/t/" + quote(XSS.replace("/", ""), safe="")]
    for url in pages:
        html = client.get(url).text
        assert "<script>alert" not in html and "<img src=x" not in html, url
    assert "t&lt;img src=x onerror=alert(1)&gt;" in client.get("/").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in client.get(quoted).text
    script = client.get("/static/app.js").text
    assert "innerHTML" not in script and "eval(" not in script and "new Function" not in script


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch, people: MicroDB) -> None:
    """Without Starlette, creating the app raises UnsupportedFeature naming the extra."""
    monkeypatch.setitem(sys.modules, "starlette", None)
    with pytest.raises(UnsupportedFeature, match=r"pip install 'microdb\[web\]'"):
        create_app(people)
