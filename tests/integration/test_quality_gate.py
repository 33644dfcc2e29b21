"""The quality gate on a real PostgreSQL: clean months pass, injected faults fail by name, training is not reached."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse, drop_database

pytestmark = pytest.mark.integration

FAULTY_MONTH = "2020-05"
RAW_FAULTS = ("fare_amount_in_range", "pu_location_id_not_null", "pickup_in_file_month", "row_count_vs_previous_month")


@dataclass
class QualityDb:
    """A database with raw TLC months (2020-05 yellow carries injected faults) and a small training mart."""

    settings: Settings
    wh: Warehouse


def _faulty_yellow_month(src: Path, dest: Path) -> None:
    """2020-04 moved to May with half the rows; 10% negative fares, 5% null pickup zones, 10% pickups in 2019."""
    t = pq.read_table(src).slice(0, 5_000)
    i = np.arange(t.num_rows)
    month_on = pa.scalar(timedelta(days=30), pa.duration("us"))
    year_back = pa.scalar(timedelta(days=365), pa.duration("us"))
    for col in ("tpep_pickup_datetime", "tpep_dropoff_datetime"):
        moved = pc.add(t[col], month_on)
        moved = pc.if_else(pa.array(i % 10 == 2), pc.subtract(moved, year_back), moved)
        t = t.set_column(t.schema.get_field_index(col), col, moved)
    fare = pc.if_else(pa.array(i % 10 == 0), pc.subtract(pc.negate(pc.abs(t["fare_amount"])), 1.0), t["fare_amount"])
    t = t.set_column(t.schema.get_field_index("fare_amount"), "fare_amount", fare)
    zone = pc.if_else(pa.array(i % 20 == 1), pa.scalar(None, pa.int64()), t["PULocationID"])
    t = t.set_column(t.schema.get_field_index("PULocationID"), "PULocationID", zone)
    pq.write_table(t, dest)


def _mirror(tlc: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in (
        "taxi_zone_lookup.csv",
        "yellow_tripdata_2020-03.parquet",
        "yellow_tripdata_2020-04.parquet",
        "fhvhv_tripdata_2020-04.parquet",
    ):
        (dest / name).symlink_to(tlc / name)
    _faulty_yellow_month(tlc / "yellow_tripdata_2020-04.parquet", dest / f"yellow_tripdata_{FAULTY_MONTH}.parquet")
    return dest


MART_COLUMNS = (
    "trip_id text primary key, service text, pickup_at timestamp, source_month text, pickup_zone_id int,"
    " dropoff_zone_id int, pickup_borough text, dropoff_borough text, pickup_hour int, pickup_dow int,"
    " is_weekend boolean, pickup_month int, is_airport_pickup boolean, is_airport_dropoff boolean,"
    " is_same_zone boolean, centroid_distance_miles double precision, is_jfk_manhattan boolean,"
    " is_newark_dropoff boolean, is_laguardia_trip boolean, trip_miles double precision,"
    " duration_minutes double precision, rider_fare double precision"
)


def _mart_rows(month: str, service: str, n: int, fare_scale: float, rng: random.Random) -> list[tuple]:
    rows = []
    for k in range(n):
        at = datetime.fromisoformat(f"{month}-01") + timedelta(minutes=rng.randrange(27 * 24 * 60))
        miles = rng.uniform(0.5, 12)
        pu, do = rng.randint(1, 263), rng.randint(1, 263)
        fare = (6 + 2.6 * miles * (1.1 if service == "uber" else 1.0)) * fare_scale
        rows.append(
            (
                f"{service}-{month}-{k}",
                service,
                at,
                month,
                pu,
                do,
                "Manhattan",
                "Queens",
                at.hour,
                at.weekday(),
                at.weekday() >= 5,
                at.month,
                False,
                False,
                pu == do,
                miles * 0.8,
                False,
                False,
                False,
                miles,
                4 + miles * 3,
                fare,
            )
        )
    return rows


def _create_mart(wh: Warehouse) -> None:
    """2020-04: both services, plausible fares. 2020-03: taxi only, fares in cents (the faults)."""
    rng = random.Random(5)
    rows = (
        _mart_rows("2020-04", "taxi", 300, 1.0, rng)
        + _mart_rows("2020-04", "uber", 300, 1.0, rng)
        + _mart_rows("2020-03", "taxi", 300, 100.0, rng)
    )
    with wh.connect() as conn:
        conn.execute("create schema if not exists marts")
        conn.execute(f"create table marts.ml_fare_training ({MART_COLUMNS})")
        with conn.cursor().copy("copy marts.ml_fare_training from stdin") as copy:
            for row in rows:
                copy.write_row(row)


@pytest.fixture(scope="module")
def quality_db(
    pg_server: Warehouse, tlc_samples: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QualityDb]:
    """Raw loaded through the real loader from a mirror with one faulty month, plus a hand-made training mart."""
    from conftest import make_database, settings_for

    from fares.ingestion.pipeline import ingest

    root = tmp_path_factory.mktemp("quality")
    mirror = _mirror(tlc_samples, root / "tlc")
    wh = make_database(pg_server, "quality")
    settings = settings_for(wh, root / "data")
    for kinds, months in ((("yellow",), ["2020-03", "2020-04", FAULTY_MONTH]), (("fhvhv",), ["2020-04"])):
        report = ingest(settings, wh, source=str(mirror), months=months, kinds=kinds, progress=False)
        assert not report.failed, [(r.file, r.error) for r in report.failed]
    _create_mart(wh)
    yield QualityDb(settings, wh)
    drop_database(pg_server, wh.dbname)


def _stored_run(wh: Warehouse, run_id: str) -> tuple:
    with wh.connect() as conn:
        row = conn.execute(
            "select v.success, v.critical_failures, v.checks, count(r.*) from ops.validation_runs v"
            " left join ops.validation_results r using (run_id) where v.run_id = %s group by 1, 2, 3",
            (run_id,),
        ).fetchone()
    assert row is not None, f"validation run {run_id} was not stored"
    return row


def _failing_rows(line: str) -> int:
    found = re.search(r": ([\d,]+) of 5,000 rows fail", line)
    assert found, line
    return int(found.group(1).replace(",", ""))


def _critical_lines(message: str) -> list[str]:
    lines = message.splitlines()
    start = lines.index("critical:") + 1
    end = lines.index("warnings:") if "warnings:" in lines else len(lines)
    return lines[start:end]


def test_clean_months_pass_and_the_run_is_stored(quality_db: QualityDb) -> None:
    from fares.quality.validate import run_validation

    report = run_validation(quality_db.settings, quality_db.wh, "raw", months=["2020-03", "2020-04"])

    assert report.success, report.summary()
    assert {(r.table, r.batch) for r in report.results} == {
        ("raw.yellow_trips", "2020-03"),
        ("raw.yellow_trips", "2020-04"),
        ("raw.fhvhv_trips", "2020-04"),
    }
    # the real files carry a few refunds: recorded as a warning, the gate still passes
    assert any(w.check == "fare_amount_not_negative" and w.batch == "2020-04" for w in report.warnings)
    assert _stored_run(quality_db.wh, report.run_id) == (True, 0, len(report.results), len(report.results))


def test_faulty_month_fails_and_names_every_fault(quality_db: QualityDb) -> None:
    from fares.quality import QualityGateError
    from fares.quality.validate import run_validation

    with pytest.raises(QualityGateError) as caught:
        run_validation(quality_db.settings, quality_db.wh, "raw", months=[FAULTY_MONTH])

    message = str(caught.value)
    critical = _critical_lines(message)
    assert len(critical) == len(RAW_FAULTS), message
    by_check = {fault: next(line for line in critical if f": {fault} [" in line) for fault in RAW_FAULTS}
    assert all(f"raw.yellow_trips {FAULTY_MONTH}:" in line for line in critical)
    # 500 injected negative fares, plus the few refunds the real file already holds
    assert _failing_rows(by_check["fare_amount_in_range"]) >= 500 and "e.g. -" in by_check["fare_amount_in_range"]
    assert _failing_rows(by_check["pu_location_id_not_null"]) == 250
    assert _failing_rows(by_check["pickup_in_file_month"]) == 500 and "e.g. 2019-05" in by_check["pickup_in_file_month"]
    assert "2020-04 (10,000 rows)" in by_check["row_count_vs_previous_month"]
    assert "observed 5000" in by_check["row_count_vs_previous_month"]
    report = caught.value.report
    assert report is not None and not report.success
    assert _stored_run(quality_db.wh, report.run_id)[:2] == (False, len(RAW_FAULTS))


def test_a_failed_gate_stops_the_chain_before_training(quality_db: QualityDb) -> None:
    from fares.chain import pipeline

    row = pipeline.run_once(quality_db.settings, stages=pipeline.stages_for("validate"))

    assert row.status == "failed"
    ran = {s.stage: s.status for s in row.stages}
    assert ran.get("validate") == "failed"
    assert "train" not in ran and "publish" not in ran, ran
    assert row.error is not None and "row_count_vs_previous_month" in row.error and FAULTY_MONTH in row.error
    assert not (quality_db.settings.models_dir / "CURRENT").exists()


def test_training_mart_month_with_both_services_passes(quality_db: QualityDb) -> None:
    from fares.quality.validate import run_validation

    report = run_validation(quality_db.settings, quality_db.wh, "training", months=["2020-04"])

    assert report.success, report.summary()
    assert {r.batch for r in report.results} == {"all", "taxi", "uber", "aligned window"}
    assert report.months == ["2020-04"]


def test_training_faults_are_named(quality_db: QualityDb) -> None:
    from fares.quality import QualityGateError
    from fares.quality.validate import run_validation

    with pytest.raises(QualityGateError) as caught:
        run_validation(quality_db.settings, quality_db.wh, "training", months=["2020-03"])

    critical = _critical_lines(str(caught.value))
    failed = {(line.split(":")[0], line.split(": ")[1].split(" [")[0]) for line in critical}
    assert ("  - marts.ml_fare_training uber", "service_present") in failed
    assert ("  - marts.ml_fare_training taxi", "rider_fare_q50") in failed  # fares in cents
    window = next(line for line in critical if "both_services_each_month" in line)
    assert "e.g. 2020-03 taxi" in window


def test_data_docs_site_shows_the_validated_suites(quality_db: QualityDb) -> None:
    from fares.quality.validate import build_data_docs, run_validation

    run_validation(quality_db.settings, quality_db.wh, "training", months=["2020-04"])
    index = build_data_docs(quality_db.settings)

    assert index == quality_db.settings.data_dir / "gx" / "data_docs" / "index.html"
    html = index.read_text()
    assert "marts.ml_fare_training.uber" in html
    assert (index.parent / "validations").is_dir()


def test_aggregate_batches_are_run_once_and_checked_as_literals(quality_db: QualityDb) -> None:
    """An aggregate batch (the per-service fare quantiles) is run once by fares and handed to GX as its literal rows:
    the same values as the query gives; a query the database rejects fails its checks with the database's message."""
    from fares.engines import get_engine
    from fares.quality.gx_run import run_batches
    from fares.quality.suites import Batch, training_batches

    taxi = next(b for b in training_batches(["2020-04"]) if b.label == "taxi")
    assert taxi.query is not None  # an aggregate batch
    settled = get_engine(quality_db.settings).settle(quality_db.wh, taxi.query)
    assert settled != taxi.query and "values" in settled
    with quality_db.wh.connect() as conn:
        original = conn.execute(taxi.query).fetchall()
        literal = conn.execute(settled).fetchall()
    assert literal == original and original[0][0] > 0

    broken = Batch(taxi.table, "broken", taxi.checks, query="select no_such_column from marts.ml_fare_training")
    results = run_batches(quality_db.settings, quality_db.wh, [broken])
    assert len(results) == len(taxi.checks) and not any(r.success for r in results)
    assert all("no_such_column" in (r.error or "") for r in results)


