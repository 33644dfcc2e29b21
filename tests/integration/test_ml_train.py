"""The train stage on real PostgreSQL: TLC samples and the synthetic mirror -> dbt -> models, registry, report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse, get_warehouse, scalar
from fares.ml import TrainingDataError
from fares.ml.predict import load_current
from fares.ml.registry import Registry
from fares.ml.train import TrainOutcome, train_models
from tests.conftest import Built, settings_for

pytestmark = pytest.mark.integration

JFK, MIDTOWN_CENTER, MIDTOWN_EAST, UPPER_EAST_SIDE_NORTH, WASHINGTON_HEIGHTS_SOUTH = 132, 161, 162, 236, 244


@dataclass
class Trained:
    """A database built from TLC-shaped files, and the first training run on it."""

    wh: Warehouse
    settings: Settings
    outcome: TrainOutcome

    def count(self, sql: str) -> int:
        """One number from the database."""
        with self.wh.connect() as conn:
            return int(scalar(conn, sql))


def _train(built: Built, tmp: Path) -> Trained:
    settings = settings_for(built.wh, tmp / "data")
    return Trained(built.wh, settings, train_models(settings, built.wh))


@pytest.fixture(scope="session")
def tlc_trained(tlc_built: Built, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Yellow 2020-01..04 and FHVHV 2020-04 samples (built once per server in conftest), trained once."""
    return _train(tlc_built, tmp_path_factory.mktemp("ml"))


