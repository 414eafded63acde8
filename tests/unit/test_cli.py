"""The `tasker` command line, driven in-process with click's runner."""

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from server.cli import main

WORKFLOWS = Path(__file__).resolve().parents[1] / "fixtures" / "workflows"


def test_handlers_list_shows_the_seed_catalogue():
    result = CliRunner().invoke(main, ["handlers", "list", "--examples"])
    assert result.exit_code == 0, result.output
    assert "payments: Payment processing workflows" in result.output
    assert "process_payment (2.1.0): 4 steps" in result.output
    assert "send_email (1.10.0, 1.9.0)" in result.output


def test_handlers_validate_accepts_good_files():
    result = CliRunner().invoke(main, ["handlers", "validate", str(WORKFLOWS)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_handlers_validate_names_the_file_and_step_of_a_cycle(tmp_path):
    bad = tmp_path / "cycle.yaml"
    bad.write_text(
        "name: loop\nnamespace_name: x\nversion: 1.0.0\nstep_templates:\n"
        "  - {name: a, handler_class: 'tests.support.steps:Work', depends_on_step: b}\n"
        "  - {name: b, handler_class: 'tests.support.steps:Work', depends_on_step: a}\n"
    )
    result = CliRunner().invoke(main, ["handlers", "validate", str(bad)])
    assert result.exit_code == 1
    assert "cycle.yaml" in result.output
    assert "'a'" in result.output or "'b'" in result.output


def test_migrate_creates_and_then_reports_up_to_date(tmp_path):
    # A real process: Tortoise caches dialect-specific SQL per process (see tests/conftest.py).
    env = {**os.environ, "TASKER_DATABASE_URL": f"sqlite://{tmp_path / 'm.db'}"}
    tasker = str(Path(sys.executable).parent / "tasker")
    first = subprocess.run([tasker, "migrate"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    second = subprocess.run([tasker, "migrate"], env=env, capture_output=True, text=True)
    assert "up to date" in second.stdout


def test_serve_refuses_a_public_address_without_authentication():
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "refusing to listen on 0.0.0.0" in result.output


def test_worker_needs_a_broker_url(monkeypatch):
    monkeypatch.delenv("TASKER_BROKER_URL", raising=False)
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code != 0
    assert "TASKER_BROKER_URL" in result.output


def test_serve_refuses_a_short_secret_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("TASKER_JWT_SECRET", "too-short")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code != 0
    assert "32" in result.output and "Traceback" not in result.output