def test_the_service_pass_quantiles_are_percentile_conts(quality_db: QualityDb) -> None:
    """The gate's per-service pass computes the fare quantiles from a histogram of the fares (a parallel hash
    aggregate, not one process's sort): the values are PostgreSQL's percentile_cont on the same trips, with tied
    fares, a null fare, one trip, and quantiles between ranks; the counts are the trips' and the features' nulls."""
    from fares.quality.suites import TRAINING_NOT_NULL, TRAINING_TABLE, _service_pass

    quantiles = [0.001, 0.1, 0.25, 0.333, 0.5, 0.9, 0.999]
    names = ", ".join(f"rider_fare_q{round(q * 100)}" for q in quantiles)
    exact = ", ".join(f"percentile_cont({q}) within group (order by rider_fare)" for q in quantiles)
    rng = random.Random(11)
    ties = _mart_rows("2019-12", "uber", 500, 1.0, rng) + _mart_rows("2019-11", "uber", 1, 1.0, rng)
    ties = [(*row[:-1], round(row[-1])) for row in ties]  # whole dollars: hundreds of tied fares
    ties[3] = (*ties[3][:-1], None)  # percentile_cont leaves a null fare out; the trip still counts
    ties[4] = (*ties[4][:8], None, *ties[4][9:])  # a null pickup_hour
    with quality_db.wh.connect() as conn:  # rolled back at the end: the module's mart is left as it was
        with conn.cursor().copy(f"copy {TRAINING_TABLE} from stdin") as copy:
            for row in ties:
                copy.write_row(row)
        for month, service in (("2020-04", "taxi"), ("2020-04", "uber"), ("2019-12", "uber"), ("2019-11", "uber")):
            where = f" where source_month in ('{month}')"
            got = conn.execute(
                f"select {names}, trips, pickup_hour_nulls from ({_service_pass(service, quantiles, where)}) as p"
            ).fetchone()
            want = conn.execute(
                f"select {exact}, count(*), count(*) - count(pickup_hour) from {TRAINING_TABLE}{where}"
                f" and service = '{service}'"
            ).fetchone()
            assert got is not None and want is not None
            assert got == pytest.approx(want, rel=1e-12, abs=1e-9), (month, service)
            assert got[-2] > 0 and (got[-1] == 1) == (month == "2019-12")
        empty = _service_pass("taxi", [0.5], " where source_month in ('2031-01')")
        nulls = conn.execute(
            f"select trips, {', '.join(f'{c}_nulls' for c in TRAINING_NOT_NULL)} from ({empty}) as p"
        ).fetchone()
        assert nulls == (0,) * (1 + len(TRAINING_NOT_NULL))  # a month without trips: no trips, no nulls (not null)
        conn.rollback()


