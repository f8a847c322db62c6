import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from cnn_core.service import settings as settings_module
from cnn_core.service.settings import (
    REPO_ROOT,
    VARIABLES,
    Settings,
    host_profile,
    load_settings,
    local_profile,
)


def test_every_field_has_an_environment_variable_and_is_documented():
    assert set(VARIABLES) == {f.name for f in fields(Settings)}
    for variable, _ in VARIABLES.values():
        assert f"``{variable}``" in settings_module.__doc__


def test_defaults_are_the_local_profile(monkeypatch):
    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: 6)
    loaded = load_settings(env={})
    assert loaded == local_profile()
    assert loaded.host_mode is False
    assert loaded.max_concurrent_jobs == 6
    assert (loaded.max_epochs, loaded.max_train_size, loaded.max_params) == (100, 60_000, 5_000_000)


def test_host_mode_switches_to_the_tight_profile(monkeypatch):
    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: 4)
    loaded = load_settings(env={"CNN_HOST_MODE": "yes"})
    assert loaded == host_profile()
    assert loaded.host_mode is True
    assert loaded.max_concurrent_jobs == 4
    assert loaded.max_epochs == 15
    assert loaded.max_params == 1_500_000
    assert loaded.abandon_after_s == 60.0
    assert loaded.job_runner == "process"
    # Local mode trains in a worker process too: the thread runner keeps memory after every run.
    assert local_profile().job_runner == "process"


def test_cpu_count_unknown_still_allows_one_job(monkeypatch):
    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: None)
    assert load_settings(env={}).max_concurrent_jobs == 1


def test_environment_overrides_each_field():
    env = {
        "CNN_HOST_MODE": "1",
        "CNN_MAX_JOBS": "3",
        "CNN_MAX_QUEUED_JOBS": "0",
        "CNN_MAX_EPOCHS": "7",
        "CNN_MAX_TRAIN_SIZE": "20_000",
        "CNN_MAX_PARAMS": "250000",
        "CNN_MAX_UPLOAD_MB": "2.5",
        "CNN_MAX_IMAGE_MB": "1",
        "CNN_ABANDON_AFTER_S": "30",
        "CNN_RESULT_TTL_S": "120",
        "CNN_MODELS_DIR": "/srv/models",
        "CNN_JOB_RUNNER": "Thread",
        "CNN_JOBS_PER_WORKER": "5",
        "CNN_WORKSPACES_DIR": "/srv/workspaces",
        "CNN_WORKSPACE_MAX_MB": "20",
        "CNN_WORKSPACE_TTL_DAYS": "3",
        "CNN_LINK_SECRET": "a-long-enough-secret",
        "CNN_BF16": "OFF",
        "CNN_MAX_UPLOAD_MFLOPS": "40",
        "CNN_MAX_UPLOAD_LAYERS": "12",
        "CNN_EVALUATE_BUDGET_S": "9",
    }
    loaded = load_settings(env=env)
    assert loaded == Settings(
        host_mode=True,
        max_concurrent_jobs=3,
        max_queued_jobs=0,
        max_epochs=7,
        max_train_size=20_000,
        max_params=250_000,
        max_upload_mb=2.5,
        max_image_mb=1.0,
        abandon_after_s=30.0,
        result_ttl_s=120.0,
        models_dir=Path("/srv/models"),
        job_runner="thread",
        jobs_per_worker=5,
        workspaces_dir=Path("/srv/workspaces"),
        workspace_max_mb=20.0,
        workspace_ttl_days=3.0,
        link_secret="a-long-enough-secret",
        bf16="off",
        max_upload_mflops=40.0,
        max_upload_layers=12,
        evaluate_budget_s=9.0,
    )
    assert loaded.max_upload_bytes == int(2.5 * 1024 * 1024)


def test_relative_models_dir_is_taken_from_the_repository():
    assert load_settings(env={"CNN_MODELS_DIR": "my_models"}).models_dir == REPO_ROOT / "my_models"


def test_secrets_override_defaults_and_environment_overrides_secrets():
    secrets = {"CNN_HOST_MODE": True, "max_epochs": 9, "CNN_MAX_JOBS": 2}
    loaded = load_settings(env={"CNN_MAX_JOBS": "5"}, secrets=secrets)
    assert loaded.host_mode is True
    assert loaded.max_epochs == 9
    assert loaded.max_concurrent_jobs == 5
    # Everything not set anywhere comes from the host profile that the secrets switched on.
    assert loaded.max_params == host_profile().max_params


