"""CLI conventions: usage errors exit 2 with one line and where help is, `--version`, `-h`,
the exit-code table (0 ok / 1 job failed / 2 usage or configuration) for every command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from edi import __version__
from edi.cli.root import _register_optional_commands, app
from tests.support.workspace import REPO, edi


def run_cli(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if home is not None:
        env["EDI_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "edi", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=home or REPO,
    )


def all_commands() -> list[tuple[list[str], list[str]]]:
    """(command path, its required parameters' first spellings) for every leaf command."""
    _register_optional_commands()
    found: list[tuple[list[str], list[str]]] = []

    def walk(command: object, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, [*path, name])
            return
        params = getattr(command, "params", [])
        found.append((path, [p.opts[0] for p in params if p.required]))

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = all_commands()
GROUPS = sorted({" ".join(path[:-1]) for path, _ in COMMANDS if len(path) > 1})


def test_every_command_is_in_the_table() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"generate", "validate", "run", "status", "log list", "carriers show"} <= names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_unknown_option_is_a_usage_error(
    path: list[str], edi_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = edi(capsys, *path, "--no-such-option")
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: No such option: --no-such-option"), err
    assert lines[-1] == f"Try 'edi {' '.join(path)} --help' for help."
    assert len(lines) == 2 and out == ""


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_help_and_h_exit_0(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--help", "-h"):
        code, out, _ = edi(capsys, *path, flag)
        assert code == 0
        assert f"edi {' '.join(path)}" in out and "<bool>" not in out


@pytest.mark.parametrize("path", [p for p, required in COMMANDS if required], ids=" ".join)
def test_missing_required_parameter_is_a_usage_error(
    path: list[str], edi_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = edi(capsys, *path)
    assert code == 2
    assert err.startswith("error: Missing "), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2


@pytest.mark.parametrize("group", GROUPS)
def test_bare_group_shows_help_and_exits_2(group: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = edi(capsys, *group.split())
    assert code == 2
    assert "Usage: edi " + group in out + err or f"Try 'edi {group} --help'" in err


@pytest.mark.parametrize(
    ("args", "expected_code", "expected_err"),
    [
        (["bogus"], 2, "error: No such command 'bogus'."),
        (["generat"], 2, "Did you mean 'generate'?"),
        (["log", "lst"], 2, "Did you mean 'list'?"),
        (["carriers", "list", "--jsn"], 2, "--json"),
        (["generate"], 2, "error: Missing option '--carrier'"),
        (["log", "show", "notanumber"], 2, "error: Invalid value for 'seq'"),
        (["generate", "--carrier", "colonial", "--as-of", "tomorrow"], 2, "[bad-date]"),
        (["generate", "--carrier", "colonal"], 2, "did you mean 'colonial'?"),
    ],
)
def test_usage_errors_in_a_real_process(
    args: list[str], expected_code: int, expected_err: str, edi_home: Path
) -> None:
    done = run_cli(*args, home=edi_home)
    assert done.returncode == expected_code, done.stderr
    assert expected_err in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_bare_edi_shows_help_and_exits_2(edi_home: Path) -> None:
    done = run_cli(home=edi_home)
    assert done.returncode == 2
    assert "Usage: edi" in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_missing_carrier_lists_the_carriers(edi_home: Path) -> None:
    done = run_cli("run", home=edi_home)
    assert done.returncode == 2
    assert "(carriers here: allstate, colonial, unum)" in done.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--version", "-V"):
        code, out, _ = edi(capsys, flag)
        assert (code, out) == (0, f"edi {__version__}\n")


def test_config_error_printed_once_with_suggestions(
    edi_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (edi_home / "edi.toml").write_text('sorce = "x"\n[alerts]\nemail = []\n')
    code, _, err = edi(capsys, "carriers", "list")
    assert code == 2
    assert err.count("sorce") == 1 and err.count("alerts.email") == 1
    assert "sorce: unknown key, did you mean 'source'?" in err
    assert "alerts.email: unknown key, did you mean 'email_to'?" in err
    hint = err.strip().splitlines()[-1]
    assert hint.startswith("hint:") and "Workspace settings" in hint
    assert "## Workspace settings" in (REPO / "README.md").read_text()


def test_profile_key_suggestion(edi_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = edi_home / "carriers" / "unum.toml"
    profile.write_text(profile.read_text().replace("\nclaims =", "\nclaim ="))
    code, _, err = edi(capsys, "carriers", "show", "unum")
    assert code == 2
    assert "claim: unknown key, did you mean 'claims'?" in err
    assert err.count("claim: unknown key") == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["carriers", "list"], 0),
        (["carriers", "show", "colonial"], 0),
        (["carriers", "show", "nobody"], 2),
        (["validate", "samples/out/ACME_colonial_834_20261124_000000001.834"], 0),
        (
            [
                "validate",
                "samples/out/ACME_unum_834_20261124_000000001.834",
                "--carrier",
                "colonial",
            ],
            1,
        ),
        (["validate", "no-such-file.834"], 2),
        (["log", "list"], 0),
        (["log", "verify"], 0),
        (["log", "show", "1"], 2),
        (["log", "export", "--format", "xml"], 2),
        (["schedules", "list"], 0),
        (["status"], 0),
        (["baseline", "show", "--carrier", "colonial"], 0),
        (["run", "--carrier", "colonial", "--as-of", "2026-11-24"], 2),  # no [delivery]
        (["run", "--carrier", "colonial", "--dry-run"], 2),
        (["show", "samples/out/ACME_colonial_834_20261124_000000001.834"], 0),
        (["show", "README.md"], 1),
        (["show", "no-such-file.834"], 2),
        (["check", "--carrier", "colonial"], 1),  # no [delivery]: the check fails
        (["check", "--carrier", "nobody"], 2),
        (["init", "."], 2),  # the repository already is a workspace
        (["diff", "--carrier", "colonial", "--as-of", "2026-11-24"], 0),
        (["generate", "--carrier", "colonial", "--as-of", "2026-11-24", "--type", "weekly"], 2),
        (["acks", "fetch"], 0),  # no profile has [acks]: says so
        (["acks", "fetch", "--carrier", "colonial"], 2),
        (["discrepancies", "list"], 0),
        (["reconcile", "--carrier", "colonial", "no-such-roster.csv"], 2),
        (["reconcile", "--carrier", "colonial", "README.md"], 1),
        (["roster", "fetch", "--carrier", "colonial"], 2),  # no [roster]
        (["log", "head"], 1),  # no signed checkpoint yet
        (["snapshots", "list"], 0),
        (["pull"], 2),  # no [plansource] client
        # No [store] (on the store pass there is one: tests/scaleout has those exits).
        pytest.param(["enqueue", "--carrier", "colonial"], 2, marks=pytest.mark.sqlite_only),
        pytest.param(["jobs", "list"], 2, marks=pytest.mark.sqlite_only),
        pytest.param(["store", "init"], 2, marks=pytest.mark.sqlite_only),
        (["worker", "--concurrency", "0"], 2),
        (["send", "no-such-file.834", "--carrier", "colonial"], 2),
        (["send", "samples/out/ACME_colonial_834_20261124_000000001.834", "-c", "colonial"], 2),
        (["demo", "--as-of", "tomorrow"], 2),
        (["serve", "--host", "0.0.0.0"], 2),  # off loopback without a token
        (["scheduler", "run", "--now-or-never"], 2),
        (["log", "report", "--html", "{home}/report.html"], 0),
        (["log", "report", "--html", "{home}/report.html", "--since", "May"], 2),
        (["log", "public-key"], 1),  # no key before the first entry
        (["baseline", "reset", "--carrier", "colonial", "--reason", "test"], 0),
        (["baseline", "reset", "--carrier", "colonal", "--reason", "test"], 2),
        (["discrepancies", "show", "999"], 2),
        (["discrepancies", "resolve", "999", "--note", "x"], 2),
        (["discrepancies", "ignore", "999", "--note", "x"], 2),
        pytest.param(["jobs", "retry", "1"], 2, marks=pytest.mark.sqlite_only),
        pytest.param(["store", "grant", "--workspace", "acme"], 2, marks=pytest.mark.sqlite_only),
        pytest.param(["store", "migrate", "--from-sqlite"], 2, marks=pytest.mark.sqlite_only),
        (["sandbox", "plansource", "--data", "no-such-folder"], 2),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_exit_code_table(
    args: list[str],
    expected: int,
    edi_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (edi_home / "edi.toml").write_text(
        f'source = "{REPO / "samples" / "plansource"}"\nsample_data = true\n'
    )
    monkeypatch.chdir(REPO)
    code, _, err = edi(capsys, *(arg.replace("{home}", str(edi_home)) for arg in args))
    assert code == expected, err
    assert "Traceback" not in err
    if expected == 2 and "error: " not in err:  # our own usage errors name where help is too
        assert err.strip().splitlines()[-1].startswith(("Try 'edi ", "hint: ")), err


def test_the_exit_code_table_covers_every_command() -> None:
    table = next(
        mark.args[1]
        for mark in test_exit_code_table.pytestmark  # type: ignore[attr-defined]
        if mark.name == "parametrize"
    )
    rows = [getattr(row, "values", row)[0] for row in table]
    covered = {
        " ".join(path)
        for path, _ in COMMANDS
        for args in rows
        if isinstance(args, list) and args[: len(path)] == path
    }
    assert sorted({" ".join(path) for path, _ in COMMANDS} - covered) == []


def test_every_option_and_argument_is_described() -> None:
    """`edi X -h` explains every parameter (the sandbox is a test stand-in, not for operators)."""
    _register_optional_commands()
    undescribed: list[str] = []

    def walk(command: object, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, [*path, name])
            return
        for param in getattr(command, "params", []):
            if not getattr(param, "help", None) and not getattr(param, "hidden", False):
                undescribed.append(f"{' '.join(path)} {param.opts[0]}")

    walk(typer.main.get_command(app), [])
    assert [u for u in undescribed if not u.startswith("sandbox ")] == []


def test_every_readme_section_a_hint_names_exists() -> None:
    """A hint that says "see README: X" (or "README's section on X") points at a real heading."""
    import re

    headings = [
        line.lstrip("#").strip().lower()
        for line in (REPO / "README.md").read_text().splitlines()
        if line.startswith("## ")
    ]
    named: set[str] = set()
    for folder in ("edi", "transmit"):
        for source in (REPO / folder).rglob("*.py"):
            text = source.read_text()
            assert "(see README)" not in text, f"{source}: a hint naming no section"
            for found in re.findall(r"README(?::|\.md, section|'s section on) ([\w ]+)", text):
                named.add(re.sub(r"^the ", "", found.strip().lower()))
    assert len(named) >= 5
    missing = [name for name in named if not any(name in heading for heading in headings)]
    assert missing == [], f"hints name README sections that do not exist: {missing}"