def test_the_tally_decides_each_raw_check_as_the_row_checks_do(quality_db: QualityDb) -> None:
    """A raw month's checks are decided by one aggregate query (its tally); on a month with faults of every kind the
    verdicts equal those of GX's own row checks, the failed ones carry GX's row counts and examples, and a tally the
    database cannot run (a column missing) leaves the month to the row checks."""
    from dataclasses import replace

    from fares.quality.gx_run import run_batches
    from fares.quality.suites import KINDS, raw_batch

    yellow = KINDS[0]
    batches = [
        raw_batch(yellow, FAULTY_MONTH, list(range(1, 266)), ("2020-04", 10_000), 0.25),
        raw_batch(yellow, "2020-04", list(range(1, 266)), ("2020-03", 10_000), 0.99),
        raw_batch(KINDS[1], "2020-04", [1, 2, 3], None, 0.5),  # a zone set: most zones unknown
    ]
    assert all(b.tally is not None for b in batches)
    tallied = run_batches(quality_db.settings, quality_db.wh, batches)
    rows = run_batches(quality_db.settings, quality_db.wh, [replace(b, tally=None) for b in batches])
    verdict = {(r.batch, r.table, r.check): r.success for r in tallied}
    assert verdict == {(r.batch, r.table, r.check): r.success for r in rows}
    assert {c for (_, _, c), ok in verdict.items() if not ok} >= {*RAW_FAULTS, "pu_location_id_known_zone"}
    assert any(verdict.values())
    by_key = {(r.batch, r.table, r.check): r for r in rows}
    for r in tallied:
        if not r.success:  # the details of a failure come from the row check itself
            twin = by_key[(r.batch, r.table, r.check)]
            assert (r.unexpected_count, r.examples) == (twin.unexpected_count, twin.examples), r.check

    counted = batches[1].tally
    assert counted is not None
    missing = replace(batches[1], tally=replace(counted, query=counted.query + " and no_such < 1"))
    fallback = run_batches(quality_db.settings, quality_db.wh, [missing])
    assert {r.check: r.success for r in fallback} == {
        r.check: r.success for r in rows if r.batch == "2020-04" and r.table == yellow.table
    }


