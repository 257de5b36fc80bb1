"""`cms doctor` and the committed locks: every fresh install gets the versions the tests passed with."""

from __future__ import annotations

import tomllib
from pathlib import Path

from click.testing import CliRunner
from packaging.requirements import Requirement

from cms import doctor
from cms.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]]


def test_the_test_lock_satisfies_every_declared_requirement() -> None:
    pins = doctor.read_lock(ROOT / "requirements" / "test.lock")
    for requirement in _pyproject_requirements():
        name = doctor.canonical(requirement.name)
        assert name in pins, f"{name} is declared in pyproject.toml but not locked: run requirements/refresh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} in the lock does not satisfy {requirement}: run requirements/refresh"
        )


def test_the_run_lock_agrees_with_the_test_lock() -> None:
    run = doctor.read_lock(ROOT / "requirements" / "run.lock")
    test = doctor.read_lock(ROOT / "requirements" / "test.lock")
    assert run, "requirements/run.lock pins nothing"
    assert {name: version for name, version in run.items() if test.get(name) != version} == {}


def test_verdict_tools_are_pinned_exactly() -> None:
    # ruff, mypy and pytest decide whether tests pass: a new release must never change a verdict.
    exact = {doctor.canonical(r.name) for r in _pyproject_requirements() if str(r.specifier).startswith("==")}
    assert {"ruff", "mypy", "pytest", "pytest-timeout"} <= exact


def test_read_lock_takes_the_pin_whose_marker_holds(tmp_path: Path) -> None:
    lock = tmp_path / "test.lock"
    lock.write_text(
        "numpy==1.0 ; python_full_version < '3.0' \\\n    --hash=sha256:00\n"
        "numpy==2.0 ; python_full_version >= '3.0' \\\n    --hash=sha256:11\n"
        "Ruamel.Yaml==0.19 \\\n    --hash=sha256:22\n    # via cms\n",
        encoding="utf-8",
    )
    assert doctor.read_lock(lock) == {"numpy": "2.0", "ruamel-yaml": "0.19"}


def test_a_version_other_than_the_locked_one_is_reported_with_its_fix(tmp_path: Path) -> None:
    (tmp_path / doctor.lock_name()).write_text("click==0.0.1\n", encoding="utf-8")
    findings = {f.name: f for f in doctor.dependencies(tmp_path)}
    assert findings["click"].status == doctor.DIFFERS
    assert "0.0.1 locked" in findings["click"].detail
    assert findings["click"].fix == doctor.INSTALL_COMMAND.format(lock=doctor.lock_name())
    assert findings["pyyaml"].status == doctor.OK  # not in that lock: nothing to compare with


def test_the_installed_environment_matches_the_repository_lock() -> None:
    # This very run installed from the lock (README, .ci/run): any difference is a stale lock or a drifted venv.
    drifted = [f for f in doctor.dependencies() if f.status != doctor.OK]
    assert drifted == []


def test_doctor_command_prints_every_finding_and_strict_fails_on_a_difference(tmp_path: Path, monkeypatch) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["doctor"])
    assert result.exit_code == 0
    for name in ("python", "avif encoding", "sqlite fts5", "git", "pyyaml", "starlette"):
        assert name in result.output
    (tmp_path / doctor.lock_name()).write_text("starlette==0.0.1\n", encoding="utf-8")
    monkeypatch.setattr(doctor, "LOCK_FOLDER", tmp_path)
    strict = runner.invoke(main, ["doctor", "--strict"])
    assert strict.exit_code == 1
    assert "DIFFERS" in strict.output
    assert doctor.INSTALL_COMMAND.format(lock=doctor.lock_name()) in strict.output
