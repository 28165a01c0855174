"""scripts/install says what it installs (checked with stand-ins for apt-get and python3, so
the test changes nothing on the machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.workspace import REPO


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_install_prints_what_it_installs(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {calls}')
    stub(
        bin_dir,
        "python3",
        f'echo "python3 $*" >> {calls}\ncase "$1" in -c) echo "edi-834 0.1.0, typer 0.29.2";; esac',
    )
    stub(bin_dir, "gpg", "true")  # present; sftp (and sshd unless in /usr/sbin) are not
    for tool in ("dirname",):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    env = {**os.environ, "PATH": str(bin_dir)}
    done = subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(REPO / "scripts" / "install")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    has_sshd = Path("/usr/sbin/sshd").exists()
    present = {
        "chromium": Path("/usr/bin/chromium").exists(),
        "chromium-driver": Path("/usr/bin/chromedriver").exists(),
        "postgresql": bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))),
    }
    have = ["openssh-server"] if has_sshd else []
    have += ["gnupg", *(name for name, there in present.items() if there)]
    assert "install: already installed: " + " ".join(have) in lines
    missing = ["openssh-client"] if has_sshd else ["openssh-server", "openssh-client"]
    wanted = " ".join([*missing, *(name for name, there in present.items() if not there)])
    assert f"install: apt-get install {wanted}" in lines
    assert any(line.startswith("install: pip install -e '.[test]'") for line in lines)
    assert "install: installed: edi-834 0.1.0, typer 0.29.2" in lines
    recorded = calls.read_text()
    assert f"apt-get install -y -qq {wanted}" in recorded and "pip install" in recorded