def test_the_gates_queries_are_settled_side_by_side(quality_db: QualityDb) -> None:
    """The Settler runs the batches' aggregates on connections of their own, two at a time on PostgreSQL: a query
    held back by a lock does not hold back the next one, and each still settles to its literal rows."""
    import threading

    from fares.engines import get_engine
    from fares.quality.gx_run import Settler
    from fares.quality.suites import Batch

    engine = get_engine(quality_db.settings)
    assert engine.settle_workers == 2
    blocked = "select count(*) as n from (select pg_advisory_lock_shared(424242)) as held"
    free = "select 7 as n"
    batches = [Batch("marts.ml_fare_training", label, [], query=q) for label, q in (("a", blocked), ("b", free))]
    with quality_db.wh.connect(autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(424242)")  # the first query waits for this lock
        second: list[str] = []
        with Settler(engine, quality_db.wh, batches) as settler:
            try:
                reader = threading.Thread(target=lambda: second.append(settler.settle(free)), daemon=True)
                reader.start()
                reader.join(120)
            finally:
                holder.execute("select pg_advisory_unlock(424242)")
            first = settler.settle(blocked)
    # settled while the first query still waited: not queued behind it
    assert second and "(7::bigint)" in second[0], "the second query waited for the first"
    assert "(1::bigint)" in first
