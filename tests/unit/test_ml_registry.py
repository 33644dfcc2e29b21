"""The model registry: versions on disk, the CURRENT pointer, promote and rollback, and the saved report."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pandas as pd
import pytest

from fares.ml import RegistryError
from fares.ml.evaluate import BaselineModel, evaluate_holdout
from fares.ml.predict import load_current, load_version
from fares.ml.provenance import code_version, git_commit
from fares.ml.registry import Registry
from fares.ml.report import render_report
from fares.ml.simulate import make_training_frame, make_zones
from fares.ml.train import fingerprint, fit_fare_model, split_holdout


@pytest.fixture(scope="module")
def trained():
    zones = make_zones()
    train, holdout = split_holdout(make_training_frame(zones, n_rows=4000, seed=2))
    model = fit_fare_model(train, zones, params={"max_iter": 60})
    metrics, detail = evaluate_holdout(model, BaselineModel.fit(train, model.zone_table), holdout)
    model.metrics = metrics
    return model, metrics, detail, holdout, fingerprint(train)


def test_empty_registry_has_no_current_model(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    assert registry.versions() == []
    assert registry.current_version() is None
    assert load_current(tmp_path / "models") is None
    with pytest.raises(RegistryError, match="no earlier model version"):
        registry.rollback()
    with pytest.raises(RegistryError, match="not found"):
        registry.promote("20260101T000000Z-nothere")


def test_saved_version_loads_and_predicts_the_same(trained, tmp_path: Path) -> None:
    model, _, _, holdout, fp = trained
    registry = Registry(tmp_path)
    version = registry.save(model, fingerprint=fp, report_html="<html></html>")
    assert version.endswith(fp[:8]) and version[:8].isdigit()
    doc = json.loads((tmp_path / version / "metrics.json").read_text())
    assert doc["version"] == version and doc["data_fingerprint"] == fp
    assert doc["trained_from"] == model.trained_from and doc["code_version"]
    assert doc["metrics"]["model_mae"] == pytest.approx(model.metrics["model_mae"])
    loaded = load_version(tmp_path, version)
    assert loaded.version == version
    assert list(loaded.zones.columns) == list(model.zones.columns) and len(loaded.zones) == len(model.zones)
    pd.testing.assert_frame_equal(loaded.predict_frame(holdout.head(50)), model.predict_frame(holdout.head(50)))
    with pytest.raises(RegistryError, match="not found"):
        load_version(tmp_path, "20990101T000000Z-missing")


def test_a_bundle_records_the_code_libraries_and_hyperparameters_that_made_it(trained, tmp_path: Path) -> None:
    import numpy
    import sklearn

    model, *_ = trained
    version = Registry(tmp_path).save(model, fingerprint="f" * 64)
    doc = json.loads((tmp_path / version / "metrics.json").read_text())
    assert doc["code_version"] == code_version() and len(doc["code_version"]) == 16
    assert doc["git_commit"] == git_commit()
    assert doc["libraries"] == {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
    }
    assert set(doc["hyperparameters"]) == {"taxi", "uber"}
    for params in doc["hyperparameters"].values():  # the fixture's override and the defaults, as the fit used them
        assert (params["max_iter"], params["learning_rate"], params["loss"]) == (60, 0.1, "squared_error")


def test_promote_and_rollback_move_the_current_pointer(trained, tmp_path: Path) -> None:
    model, *_ = trained
    registry = Registry(tmp_path)
    first = registry.save(model, fingerprint="aaaa1111")
    second = registry.save(model, fingerprint="bbbb2222")
    third = registry.save(model, fingerprint="aaaa1111")
    assert third != first
    registry.promote(first)
    registry.promote(second)
    assert (tmp_path / "CURRENT").read_text().strip() == second
    current = load_current(tmp_path)
    assert current is not None and current.version == second
    rows = {r["version"]: r for r in registry.versions()}
    assert [r["version"] for r in registry.versions()] == sorted(rows)
    assert rows[second]["current"] and rows[first]["promoted"] and not rows[first]["current"]
    assert not rows[third]["promoted"]
    assert rows[first]["taxi_mae"] == round(model.metrics["services"]["taxi"]["model"]["mae"], 2)
    assert rows[first]["baseline_mae"] == round(model.metrics["baseline_mae"], 2)
    assert registry.rollback() == first
    assert registry.current_version() == first
    with pytest.raises(RegistryError, match="no earlier"):
        registry.rollback()
    assert registry.current_version() == first
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".CURRENT.*"))


def test_report_is_self_contained_with_plots_and_baseline_verdict(trained) -> None:
    _model, metrics, detail, _, _ = trained
    page = render_report("20260101T000000Z-abcdef12", metrics, detail, {"training window": "x .. y"})
    assert page.count("data:image/png;base64,") == 3
    assert "beats the baseline" in page
    assert f"${metrics['baseline_mae']:.2f}" in page and "20260101T000000Z-abcdef12" in page
    assert 'src="http' not in page
