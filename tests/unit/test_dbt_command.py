"""The dbt command line fares runs: its vars that are settings come from Settings, never from a second default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fares.config.settings import Settings
from fares.config.warehouse import DBT_PROJECT_DIR
from fares.engines.transform import dbt_command


def _vars(cmd: list[str]) -> dict:
    return json.loads(cmd[cmd.index("--vars") + 1])


def test_dbt_gets_the_training_months_as_zone_pair_months() -> None:
    cmd = dbt_command(Settings(database_url=None, train_months=5), ["build", "--select", "marts"])
    assert _vars(cmd) == {"zone_pair_months": 5, "holdout_min_trips": 2000, "holdout_min_cells": 200}
    # `dbt build --project-dir ...` stays one run of words: the control-room test finds a left-over dbt by it.
    assert f"build --select marts --project-dir {DBT_PROJECT_DIR}" in " ".join(cmd)


def test_the_dbt_project_default_is_the_settings_default() -> None:
    project = yaml.safe_load((Path(DBT_PROJECT_DIR) / "dbt_project.yml").read_text())
    assert project["vars"]["zone_pair_months"] == Settings.model_fields["train_months"].default
    assert project["vars"]["holdout_min_trips"] == Settings.model_fields["holdout_min_trips"].default
    assert project["vars"]["holdout_min_cells"] == Settings.model_fields["holdout_min_cells"].default


def test_vars_the_caller_passes_are_kept_beside_the_settings() -> None:
    cmd = dbt_command(
        Settings(database_url=None, train_months=3), ["build", "--vars", "{max_trip_miles: 80}", "--select", "x"]
    )
    assert _vars(cmd) == {
        "max_trip_miles": 80,
        "zone_pair_months": 3,
        "holdout_min_trips": 2000,
        "holdout_min_cells": 200,
    }
    assert cmd.count("--vars") == 1 and "--select" in cmd


def test_a_caller_var_that_is_a_setting_is_refused_with_the_setting_to_use() -> None:
    with pytest.raises(ValueError, match="FARES_TRAIN_MONTHS"):
        dbt_command(Settings(database_url=None, train_months=3), ["build", "--vars={zone_pair_months: 6}"])


def test_a_command_without_a_sub_command_gets_no_vars() -> None:
    assert "--vars" not in dbt_command(Settings(database_url=None), ["--version"])
