"""POST /v1/quotes and /v1/quotes/batch on a real fitted model: the contract, the flags, all kinds of bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from api_kit import assert_money, registry_copy
from fastapi.testclient import TestClient

from fares.api.app import create_app
from fares.config.settings import Settings

# The real TLC zone shapes (../shared) and a fitted model, served in-process or by uvicorn.
pytestmark = pytest.mark.integration

UNREACHABLE_DB = "postgresql://postgres@127.0.0.1:9/none"  # never contacted by these tests


@pytest.fixture(scope="module")
def api(tlc_samples, tmp_path_factory) -> Iterator[tuple[TestClient, str]]:
    models_dir, version = registry_copy(tlc_samples, tmp_path_factory.mktemp("api") / "models")
    settings = Settings(data_dir=models_dir.parent, database_url=UNREACHABLE_DB, admin_token="s3cret")
    with TestClient(create_app(settings, poll_seconds=0)) as client:
        yield client, version


def quote(client: TestClient, pickup: dict, dropoff: dict, pickup_at: str | None = "2024-02-14T08:30:00"):
    body = {"pickup": pickup, "dropoff": dropoff} | ({"pickup_at": pickup_at} if pickup_at else {})
    return client.post("/v1/quotes", json=body)


def test_a_quote_by_zone_ids_follows_the_contract(api) -> None:
    client, version = api
    r = quote(client, {"zone_id": 132}, {"zone_id": 230})
    assert r.status_code == 200, r.text
    q = r.json()
    for service in ("taxi", "uber"):
        assert_money(q[service]["fare"])
        assert q[service]["low"] <= q[service]["fare"] <= q[service]["high"]
    fares = {s: q[s]["fare"] for s in ("taxi", "uber")}
    assert q["cheaper"] == min(fares, key=fares.__getitem__)
    assert q["savings"] == pytest.approx(abs(fares["taxi"] - fares["uber"]), abs=0.005)
    assert 0 <= q["p_uber_cheaper"] <= 1
    assert q["model_version"] == version
    assert q["trained_window"] == {"from": "2024-01-01", "to": "2024-03-30"}
    assert q["pickup"]["zone_name"] == "JFK Airport" and q["dropoff"]["zone_name"] == "Times Sq/Theatre District"
    assert q["pickup_at"] == "2024-02-14T08:30:00"
    assert q["warnings"] == []
    assert q["answer"] in (q["cheaper"], "about the same")
    close = abs(fares["taxi"] - fares["uber"]) < max(1.0, 0.05 * min(fares.values()))
    unsure = abs(q["p_uber_cheaper"] - 0.5) < 0.15
    assert (q["answer"] == "about the same") == (close or unsure)
    assert (q["answer_reason"] is None) == (q["answer"] != "about the same")
    assert q["uber_stale_months"] == 0 and q["taxi_tariff_from"] == "2022-12-19"


@pytest.mark.parametrize("pickup_at", ["2024-02-14T08:30:00", "2027-02-10T08:30:00"])
def test_about_the_same_says_which_reason_applies(api, pickup_at: str) -> None:
    """Every "about the same" of a batch over all pickups from Midtown says why: the fares are within $1 or 5% of each
    other, or the data cannot tell which is cheaper (the bands overlap; or, three years past the newest Uber level, the
    Uber band holds how far Uber's prices move in three years); a named service has no reason."""
    client, _ = api
    ids = list(range(1, 264))
    columns = {"pickup_at": [pickup_at] * len(ids), "pickup_zone_id": [161] * len(ids)}
    body = client.post("/v1/quotes/batch", json={"columns": {**columns, "dropoff_zone_id": ids}}).json()
    reasons: dict[str | None, int] = {}
    for q in body["quotes"]:
        taxi, uber = q["taxi"]["fare"], q["uber"]["fare"]
        unsure = abs(q["p_uber_cheaper"] - 0.5) < 0.15
        if abs(taxi - uber) < max(1.0, 0.05 * min(taxi, uber)):
            expected = "the expected fares differ by less than $1 or 5%"
        elif q["uber_stale_months"] > 0 and (unsure or q["answer"] == "about the same"):
            # also when p is sure, if the Uber level's likely move since its month spans the taxi fare
            expected = "the data cannot tell which is cheaper: the newest Uber price level is older than the pickup"
            assert q["uber"]["low"] <= q["taxi"]["high"] and q["taxi"]["low"] <= q["uber"]["high"], q  # bands overlap
        elif unsure:
            expected = "the data cannot tell which is cheaper: the two bands overlap too much"
        else:
            expected = None
        assert (q["answer"] == "about the same") == (expected is not None), q
        assert q["answer_reason"] is None if expected is None else q["answer_reason"].startswith(expected), q
        reasons[q["answer_reason"]] = reasons.get(q["answer_reason"], 0) + 1
    assert len(reasons) >= 2, reasons
    stale = [r for r in reasons if r and "Uber price level is older" in r]
    if pickup_at.startswith("2027"):  # 35 months past the newest level: mostly the staleness reason, rarely a service
        assert stale and reasons[stale[0]] > reasons.get(None, 0), reasons
    else:
        assert None in reasons and not stale, reasons


def test_quotes_follow_the_rate_card_and_say_how_stale_uber_is(api) -> None:
    """JFK -> Times Sq: in 2021 the old card's $52 flat fare; after the training window the Uber level is stale."""
    client, _ = api
    now = quote(client, {"zone_id": 132}, {"zone_id": 230}, "2024-02-14T17:30:00").json()
    old = quote(client, {"zone_id": 132}, {"zone_id": 230}, "2021-02-17T17:30:00").json()
    later = quote(client, {"zone_id": 132}, {"zone_id": 230}, "2025-02-12T17:30:00").json()
    assert (old["taxi_tariff_from"], now["taxi_tariff_from"], later["taxi_tariff_from"]) == (
        "2019-02-02",
        "2022-12-19",
        "2025-01-05",
    )
    assert old["taxi"]["fare"] < 0.85 * now["taxi"]["fare"]
    assert (now["uber_stale_months"], later["uber_stale_months"]) == (0, 11)  # newest level: 2024-03
    width = {k: q["uber"]["high"] / q["uber"]["low"] for k, q in (("now", now), ("later", later))}
    assert width["later"] > width["now"]


def test_names_and_points_resolve_to_the_same_quote_as_ids(api) -> None:
    client, _ = api
    by_id = quote(client, {"zone_id": 132}, {"zone_id": 230}).json()
    by_name = quote(client, {"zone": "jfk airport"}, {"zone": "Times Sq"}).json()
    by_point = quote(client, {"lat": 40.6413, "lon": -73.7781}, {"lat": 40.7580, "lon": -73.9855}).json()
    assert by_id == by_name == by_point


def test_longer_trips_cost_more(api) -> None:
    client, _ = api
    near = quote(client, {"zone_id": 230}, {"zone_id": 161}).json()  # Times Sq -> Midtown Center
    far = quote(client, {"zone_id": 230}, {"zone_id": 1}).json()  # Times Sq -> Newark Airport
    assert far["taxi"]["fare"] > near["taxi"]["fare"] and far["uber"]["fare"] > near["uber"]["fare"]


def test_aware_times_are_converted_to_new_york_and_omitted_means_now(api) -> None:
    client, _ = api
    assert (
        quote(client, {"zone_id": 132}, {"zone_id": 230}, "2024-02-14T13:30:00Z").json()["pickup_at"]
        == "2024-02-14T08:30:00"
    )
    r = quote(client, {"zone_id": 132}, {"zone_id": 230}, None)
    assert r.status_code == 200 and r.json()["pickup_at"][:2] == "20"


def test_same_zone_and_far_off_times_are_answered_but_flagged(api) -> None:
    client, _ = api
    same = quote(client, {"zone_id": 161}, {"zone_id": 161})
    assert same.status_code == 200 and any("same zone" in w for w in same.json()["warnings"])
    later = quote(client, {"zone_id": 132}, {"zone_id": 230}, "2031-06-01T12:00:00").json()
    assert any("days after the newest training data (2024-03-30)" in w for w in later["warnings"])
    earlier = quote(client, {"zone_id": 132}, {"zone_id": 230}, "2015-06-01T12:00:00").json()
    assert any("before the oldest training data (2024-01-01)" in w for w in earlier["warnings"])
    unknown = quote(client, {"zone_id": 264}, {"zone_id": 230})
    assert unknown.status_code == 200 and any("unknown or outside location" in w for w in unknown.json()["warnings"])


@pytest.mark.parametrize(
    ("pickup", "dropoff", "pickup_at", "message"),
    [
        ({"zone_id": 999}, {"zone_id": 1}, None, "pickup: unknown zone_id 999"),
        ({"zone_id": 1}, {"zone": "Corona"}, None, "dropoff: zone name 'Corona' is ambiguous"),
        ({"zone": "Atlantis"}, {"zone_id": 1}, None, "pickup: unknown zone 'Atlantis'"),
        ({"lat": 0, "lon": 0}, {"zone_id": 1}, None, "outside every NYC taxi zone"),
        ({"zone_id": 1}, {"zone_id": 1}, "9999-12-31T23:00:00-05:00", "out of range"),
        ({"zone_id": 1}, {"zone_id": 1}, "1850-01-01T00:00:00", "must fall between 1900 and 2200"),
        # before the seed's first rate card (2004-05-03) nothing about a taxi fare is known
        (
            {"zone_id": 1},
            {"zone_id": 1},
            "2004-05-02T23:00:00",
            "is before 2004-05-03, the earliest date fares quotes (the first taxi rate card it knows)",
        ),
        (
            {"zone_id": 1},
            {"zone_id": 1},
            "2090-01-01T12:00:00",
            (
                "is after 2034-03-30, the latest date fares quotes (10 years past its newest training data); "
                "the earliest is 2004-05-03"
            ),
        ),
    ],
)
def test_places_and_times_that_cannot_be_used_are_a_clear_422(api, pickup, dropoff, pickup_at, message) -> None:
    r = quote(api[0], pickup, dropoff, pickup_at)
    assert r.status_code == 422 and message in r.json()["detail"], r.text


@pytest.mark.parametrize(
    "body",
    [
        {"pickup": "JFK", "dropoff": {"zone_id": 1}},
        {"pickup": {"zone_id": "one"}, "dropoff": {"zone_id": 1}},
        {"pickup": {"zone_id": 1, "zone": "JFK"}, "dropoff": {"zone_id": 1}},
        {"pickup": {"lat": 95, "lon": 0}, "dropoff": {"zone_id": 1}},
        {"pickup": {"zone_id": 1}},
        {"pickup": {"zone_id": 1}, "dropoff": {"zone_id": 1}, "pickup_at": "yesterday"},
        [1, 2, 3],
    ],
)
def test_wrong_shapes_and_types_are_a_422_naming_the_field(api, body) -> None:
    r = api[0].post("/v1/quotes", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body", r.text


def test_broken_json_and_huge_bodies_are_refused(api) -> None:
    client, _ = api
    r = client.post("/v1/quotes", content=b'{"pickup": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    huge = b'{"pickup": {"zone": "' + b"x" * (5 * 1024 * 1024) + b'"}}'
    r = client.post("/v1/quotes", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_a_batch_prices_good_trips_and_lists_bad_ones_by_index(api) -> None:
    client, version = api
    trips = [
        {"pickup_at": "2024-02-14T08:30:00", "pickup": {"zone_id": 132}, "dropoff": {"zone_id": 230}},
        {"pickup": {"zone_id": 999}, "dropoff": {"zone_id": 230}},
        {
            "pickup_at": "2024-03-01T18:00:00",
            "pickup": {"zone": "Times Sq"},
            "dropoff": {"lat": 40.6413, "lon": -73.7781},
        },
        {"pickup": {"lat": 0, "lon": 0}, "dropoff": {"zone": "Corona"}},
        {"pickup_at": "2024-02-14T08:30:00", "pickup": {"zone_id": 161}, "dropoff": {"zone_id": 161}},
    ]
    r = client.post("/v1/quotes/batch", json={"trips": trips})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == version and body["count"] == 3
    assert [q["index"] for q in body["quotes"]] == [0, 2, 4]
    assert [(e["index"], e["detail"].split(":")[0]) for e in body["errors"]] == [(1, "pickup"), (3, "pickup")]
    assert (body["quotes"][1]["pickup_zone_id"], body["quotes"][1]["dropoff_zone_id"]) == (230, 132)
    assert any("same zone" in w for w in body["quotes"][2]["warnings"])
    single = quote(client, {"zone_id": 132}, {"zone_id": 230}).json()
    assert body["quotes"][0]["taxi"] == single["taxi"] and body["quotes"][0]["uber"] == single["uber"]


def test_batch_limits(api) -> None:
    client, _ = api
    trip = {"pickup": {"zone_id": 132}, "dropoff": {"zone_id": 230}, "pickup_at": "2024-02-14T08:30:00"}
    r = client.post("/v1/quotes/batch", json={"trips": [trip] * 10_001})
    assert r.status_code == 422 and "at most 10000" in json.dumps(r.json())
    assert client.post("/v1/quotes/batch", json={"trips": []}).status_code == 422
    r = client.post("/v1/quotes/batch", json={"trips": [trip] * 10_000})
    assert r.status_code == 200 and r.json()["count"] == 10_000


def test_zone_search_and_model_endpoints(api) -> None:
    client, version = api
    zones = client.get("/v1/zones", params={"q": "airport"}).json()
    assert [z["zone_id"] for z in zones] == [132, 138, 1]
    assert len(client.get("/v1/zones", params={"limit": 300}).json()) == 265
    assert client.get("/v1/zones", params={"limit": 0}).status_code == 422
    model = client.get("/v1/model").json()
    assert model["model_version"] == version and model["zones"] == 265
    assert model["trained_window"] == {"from": "2024-01-01", "to": "2024-03-30"}


def test_every_answer_says_what_the_model_learned_from(api) -> None:
    client, _ = api
    one = quote(client, {"zone_id": 132}, {"zone_id": 230}).json()["data_source"]
    assert one["kind"] == "synthetic" and one["synthetic"] is True
    assert one["label"] == "synthetic TLC-shaped trips 2024-01..2024-03: not real fares"
    assert one["months"] == ["2024-01", "2024-02", "2024-03"] and one["sample"] == {}
    batch = client.post(
        "/v1/quotes/batch", json={"columns": {"pickup_at": [None], "pickup_zone_id": [132], "dropoff_zone_id": [1]}}
    )
    assert batch.json()["data_source"] == one
    assert client.get("/v1/model").json()["data_source"] == one


def test_the_zone_map_draws_every_shaped_zone_once(api) -> None:
    client, _ = api
    r = client.get("/v1/zones/map")
    assert r.status_code == 200
    m = r.json()
    width, height = (float(v) for v in m["view_box"].split()[2:])
    assert width == 1000 and 800 < height < 1200  # New York's five boroughs are about as tall as wide
    ids = [z["zone_id"] for z in m["zones"]]
    assert len(ids) == 263 and len(set(ids)) == 263 and 264 not in ids and 265 not in ids  # no shape for "unknown"
    jfk = next(z for z in m["zones"] if z["zone_id"] == 132)
    assert jfk["zone_name"] == "JFK Airport" and jfk["path"].startswith("M") and jfk["path"].endswith("Z")
    assert 0 <= jfk["x"] <= width and 0 <= jfk["y"] <= height
    staten = next(z for z in m["zones"] if z["borough"] == "Staten Island")
    assert staten["x"] < jfk["x"]  # west is left
    assert len(r.content) < 250_000  # simplified: the page loads it at once


def test_the_web_page_and_metrics_are_served(api) -> None:
    client, _ = api
    page = client.get("/")
    assert page.status_code == 200 and 'id="quote-form"' in page.text
    assert client.get("/static/app.js").status_code == 200
    quote(client, {"zone_id": 132}, {"zone_id": 230})
    metrics = client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).text  # an ops page
    assert 'fares_http_requests_total{method="POST",route="/v1/quotes",status="200"}' in metrics
    assert "fares_model_loaded 1.0" in metrics and "fares_quotes_total" in metrics


def test_the_columns_form_prices_like_the_trips_form(api) -> None:
    client, _ = api
    columns = {
        "pickup_at": ["2024-02-14T08:30:00", None, "2024-03-01T18:00:00Z"],
        "pickup_zone_id": [132, 999, 230],
        "dropoff_zone_id": [230, 1, 230],
    }
    r = client.post("/v1/quotes/batch", json={"columns": columns})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [q["index"] for q in body["quotes"]] == [0, 2]
    assert body["errors"] == [{"index": 1, "detail": "pickup: unknown zone_id 999"}]
    single = quote(client, {"zone_id": 132}, {"zone_id": 230}).json()
    assert body["quotes"][0]["taxi"] == single["taxi"] and body["quotes"][0]["uber"] == single["uber"]
    assert any("same zone" in w for w in body["quotes"][1]["warnings"])


def test_a_batch_trip_before_the_first_rate_card_is_listed_with_the_earliest_date(api) -> None:
    client, _ = api
    columns = {"pickup_at": ["2003-06-01T10:00:00", "2011-06-01T10:00:00"], "pickup_zone_id": [161, 161]}
    r = client.post("/v1/quotes/batch", json={"columns": {**columns, "dropoff_zone_id": [236, 236]}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["index"] for e in body["errors"]] == [0] and "earliest date fares quotes" in body["errors"][0]["detail"]
    # 2011: priced by the 2004 card ($2.50 + $0.40 a unit + $0.50 MTA tax), not the $1 floor of a missing card
    assert [q["index"] for q in body["quotes"]] == [1] and body["quotes"][0]["taxi"]["fare"] > 1
    single = quote(client, {"zone_id": 161}, {"zone_id": 236}, "2011-06-01T10:00:00").json()
    assert single["taxi_tariff_from"] == "2009-11-01" and single["taxi"] == body["quotes"][0]["taxi"]


def test_every_batch_quote_is_the_single_quote_of_its_trip(api) -> None:
    from fares.api.schemas import BatchResponse

    client, version = api
    trips = [
        ("2024-02-14T08:30:00", 132, 230),
        ("2024-02-14T08:30:00", 161, 161),
        ("2031-06-01T12:00:00", 1, 132),
        ("2024-03-01T18:00:00-05:00", 264, 138),
        ("2024-01-20T03:05:00", 230, 1),
    ]
    columns = {
        "pickup_at": [t[0] for t in trips],
        "pickup_zone_id": [t[1] for t in trips],
        "dropoff_zone_id": [t[2] for t in trips],
    }
    r = client.post("/v1/quotes/batch", json={"columns": columns})
    assert r.status_code == 200, r.text
    body = BatchResponse.model_validate(r.json()).model_dump(by_alias=True)
    assert (body["model_version"], body["count"], body["errors"]) == (version, len(trips), [])
    for index, (when, pickup, dropoff) in enumerate(trips):
        one = quote(client, {"zone_id": pickup}, {"zone_id": dropoff}, when).json()
        got = body["quotes"][index]
        assert (got["index"], got["pickup_zone_id"], got["dropoff_zone_id"]) == (index, pickup, dropoff)
        for key in ("taxi", "uber", "cheaper", "answer", "savings", "p_uber_cheaper", "uber_stale_months", "warnings"):
            assert got[key] == one[key], (index, key)
    assert sum(1 for q in body["quotes"] if q["warnings"]) >= 3  # same zone, far future, unknown-location zone


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"columns": {"pickup_at": [None], "pickup_zone_id": [1, 2], "dropoff_zone_id": [3]}},
            "must have the same length",
        ),
        (
            {
                "columns": {"pickup_at": [None], "pickup_zone_id": [1], "dropoff_zone_id": [3]},
                "trips": [{"pickup": {"zone_id": 1}, "dropoff": {"zone_id": 2}}],
            },
            "exactly one of",
        ),
        ({}, "exactly one of"),
    ],
)
def test_a_batch_must_be_one_well_formed_form(api, body, message) -> None:
    r = api[0].post("/v1/quotes/batch", json=body)
    assert r.status_code == 422 and message in json.dumps(r.json()), r.text