def test_empty_values_count_as_unset():
    loaded = load_settings(env={"CNN_MAX_EPOCHS": "  ", "CNN_HOST_MODE": ""}, secrets={"CNN_MAX_EPOCHS": "12"})
    assert loaded.host_mode is False
    assert loaded.max_epochs == 12


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CNN_HOST_MODE", "maybe", "CNN_HOST_MODE must be true or false"),
        ("CNN_MAX_JOBS", "two", "CNN_MAX_JOBS must be a whole number from 1 to 256"),
        ("CNN_MAX_JOBS", "0", "CNN_MAX_JOBS is 0; use a whole number from 1 to 256"),
        ("CNN_MAX_EPOCHS", "2.5", "CNN_MAX_EPOCHS must be a whole number from 1 to 100"),
        ("CNN_MAX_EPOCHS", "500", "CNN_MAX_EPOCHS is 500; use a whole number from 1 to 100"),
        ("CNN_MAX_TRAIN_SIZE", "-1", "CNN_MAX_TRAIN_SIZE is -1"),
        ("CNN_MAX_UPLOAD_MB", "nan", "CNN_MAX_UPLOAD_MB is 'nan'; use a number from 0.01 to 2048"),
        ("CNN_MAX_IMAGE_MB", "lots", "CNN_MAX_IMAGE_MB must be a number"),
        ("CNN_ABANDON_AFTER_S", "inf", "CNN_ABANDON_AFTER_S is 'inf'"),
        ("CNN_JOB_RUNNER", "fork", "CNN_JOB_RUNNER must be one of thread, process, got 'fork'"),
        ("CNN_JOBS_PER_WORKER", "0", "CNN_JOBS_PER_WORKER is 0; use a whole number from 1 to 10000"),
        ("CNN_BF16", "fast", "CNN_BF16 must be one of auto, on, off, got 'fast'"),
    ],
)
def test_invalid_environment_values_name_the_variable_and_what_it_accepts(variable, value, expected):
    with pytest.raises(ValueError) as caught:
        load_settings(env={variable: value})
    assert expected in str(caught.value)


def test_invalid_secret_names_the_secret():
    with pytest.raises(ValueError, match=r"max_params \(secrets\) must be a whole number"):
        load_settings(env={}, secrets={"max_params": "many"})
    with pytest.raises(ValueError, match="CNN_MAX_JOBS"):
        load_settings(env={}, secrets={"CNN_MAX_JOBS": True})


def test_settings_refuse_an_unknown_runner():
    with pytest.raises(ValueError, match="job_runner must be one of thread, process"):
        Settings(job_runner="celery")


def test_the_bf16_setting_decides_the_training_precision(monkeypatch):
    from cnn_core.engine import precision

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda cpuinfo=None: True)
    assert load_settings(env={}).bf16 == "auto"
    assert load_settings(env={}).training_precision == "bfloat16"
    assert load_settings(env={"CNN_BF16": "off"}).training_precision == "float32"
    assert load_settings(env={"CNN_BF16": "0"}).bf16 == "off"
    assert load_settings(env={}, secrets={"CNN_BF16": False}).training_precision == "float32"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda cpuinfo=None: False)
    assert load_settings(env={}).training_precision == "float32"
    assert load_settings(env={"CNN_BF16": "on"}).training_precision == "bfloat16"
    with pytest.raises(ValueError, match="bf16 must be one of auto, on, off"):
        Settings(bf16="yes please")


def run_check(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CNN_")}
    return subprocess.run([sys.executable, "-m", "cnn_core.service.settings"], cwd=REPO_ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("variable", "value"), [("CNN_MAX_JOBS", "abc"), ("CNN_MAX_EPOCHS", "-3"),
                                                  ("CNN_MAX_UPLOAD_MFLOPS", "-1"), ("CNN_HOST_MODE", "maybe")])
def test_the_start_up_check_stops_on_a_bad_value_and_names_it(variable, value):
    checked = run_check({variable: value})
    assert checked.returncode == 2
    assert variable in checked.stderr and "Traceback" not in checked.stderr
    assert run_check({}).returncode == 0
