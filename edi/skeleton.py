"""`edi init DIR`: a production workspace skeleton (commented edi.toml, templates, folders)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edi.errors import ConfigError

# (template in edi/templates/workspace, where it goes in the new workspace)
FILES = (
    ("edi.toml", "edi.toml"),
    ("carrier.toml.sample", "carriers/example.toml.sample"),
    ("schedule.toml.sample", "schedules/example.toml.sample"),
    ("gitignore", ".gitignore"),
)
FOLDERS = ("carriers/keys", "schedules")


def create_workspace(target: Path) -> list[Path]:
    """Writes the skeleton; refuses a folder that already is a workspace. Returns what it wrote."""
    target = target.resolve()
    if (target / "edi.toml").exists() or (target / "carriers").exists():
        raise ConfigError(
            "workspace-exists",
            f"{target} already is a workspace (it has edi.toml or carriers/); nothing written",
            hint="Pick an empty or new folder for `edi init`.",
        )
    templates = resources.files("edi") / "templates" / "workspace"
    written: list[Path] = []
    for folder in FOLDERS:
        (target / folder).mkdir(parents=True, exist_ok=True)
    for template, relative in FILES:
        path = target / relative
        path.write_text((templates / template).read_text())
        written.append(path)
    return written