def test_concurrent_quotes_share_model_calls_and_each_gets_its_own_price(tlc_samples, tmp_path) -> None:
    import asyncio

    import httpx

    from fares.api.model_store import ModelStore
    from fares.api.quotes import quote_one
    from fares.api.schemas import QuoteRequest

    models_dir, _ = registry_copy(tlc_samples, tmp_path / "models")
    app = create_app(Settings(data_dir=tmp_path, database_url=UNREACHABLE_DB), poll_seconds=0)
    app.state.store.start()
    trips = [
        {
            "pickup_at": f"2024-02-{1 + i % 27:02d}T{i % 24:02d}:15:00",
            "pickup": {"zone_id": 1 + (7 * i) % 263},
            "dropoff": {"zone_id": 1 + (11 * i) % 263},
        }
        for i in range(40)
    ]

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await asyncio.gather(*(client.post("/v1/quotes", json=t) for t in trips))

    responses = asyncio.run(send_all())
    app.state.store.stop()
    alone = ModelStore(models_dir, poll_seconds=0)
    alone.refresh(force=True)
    assert alone.bundle is not None
    for trip, r in zip(trips, responses, strict=True):
        assert r.status_code == 200, r.text
        expected = quote_one(alone.bundle, QuoteRequest.model_validate(trip))
        assert (r.json()["pickup"]["zone_id"], r.json()["taxi"], r.json()["uber"]) == (
            expected["pickup"]["zone_id"],
            expected["taxi"],
            expected["uber"],
        )
    assert app.state.batcher.batches < len(trips)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/quotes", b'{"pickup": {"lat": NaN, "lon": 1}, "dropoff": {"zone_id": 1}}'),
        ("/v1/quotes", b'{"pickup": {"lat": 40.7, "lon": -Infinity}, "dropoff": {"zone_id": 1}}'),
        ("/v1/quotes", b'{"pickup": {"zone_id": 100000000000000000000000000000}, "dropoff": {"zone_id": 1}}'),
        (
            "/v1/quotes/batch",
            (
                b'{"columns": {"pickup_at": [null], "pickup_zone_id": [100000000000000000000000000000],'
                b' "dropoff_zone_id": [1]}}'
            ),
        ),
        ("/v1/quotes/batch", b'{"trips": [{"pickup": {"zone_id": -1}, "dropoff": {"zone_id": 1}}]}'),
    ],
)
def test_non_numbers_and_giant_ids_are_a_422_not_a_crash(api, path, body) -> None:
    r = api[0].post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body", r.text
