"""One test per scenario folder: a pass folder gives zero error findings and a pyx12-valid
834; a fail folder gives exactly its expected error codes and no file."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edi.errors import ValidationFailed
from edi.pipeline import generate
from edi.profiles import load_profile
from edi.workspace import Workspace
from tests.rules.fixtures import Scenario, prepare_profile, scenarios
from tests.support.workspace import assert_valid_834

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
ERROR_LINE = re.compile(r"^\[([a-z0-9-]+)\] error: ")


def run(edi_home: Path, s: Scenario, out: Path) -> object:
    prepare_profile(edi_home, s.carrier, s.profile)
    workspace = Workspace.open(edi_home)
    return generate(workspace, s.carrier, now=NOW, as_of=s.as_of, source=s.folder, out_dir=out)


@pytest.mark.parametrize("s", scenarios("pass"), ids=lambda s: s.name)
def test_pass_scenario(edi_home: Path, tmp_path: Path, s: Scenario) -> None:
    result = run(edi_home, s, tmp_path / "out")
    summary = result.summary()  # type: ignore[attr-defined]
    assert summary["held"] == []
    assert sorted(group["code"] for group in summary["warnings"]) == s.warnings
    assert_valid_834(result.path, load_profile(Workspace.open(edi_home), s.carrier))  # type: ignore[attr-defined]
    assert summary["subscribers"] == len(s.subscriber_ids())


@pytest.mark.parametrize("s", scenarios("fail"), ids=lambda s: s.name)
def test_fail_scenario(edi_home: Path, tmp_path: Path, s: Scenario) -> None:
    with pytest.raises(ValidationFailed) as failed:
        run(edi_home, s, tmp_path / "out")
    assert failed.value.code == "business-edits-failed"
    codes = []
    for line in failed.value.details:
        match = ERROR_LINE.match(line)
        assert match, line
        codes.append(match.group(1))
    assert sorted(codes) == s.findings
    assert not list((tmp_path / "out").glob("*")), "nothing is written"
    for line in failed.value.details:  # ids, never names or birth dates
        assert "Member" not in line and "1980" not in line and "Test" not in line