@pytest.fixture(scope="session")
def synthetic_trained(synthetic_built: Built, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Two synthetic months (4,000 trips per kind and month, JFK flat fare included), trained once."""
    return _train(synthetic_built, tmp_path_factory.mktemp("ml_syn"))


def _quote(settings: Settings, pairs: list[tuple[int, int]], at: str = "2024-02-20 14:00") -> pd.DataFrame:
    model = load_current(settings.models_dir)
    assert model is not None
    return model.predict_frame(
        pd.DataFrame(
            {
                "pickup_at": pd.to_datetime([at] * len(pairs)),
                "pickup_zone_id": [p for p, _ in pairs],
                "dropoff_zone_id": [d for _, d in pairs],
            }
        )
    )


def test_tlc_samples_give_a_current_model_that_beats_the_baseline(tlc_trained: Trained) -> None:
    """The first run on the real samples is registered, current, judged and reported. The taxi model learns from the
    three newest months of yellow trips (February to April 2020), though only April has Uber trips; the holdout is
    the last hour of Uber's one evening, and the report says plainly that it holds too few trips to mean much."""
    outcome, registry = tlc_trained.outcome, Registry(tlc_trained.settings.models_dir)
    assert outcome.promoted and registry.current_version() == outcome.version
    assert outcome.metrics["beats_baseline"], (outcome.metrics["model_mae"], outcome.metrics["baseline_mae"])
    assert outcome.metrics["mae_improvement_pct"] > 10
    holdout = sum(m["model"]["n"] for m in outcome.metrics["services"].values())
    assert sum(outcome.metrics["n_train"].values()) + holdout == tlc_trained.count(
        "select count(*) from marts.ml_fare_training where source_month >= '2020-02'"
    )
    assert {p["month"] for p in outcome.metrics["sample"]["strata"] if p["service"] == "taxi"} == {
        "2020-02",
        "2020-03",
        "2020-04",
    }
    window = outcome.metrics["holdout"]
    assert window["from"] == "2020-04-30 21:00:00" and not window["has_minimum"]
    assert window["trips"]["uber"] == outcome.metrics["services"]["uber"]["model"]["n"]
    assert outcome.metrics["holdout_window"]["uber"][0].startswith("2020-04-30 2")  # Uber's April is one evening
    doc = registry.metrics(outcome.version)
    assert (doc["trained_from"], doc["trained_to"]) == ("2020-02-01", "2020-04-30")
    assert len(doc["data_fingerprint"]) == 64 and doc["code_version"]
    page = outcome.report_path.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3 and "beats the baseline" in page
    assert "FEWER than the 2,000 trips per service and 200 cells asked" in page
    # how far the bands widen outside the window, from the marts: one Uber month, so the level's drift past it comes
    # from the published moves of the seed hvfhv_price_moves (about half in three years)
    drift = outcome.metrics["drift"]
    assert drift["taxi_monthly_drift"] > 0
    published = [m for m in drift["uber_level"]["moves"] if m["source"] == "published"]
    assert {(m["from_month"][:7], m["to_month"][:7]) for m in published} >= {("2020-04", "2023-03")}
    assert drift["uber_level"]["spread_at"]["36"] > 0.4 > drift["uber_level"]["spread_at"]["1"]
    assert {(r["service"], r["months_from_window"]) for r in outcome.metrics["coverage_by_months"]} == {
        ("taxi", 0),
        ("uber", 0),
    }
    assert "Outside the training window" in page and "trend of unknown sign" in page
    assert f"{outcome.version}: promoted to current" in outcome.summary()
    [row] = registry.versions()
    assert row["current"] and row["report_path"] == str(outcome.report_path)
    quote = _quote(tlc_trained.settings, [(MIDTOWN_CENTER, MIDTOWN_EAST), (264, 265)], at="2020-04-30 20:00")
    current = load_current(tlc_trained.settings.models_dir)
    assert current is not None and len(current.zones) == 265
    assert quote.notna().all().all()


def test_a_worse_model_is_not_promoted_unless_the_margin_allows(tlc_trained: Trained, tmp_path: Path) -> None:
    """Same data, a crippled model: registered but not current; a generous margin lets it through; rollback undoes."""
    settings = settings_for(tlc_trained.wh, tmp_path / "data")
    good = train_models(settings, tlc_trained.wh)
    worse = train_models(settings, tlc_trained.wh, params={"max_iter": 2, "learning_rate": 0.05})
    registry = Registry(settings.models_dir)
    assert good.promoted and not worse.promoted
    assert worse.metrics["model_mae"] > good.metrics["model_mae"]
    assert registry.current_version() == good.version
    assert "NOT promoted" in worse.report_path.read_text(encoding="utf-8")
    rows = {r["version"]: r for r in registry.versions()}
    assert set(rows) == {good.version, worse.version} and not rows[worse.version]["promoted"]
    lenient = settings_for(tlc_trained.wh, tmp_path / "data", promotion_margin=1000.0)
    allowed = train_models(lenient, tlc_trained.wh, params={"max_iter": 2, "learning_rate": 0.05})
    assert allowed.promoted and registry.current_version() == allowed.version
    assert registry.rollback() == good.version
    current = load_current(settings.models_dir)
    assert current is not None and current.version == good.version


def test_synthetic_mirror_longer_trips_cost_more_and_jfk_is_flat(synthetic_trained: Trained) -> None:
    """On the mirror: fares grow with distance from Midtown, and JFK-Manhattan taxi quotes sit at the flat fare."""
    assert synthetic_trained.outcome.promoted and synthetic_trained.outcome.metrics["beats_baseline"]
    quote = _quote(
        synthetic_trained.settings,
        [
            (MIDTOWN_CENTER, MIDTOWN_EAST),
            (MIDTOWN_CENTER, UPPER_EAST_SIDE_NORTH),
            (MIDTOWN_CENTER, WASHINGTON_HEIGHTS_SOUTH),
        ],
    )
    for service in ("taxi", "uber"):
        fares = quote[f"{service}_fare"].tolist()
        assert fares[0] < fares[1] < fares[2], (service, fares)
    current = load_current(synthetic_trained.settings.models_dir)
    assert current is not None
    zones = current.zones
    manhattan = zones[zones.borough == "Manhattan"].zone_id.tolist()
    airport = _quote(synthetic_trained.settings, [(JFK, z) for z in manhattan] + [(z, JFK) for z in manhattan])
    # $70 flat + $0.50 MTA + $1 improvement + $2.50 congestion (+ $5 at rush hour, + tolls): about $74-$80
    assert 72 < airport.taxi_fare.median() < 82, airport.taxi_fare.describe()
    assert airport.taxi_fare.std() < airport.uber_fare.std() / 2  # Uber is metered; the taxi fare is flat


_ONE_SIDED_MART = """
create schema marts;
create table marts.dim_zones as select 4 as zone_id, 'Manhattan'::text as borough, 'Alphabet City'::text as zone_name,
    'Yellow Zone'::text as service_zone, 40.72::float8 as centroid_lat, -73.98::float8 as centroid_lon,
    null::text as geometry_wkt, false as is_airport;
create table marts.ml_fare_training as select 'taxi-' || i as trip_id, 'taxi'::text as service,
    '2024-01'::text as source_month,
    timestamp '2024-01-01' + i * interval '1 hour' as pickup_at, 4 as pickup_zone_id, 4 as dropoff_zone_id,
    (i % 24)::int as pickup_hour, 0 as pickup_dow, false as is_weekend, false as is_airport_pickup,
    false as is_airport_dropoff, true as is_same_zone, 0.0::float8 as centroid_distance_miles,
    false as is_jfk_manhattan, false as is_newark_dropoff, false as is_laguardia_trip, 1.0::float8 as trip_miles,
    6.0::float8 as duration_minutes, 9.5::float8 as rider_fare
    from generate_series(1, 50) as i;
create table marts.service_month_coverage as select source_month, service, count(*) as trips, true as is_aligned
    from marts.ml_fare_training group by 1, 2;
"""


def test_training_refuses_a_missing_empty_or_one_sided_mart(fresh_settings: Settings) -> None:
    """The stage says what is wrong instead of training on nothing."""
    wh = get_warehouse(fresh_settings)
    with pytest.raises(TrainingDataError, match=r"marts\.ml_fare_training does not exist"):
        train_models(fresh_settings, wh)
    with wh.connect() as conn:
        conn.execute(_ONE_SIDED_MART)
        conn.commit()
    with pytest.raises(TrainingDataError, match="0 'uber' rows"):
        train_models(fresh_settings, wh)
    with wh.connect() as conn:
        conn.execute("truncate marts.ml_fare_training")
        conn.commit()
    with pytest.raises(TrainingDataError, match="empty"):
        train_models(fresh_settings, wh)
    assert Registry(fresh_settings.models_dir).versions() == []


def test_unchanged_data_keeps_the_current_model(tlc_trained: Trained, tmp_path: Path) -> None:
    """A nightly run with no new data and the same code keeps the current model rather than registering a copy."""
    settings = settings_for(tlc_trained.wh, tmp_path / "data")
    first = train_models(settings, tlc_trained.wh)
    again = train_models(settings, tlc_trained.wh)
    assert first.promoted and first.retrained
    assert (again.version, again.promoted, again.retrained) == (first.version, False, False)
    assert "unchanged" in again.reason and "unchanged" in again.summary()
    assert [r["version"] for r in Registry(settings.models_dir).versions()] == [first.version]


def test_in_the_chain_only_publish_moves_current(tlc_trained: Trained, tmp_path: Path) -> None:
    """The scheduler's train stage registers and judges; CURRENT moves only in its publish stage."""
    from fares.chain.stages import run_publish, run_train

    settings = settings_for(tlc_trained.wh, tmp_path / "data")
    outcome = run_train(settings, tlc_trained.wh)
    registry = Registry(settings.models_dir)
    assert outcome.promoted and registry.exists(outcome.version)
    assert registry.current_version() is None, "a run stopped after training must not have changed the model in service"
    published = run_publish(settings, outcome)
    assert (published.model_version, published.published, published.reason) == (outcome.version, True, None)
    assert registry.current_version() == outcome.version


def test_training_reads_a_bounded_deterministic_sample_of_the_newest_months(
    synthetic_built: Built, tmp_path: Path
) -> None:
    from fares.ml.lookups import load_lookups
    from fares.ml.sample import load_training_sample

    settings = settings_for(synthetic_built.wh, tmp_path / "data", train_months=1, train_rows_per_service=700)
    training, parts = load_training_sample(settings, synthetic_built.wh)
    assert set(training["pickup_at"].dt.strftime("%Y-%m")) == {"2024-02"}  # the newest month only
    counts = training.groupby("service").size().to_dict()
    assert set(counts) == {"taxi", "uber"} and all(600 <= n <= 700 for n in counts.values()), counts
    assert {(p.month, p.service) for p in parts} == {("2024-02", "taxi"), ("2024-02", "uber")}
    assert all(p.available > 700 and p.kept == counts[p.service] for p in parts)
    assert len(load_lookups(settings, synthetic_built.wh).zones) == 265  # zones come with the lookups now
    again, _ = load_training_sample(settings, synthetic_built.wh)
    assert sorted(again["trip_id"]) == sorted(training["trip_id"])  # the same trips every run

    # two months share the same budget: the sample is no larger, half of each service from each month
    two = settings_for(synthetic_built.wh, tmp_path / "data", train_months=2, train_rows_per_service=700)
    shared, two_parts = load_training_sample(two, synthetic_built.wh)
    assert {p.month for p in two_parts} == {"2024-01", "2024-02"}
    by_service = shared.groupby("service").size().to_dict()
    assert all(600 <= n <= 700 for n in by_service.values()), by_service
    assert all(p.available > 350 and 300 <= p.kept <= 350 for p in two_parts), two_parts

    everything = settings_for(synthetic_built.wh, tmp_path / "data", train_months=5, train_rows_per_service=10**7)
    full, _ = load_training_sample(everything, synthetic_built.wh)
    assert len(full) == synthetic_built.rows("select count(*) from marts.ml_fare_training")[0][0]


TIMES_SQ = 230


def _card_total(tlc: Trained, day: str) -> float:
    """JFK -> Times Sq at a weekday 17:30 by the rate card (flat fare, its rush-hour surcharge, MTA tax, improvement
    and congestion surcharges, airport access fee) plus the typical (median) tolls of such trips in the samples."""
    with tlc.wh.connect() as conn:
        card = scalar(
            conn,
            "select jfk_flat_fare + jfk_rush_hour_surcharge + mta_tax + improvement_surcharge + congestion_surcharge"
            " + airport_access_fee + congestion_relief_zone_fee from marts.taxi_tariff_periods"
            " where valid_from <= %s::date and (valid_to is null or %s::date < valid_to)",
            (day, day),
        )
        tolls = scalar(
            conn,
            "select percentile_cont(0.5) within group (order by tolls_amount) from raw.yellow_trips y"
            " join marts.dim_zones d on d.zone_id = y.do_location_id"
            " where y.pu_location_id = 132 and d.borough = 'Manhattan' and y.ratecode_id = 2",
        )
    return float(card) + float(tolls or 0.0)


def test_jfk_to_midtown_taxi_quote_follows_the_rate_card_of_its_year(tlc_trained: Trained) -> None:
    """Trained on April 2020 only: a weekday 17:30 JFK -> Times Sq quote is within $5 of the 2024 card ($70 + $5 +
    fees + typical tolls) and of the 2021 card ($52 + $4.50 + fees + typical tolls)."""
    for day in ("2024-05-15", "2021-06-09"):  # both Wednesdays
        quote = _quote(tlc_trained.settings, [(JFK, TIMES_SQ)], at=f"{day} 17:30").iloc[0]
        expected = _card_total(tlc_trained, day)
        assert abs(quote.taxi_fare - expected) < 5, (day, quote.taxi_fare, expected)


def test_training_and_serving_read_the_same_features(tlc_trained: Trained) -> None:
    """The mart's feature columns of real trips and the ones a live request gets from the bundle are identical."""
    import numpy as np

    from fares.ml.features import build_matrix, mart_columns
    from fares.ml.sample import COLUMNS as TRAINING_COLUMNS

    model = load_current(tlc_trained.settings.models_dir)
    assert model is not None, "the chain published no model"
    with tlc_trained.wh.connect() as conn:
        cur = conn.execute(
            f"select {', '.join(TRAINING_COLUMNS)} from marts.ml_fare_training order by trip_id limit 3000"
        )
        rows = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or ()])
    served, *_ = model.matrix(rows)
    pu, do = rows.pickup_zone_id.to_numpy(dtype=np.int64), rows.dropoff_zone_id.to_numpy(dtype=np.int64)
    trained = build_matrix(mart_columns(rows), pu, do, model.zone_table, model.pairs)
    assert len(rows) == 3000
    np.testing.assert_allclose(served, trained, rtol=0, atol=1e-9)


def test_the_bundle_carries_the_charge_incidence_dbt_learned(tlc_trained: Trained) -> None:
    """A live quote expects the congestion surcharge as the mart does: the shares dim_zone_pairs learned from the
    trips' own fields (strictly between 0 and 1 on some real pairs) are the bundle's."""
    import numpy as np

    model = load_current(tlc_trained.settings.models_dir)
    assert model is not None, "the chain published no model"
    with tlc_trained.wh.connect() as conn:
        rows = conn.execute(
            "select pickup_zone_id, dropoff_zone_id, congestion_incidence from marts.dim_zone_pairs"
            " where congestion_incidence > 0 and congestion_incidence < 1"
        ).fetchall()
    pu, do, share = (np.array(column) for column in zip(*rows, strict=True))
    assert len(rows) > 20
    np.testing.assert_allclose(model.routes.flags["congestion_incidence"][pu, do], share.astype(float))
