"""The workspace is explicit: a --home/EDI_HOME without edi.toml or carriers/ is a usage error
that writes nothing; `edi init DIR` creates a skeleton that loads; the demo says where it is."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from edi.profiles import load_profile_file
from edi.schedules import load_schedule
from edi.workspace import Workspace
from tests.support.workspace import REPO, edi

NEEDS_A_WORKSPACE = [
    ["status"],
    ["log", "list"],
    ["log", "verify"],
    ["schedules", "list"],
    ["carriers", "list"],
    ["acks", "fetch"],
    ["snapshots", "list"],
    ["generate", "--carrier", "colonial"],
    ["baseline", "show", "--carrier", "colonial"],
]


@pytest.mark.parametrize("args", NEEDS_A_WORKSPACE, ids=" ".join)
def test_home_that_does_not_exist_is_refused_and_not_created(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-workspace"
    code, _, err = edi(capsys, "--home", str(missing), *args)
    assert code == 2
    assert "[workspace-missing]" in err and "edi init" in err
    assert not missing.exists()


@pytest.mark.parametrize("args", NEEDS_A_WORKSPACE[:4], ids=" ".join)
def test_edi_home_at_an_empty_folder_is_refused_and_left_empty(
    args: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("EDI_HOME", str(empty))
    code, _, err = edi(capsys, *args)
    assert code == 2 and "came from EDI_HOME" in err
    assert list(empty.iterdir()) == []


def test_init_creates_a_workspace_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "prod"
    code, out, err = edi(capsys, "init", str(home))
    assert code == 0, err
    written = {Path(line).relative_to(home.resolve()).as_posix() for line in out.split()}
    assert written == {
        "edi.toml",
        "carriers/example.toml.sample",
        "schedules/example.toml.sample",
        ".gitignore",
    }
    settings_text = (home / "edi.toml").read_text()
    assert "[alerts]" in settings_text and "\n# source" in settings_text  # production: no source
    workspace = Workspace.open(home, must_exist=True)
    assert workspace.settings.source is None and workspace.settings.alerts.email_to == []
    # The templates load once copied to a .toml name.
    shutil.copyfile(home / "carriers/example.toml.sample", home / "carriers/example.toml")
    assert load_profile_file(home / "carriers/example.toml").plans
    shutil.copyfile(home / "schedules/example.toml.sample", home / "schedules/example.toml")
    assert load_schedule(home / "schedules/example.toml").carrier == "example"
    code, out, err = edi(capsys, "--home", str(home), "carriers", "list")
    assert code == 0 and "example" in out
    code, _, err = edi(capsys, "--home", str(home), "status")
    assert code == 0, err


def test_init_refuses_an_existing_workspace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "prod"
    (home / "carriers").mkdir(parents=True)
    code, _, err = edi(capsys, "init", str(home))
    assert code == 2 and "[workspace-exists]" in err
    assert not (home / "edi.toml").exists()


@pytest.mark.slow
def test_demo_says_where_its_workspace_is(
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("EDI_HOME", raising=False)
    # GnuPG's agent socket lives in the home: keep the path short (sun_path is 108 bytes).
    demo_home = Path(tempfile.mkdtemp(prefix="edi-demo-"))
    request.addfinalizer(lambda: shutil.rmtree(demo_home, ignore_errors=True))
    code, _, err = edi(capsys, "demo", "--workspace", str(demo_home))
    assert code == 0, err
    assert f"The demo's workspace is {demo_home}" in err
    assert f"edi --home {demo_home} log list" in err
    code, out, _ = edi(capsys, "--home", str(demo_home), "log", "list", "--json")
    assert code == 0 and '"delivery"' in out


def test_an_empty_log_points_at_the_demo_workspace(
    edi_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = edi(capsys, "--home", str(edi_home), "log", "list")
    assert code == 0 and "Delivery log: no entries" in err and "scripts/demo" not in err
    demo = edi_home / "state" / "demo"
    (demo / "carriers").mkdir(parents=True)
    for command in (["log", "list"], ["status"]):
        code, _, err = edi(capsys, "--home", str(edi_home), *command)
        assert code == 0, err
        assert f"edi --home {demo} log list" in err
