"""The 22 ways of tampering with the delivery log (issue 13), each caught by `edi log verify`.

A workspace log of 30 entries is signed entry by entry (runs end with `checkpoint()`) and
witnessed in `state/witness/`. The auditor holds the public key (`edi log public-key`) and a
head recorded at entry 30 (`edi log head`). Each case is what an attacker with write access to
`state/` does with sqlite3 and the key file; verify must exit 1 and name the problem, must not
repair anything, and the tool must refuse to sign over the damage (append) where the damage
reaches the newest entry.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import transmit
from edi.delivery_config import delivery_log
from edi.workspace import Workspace
from tests.support.servers import WebhookServer
from tests.support.workspace import edi
from transmit.log import GENESIS, canonical, chain_hash, checkpoint_hash, checkpoint_message

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
ENTRIES = 30
OLDER_AT = 20


@dataclass
class Scene:
    """The workspace an attacker works on, and what the auditor keeps outside it."""

    home: Path
    older_copy: Path  # the database as it was at entry 20 (a backup an attacker restores)
    auditor_key: Path  # `edi log public-key`, kept by the auditor
    auditor_head: str  # `edi log head` at entry 30, kept by the auditor

    @property
    def db(self) -> Path:
        return self.home / "state" / "delivery-log.sqlite"

    @property
    def key(self) -> Path:
        return self.home / "state" / "keys" / "log-ed25519.pem"

    @property
    def witness(self) -> Path:
        return self.home / "state" / "witness" / "delivery-log.witness.jsonl"

    def log(self) -> transmit.DeliveryLog:
        return delivery_log(Workspace.open(self.home))

    def raw(self) -> sqlite3.Connection:
        """The database without its append-only triggers, as the attacker has it."""
        db = sqlite3.connect(self.db, isolation_level=None)
        for name in (
            "entries_no_update",
            "entries_no_delete",
            "checkpoints_no_update",
            "checkpoints_no_delete",
        ):
            db.execute(f"DROP TRIGGER IF EXISTS {name}")
        return db

    def bodies(self) -> list[dict[str, Any]]:
        with closing(self.raw()) as db:
            return [
                json.loads(row[0])
                for row in db.execute("SELECT body FROM entries ORDER BY seq").fetchall()
            ]

    def contents(self) -> tuple[object, ...]:
        """The log's rows, the key and the witness: what no command may change after tampering."""
        rows: object = None
        if self.db.exists() and self.db.stat().st_size:
            with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as db:
                rows = [
                    db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
                    for table in ("entries", "checkpoints")
                ]
        else:
            rows = self.db.exists()
        return tuple(
            [rows] + [p.read_bytes() if p.exists() else None for p in (self.key, self.witness)]
        )

    def rewrite(self, bodies: list[dict[str, Any]]) -> None:
        """Replaces every entry and recomputes the whole hash chain (seq renumbered 1..n)."""
        db = self.raw()
        db.execute("DELETE FROM entries")
        previous = GENESIS
        for seq, body in enumerate(bodies, start=1):
            body = {**body, "seq": seq}
            entry_hash = chain_hash(previous, body)
            db.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?)",
                (seq, canonical(body), previous, entry_hash),
            )
            previous = entry_hash
        db.close()

    def delete_checkpoints(self, where: str) -> None:
        db = self.raw()
        db.execute(f"DELETE FROM checkpoints WHERE {where}")
        db.close()

    def resign_everything(self, key: Ed25519PrivateKey) -> None:
        """Signs a fresh checkpoint chain over the current entries and rewrites the witness."""
        db = self.raw()
        db.execute("DELETE FROM checkpoints")
        rows = db.execute("SELECT seq, entry_hash FROM entries ORDER BY seq").fetchall()
        raw_public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        identity = transmit.log.hashlib.sha256(raw_public).hexdigest()
        previous, lines = GENESIS, []
        for count, head in rows:
            signature = base64.b64encode(
                key.sign(checkpoint_message(count, head, previous))
            ).decode()
            db.execute(
                "INSERT INTO checkpoints (entry_count, head_hash, signed_at, signature, prev_hash)"
                " VALUES (?, ?, ?, ?, ?)",
                (count, head, NOW.isoformat(), signature, previous),
            )
            point = transmit.Checkpoint(count, head, previous, NOW.isoformat(), signature, identity)
            lines.append(json.dumps(point.as_json(), sort_keys=True))
            previous = checkpoint_hash(count, head, previous)
        db.close()
        self.witness.write_text("\n".join(lines) + "\n")


def new_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture
def scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Scene:
    home = tmp_path / "workspace"
    home.mkdir()
    (home / "edi.toml").write_text("")  # a workspace: --home must name one
    log = delivery_log(Workspace.open(home))
    older = tmp_path / "older.sqlite"
    for n in range(1, ENTRIES + 1):
        log.append(
            "delivery",
            now=NOW + timedelta(minutes=n),
            carrier="colonial" if n % 2 else "unum",
            outcome="delivered",
            isa13=f"{n:09d}",
            plaintext_sha256=f"{n:064x}",
            member_count=n,
        )
        if n % 5 == 0:
            log.checkpoint(now=NOW + timedelta(minutes=n))  # the end of a run
        if n == OLDER_AT:
            with (
                closing(sqlite3.connect(log.db_path)) as source,
                closing(sqlite3.connect(older)) as copy,
            ):
                source.backup(copy)
    code, public_pem, _ = edi(capsys, "log", "public-key", "--home", str(home))
    assert code == 0
    (tmp_path / "auditor.pem").write_text(public_pem)
    code, head, _ = edi(capsys, "log", "head", "--home", str(home))
    assert code == 0
    return Scene(home, older, tmp_path / "auditor.pem", head.strip())


# The attacks -----------------------------------------------------------------------------------


def field_edit_without_rehash(s: Scene) -> None:
    db = s.raw()
    body = json.loads(db.execute("SELECT body FROM entries WHERE seq = 12").fetchone()[0])
    body["outcome"] = "failed"
    db.execute("UPDATE entries SET body = ? WHERE seq = 12", (canonical(body),))
    db.close()


def field_edit_with_rehash(s: Scene) -> None:
    bodies = s.bodies()
    bodies[11]["outcome"] = "failed"
    s.rewrite(bodies)


def middle_delete(s: Scene) -> None:
    db = s.raw()
    db.execute("DELETE FROM entries WHERE seq = 15")
    db.close()


def middle_delete_rechained(s: Scene) -> None:
    bodies = s.bodies()
    del bodies[14]
    s.rewrite(bodies)


def middle_delete_rechained_later_checkpoints_deleted(s: Scene) -> None:
    middle_delete_rechained(s)
    s.delete_checkpoints("entry_count >= 15")


def middle_reorder(s: Scene) -> None:
    db = s.raw()
    rows = {
        seq: (body, prev, entry_hash)
        for seq, body, prev, entry_hash in db.execute(
            "SELECT seq, body, prev_hash, entry_hash FROM entries WHERE seq IN (15, 16)"
        )
    }
    for seq, other in ((15, 16), (16, 15)):
        db.execute(
            "UPDATE entries SET body = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
            (*rows[other], seq),
        )
    db.close()


def middle_reorder_rechained(s: Scene) -> None:
    bodies = s.bodies()
    bodies[14], bodies[15] = bodies[15], bodies[14]
    s.rewrite(bodies)


def middle_reorder_rechained_later_checkpoints_deleted(s: Scene) -> None:
    middle_reorder_rechained(s)
    s.delete_checkpoints("entry_count >= 15")


FORGED = {"event": "delivery", "carrier": "colonial", "outcome": "delivered", "isa13": "000000999"}


def middle_forge(s: Scene) -> None:
    """A forged entry 16 with a correct hash; later entries moved up one, hashes untouched."""
    db = s.raw()
    rows = db.execute(
        "SELECT seq, body, prev_hash, entry_hash FROM entries WHERE seq >= 16 ORDER BY seq DESC"
    ).fetchall()
    for seq, *_ in rows:
        db.execute("UPDATE entries SET seq = ? WHERE seq = ?", (seq + 1, seq))
    previous = db.execute("SELECT entry_hash FROM entries WHERE seq = 15").fetchone()[0]
    body = {
        **FORGED,
        "seq": 16,
        "recorded_at": (NOW + timedelta(minutes=15, seconds=30)).isoformat(),
    }
    db.execute(
        "INSERT INTO entries VALUES (?, ?, ?, ?)",
        (16, canonical(body), previous, chain_hash(previous, body)),
    )
    db.close()


def middle_forge_rechained(s: Scene) -> None:
    bodies = s.bodies()
    bodies.insert(15, {**FORGED, "recorded_at": bodies[14]["recorded_at"]})
    s.rewrite(bodies)


def middle_forge_rechained_later_checkpoints_deleted(s: Scene) -> None:
    middle_forge_rechained(s)
    s.delete_checkpoints("entry_count >= 16")


def tail_truncated(s: Scene) -> None:
    db = s.raw()
    db.execute("DELETE FROM entries WHERE seq > 25")
    db.close()


def tail_truncated_with_its_checkpoints(s: Scene) -> None:
    tail_truncated(s)
    s.delete_checkpoints("entry_count > 25")


def forged_tail_after_last_checkpoint(s: Scene) -> None:
    db = s.raw()
    previous = db.execute("SELECT entry_hash FROM entries WHERE seq = 30").fetchone()[0]
    body = {**FORGED, "seq": 31, "recorded_at": (NOW + timedelta(hours=2)).isoformat()}
    db.execute(
        "INSERT INTO entries VALUES (?, ?, ?, ?)",
        (31, canonical(body), previous, chain_hash(previous, body)),
    )
    db.close()


def rollback_to_older_copy(s: Scene) -> None:
    for leftover in s.db.parent.glob("delivery-log.sqlite-*"):
        leftover.unlink()
    shutil.copyfile(s.older_copy, s.db)


def all_checkpoints_deleted(s: Scene) -> None:
    s.delete_checkpoints("1 = 1")


def middle_checkpoints_deleted(s: Scene) -> None:
    s.delete_checkpoints("entry_count BETWEEN 10 AND 20")


def resigned_with_a_new_workspace_key(s: Scene) -> None:
    """Edit, recompute the chain, make a new workspace key, re-sign all, rewrite the witness."""
    field_edit_with_rehash(s)
    s.key.write_bytes(new_key_pem())
    key = serialization.load_pem_private_key(s.key.read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    s.resign_everything(key)


def key_replaced(s: Scene) -> None:
    s.key.write_bytes(new_key_pem())


def key_deleted(s: Scene) -> None:
    s.key.unlink()


def log_deleted(s: Scene) -> None:
    s.db.unlink()
    for leftover in s.db.parent.glob("delivery-log.sqlite-*"):
        leftover.unlink()


def log_zero_length(s: Scene) -> None:
    for leftover in s.db.parent.glob("delivery-log.sqlite-*"):
        leftover.unlink()
    s.db.write_bytes(b"")


@dataclass(frozen=True)
class Case:
    attack: Callable[[Scene], None]
    problem: str | tuple[str, ...]  # what `edi log verify` must name (the first problem first)
    append_refused: bool  # the next append refuses to sign over it
    pinned: bool = False  # verified with the auditor's key (--public-key)


CASES = {
    "01-field-edit-without-rehash": Case(
        field_edit_without_rehash, "first bad entry 12: entry 12 was altered", False
    ),
    "02-field-edit-with-rehash": Case(
        field_edit_with_rehash, "first bad entry 12: entry 12 differs from its signed", True
    ),
    "03-middle-delete": Case(middle_delete, "first bad entry 15: entry 15 is missing", False),
    "04-middle-delete-recomputed-chain": Case(
        middle_delete_rechained, "first bad entry 15: entry 15 differs from its signed", True
    ),
    "05-middle-delete-recomputed-chain-later-checkpoints-deleted": Case(
        middle_delete_rechained_later_checkpoints_deleted,
        (
            "first bad entry 15: entries 15-29 are not covered by a signed checkpoint",
            "entry 15 differs from the witnessed head",
            "the log ends at entry 29 but its witness records 30",
        ),
        True,
    ),
    "06-middle-reorder": Case(
        middle_reorder, "first bad entry 15: entry 15 carries another sequence number", False
    ),
    "07-middle-reorder-recomputed-chain": Case(
        middle_reorder_rechained, "first bad entry 15: entry 15 differs from its signed", True
    ),
    "08-middle-reorder-recomputed-chain-later-checkpoints-deleted": Case(
        middle_reorder_rechained_later_checkpoints_deleted,
        (
            "first bad entry 15: entries 15-30 are not covered by a signed checkpoint",
            "entry 15 differs from the witnessed head",
        ),
        True,
    ),
    "09-middle-forge": Case(
        middle_forge, "first bad entry 17: entry 17 carries another sequence number", True
    ),
    "10-middle-forge-recomputed-chain": Case(
        middle_forge_rechained, "first bad entry 16: entry 16 differs from its signed", True
    ),
    "11-middle-forge-recomputed-chain-later-checkpoints-deleted": Case(
        middle_forge_rechained_later_checkpoints_deleted,
        (
            "first bad entry 16: entries 16-31 are not covered by a signed checkpoint",
            "entry 16 differs from the witnessed head",
        ),
        True,
    ),
    "12-tail-truncated-checkpoints-kept": Case(
        tail_truncated,
        "first bad entry 26: checkpoint at entry 26 but the log ends at entry 25",
        True,
    ),
    "13-tail-truncated-with-its-checkpoints": Case(
        tail_truncated_with_its_checkpoints,
        "the log ends at entry 25 but its witness records 30 entries",
        True,
    ),
    "14-forged-tail-after-last-checkpoint": Case(
        forged_tail_after_last_checkpoint,
        "entries 31-31 are not covered by a signed checkpoint",
        True,
    ),
    "15-rollback-to-older-copy": Case(
        rollback_to_older_copy,
        "the log ends at entry 20 but its witness records 30 entries",
        True,
    ),
    "16-all-checkpoints-deleted": Case(
        all_checkpoints_deleted, "no signed checkpoint covers the log's 30 entries", True
    ),
    "17-middle-checkpoints-deleted": Case(
        middle_checkpoints_deleted,
        "checkpoint at entry 21 does not follow the checkpoint before it",
        False,
    ),
    "18-resigned-with-the-workspace-key-auditor-key-pinned": Case(
        resigned_with_a_new_workspace_key,
        "the workspace signing key is not the auditor's pinned key",
        False,
        pinned=True,
    ),
    "19-key-replaced": Case(key_replaced, "has a bad signature (not signed by the workspace", True),
    "20-key-deleted": Case(key_deleted, "log-ed25519.pem is missing", True),
    "21-log-deleted": Case(log_deleted, "delivery-log.sqlite is missing while its witness", True),
    "22-log-zero-length": Case(log_zero_length, "delivery-log.sqlite is zero-length", True),
}
assert len(CASES) == 22


def verify(capsys: pytest.CaptureFixture[str], scene: Scene, *extra: str) -> tuple[int, str, str]:
    return edi(capsys, "log", "verify", "--home", str(scene.home), *extra)


def test_the_untampered_log_verifies(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = verify(
        capsys, scene, "--public-key", str(scene.auditor_key), "--head", scene.auditor_head
    )
    assert code == 0, out + err
    assert "intact: 30 entries, 30 signed checkpoints verified with the auditor's key" in out
    assert "witnessed to entry 30" in out
    assert scene.auditor_head.startswith("30:")


@pytest.mark.parametrize("name", list(CASES))
def test_tampering_is_detected(scene: Scene, capsys: pytest.CaptureFixture[str], name: str) -> None:
    case = CASES[name]
    case.attack(scene)
    before = {p: p.read_bytes() for p in (scene.db, scene.key, scene.witness) if p.exists()}
    extra = ("--public-key", str(scene.auditor_key)) if case.pinned else ()
    code, out, err = verify(capsys, scene, *extra)
    assert code == 1, out + err
    problems = (case.problem,) if isinstance(case.problem, str) else case.problem
    first_line = out.splitlines()[0]
    assert first_line.startswith("TAMPERED") and problems[0] in first_line, out
    assert all(problem in out for problem in problems), out
    assert "Traceback" not in out + err
    # verify repaired nothing: no fresh log, no fresh key, witness untouched
    after = {p: p.read_bytes() for p in (scene.db, scene.key, scene.witness) if p.exists()}
    assert after == before
    # the auditor's recorded head catches it too (except what leaves entries 1-30 as they were)
    code, out, _ = verify(capsys, scene, "--head", scene.auditor_head)
    assert code == 1
    if case.append_refused:
        contents = scene.contents()
        with pytest.raises(transmit.LogError):
            scene.log().append("attempt", carrier="colonial", attempt=1)
        assert scene.contents() == contents


def test_resigning_with_the_same_key_is_caught_by_the_auditors_head(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    """Beyond the 22: the attacker re-signs with the workspace's own key and rewrites the
    witness too; only a head the auditor keeps elsewhere can tell, and it does."""
    field_edit_with_rehash(scene)
    key = serialization.load_pem_private_key(scene.key.read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    scene.resign_everything(key)
    assert verify(capsys, scene, "--public-key", str(scene.auditor_key))[0] == 0
    code, out, _ = verify(capsys, scene, "--head", scene.auditor_head)
    assert code == 1 and "entry 30 differs from the auditor's head" in out


def test_a_corrupt_log_is_one_line_and_exit_1(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    for leftover in scene.db.parent.glob("delivery-log.sqlite-*"):
        leftover.unlink()
    scene.db.write_bytes(b"this is not a database " * 100)
    code, out, err = verify(capsys, scene)
    assert code == 1 and "cannot be read" in out and "Traceback" not in out + err
    code, out, err = edi(capsys, "log", "list", "--home", str(scene.home))
    assert code == 1 and "log-unreadable" in err and "Traceback" not in out + err
    assert len(err.strip().splitlines()) <= 2  # the error and its hint


# The commands an auditor uses --------------------------------------------------------------------


def test_log_head_prints_the_signed_head(scene: Scene, capsys: pytest.CaptureFixture[str]) -> None:
    head = scene.log().head()
    assert head is not None
    code, out, err = edi(capsys, "log", "head", "--home", str(scene.home))
    assert code == 0 and out.strip() == f"30:{head.head}" == scene.auditor_head
    assert head.head == scene.log().entries()[-1].entry_hash
    assert f"signature {head.signature}" in err and head.key in err
    code, out, _ = edi(capsys, "log", "head", "--json", "--home", str(scene.home))
    data = json.loads(out)
    assert code == 0 and data == head.as_json() and data["count"] == 30
    public = transmit.load_public_key(scene.auditor_key)
    assert transmit.Checkpoint(**{k: data[k] for k in CHECKPOINT_FIELDS}).signed_by(public)


CHECKPOINT_FIELDS = ("count", "head", "prev", "signed_at", "signature", "key")


def test_verify_holds_the_log_to_the_auditors_head(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    count, head = transmit.parse_head(scene.auditor_head)
    older = scene.log().entries()[9]
    assert verify(capsys, scene, "--head", f"10:{older.entry_hash}")[0] == 0
    code, out, _ = verify(capsys, scene, "--head", f"10:{head}")
    assert code == 1 and "entry 10 differs from the auditor's head" in out
    code, out, _ = verify(capsys, scene, "--head", f"31:{head}")
    assert code == 1 and "the log ends at entry 30, before the auditor's head 31" in out
    code, _, err = verify(capsys, scene, "--head", "thirty")
    assert code == 2 and "bad-head" in err
    code, _, err = verify(capsys, scene, "--public-key", str(scene.home / "absent.pem"))
    assert code == 2 and "log-public-key-unreadable" in err
    code, out, _ = verify(capsys, scene, "--json", "--head", scene.auditor_head)
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["witnessed"] == 30
    assert report["head"] == scene.auditor_head == f"{count}:{head}"


def test_verify_with_another_pinned_key_fails(
    scene: Scene, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(new_key_pem())
    code, out, _ = verify(capsys, scene, "--public-key", str(other))
    assert code == 1 and "not the auditor's pinned key" in out
    assert "not signed by the auditor's pinned key" in out


def test_read_only_commands_create_no_log_key_or_witness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "fresh"
    home.mkdir()
    (home / "edi.toml").write_text("")
    assert edi(capsys, "log", "list", "--json", "--home", str(home))[:2] == (0, "[]\n")
    code, out, _ = edi(capsys, "log", "verify", "--home", str(home))
    assert code == 0 and "intact: 0 entries" in out
    code, _, err = edi(capsys, "log", "head", "--home", str(home))
    assert code == 1 and "log-no-head" in err
    code, _, err = edi(capsys, "log", "public-key", "--home", str(home))
    assert code == 1 and "log-key-missing" in err and "Traceback" not in err
    assert edi(capsys, "log", "export", "--home", str(home))[0] == 0
    assert [path.name for path in home.iterdir()] == ["edi.toml"]


def test_witness_dir_and_announced_heads_come_from_edi_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], webhook_server: WebhookServer
) -> None:
    home, witness = tmp_path / "ws", tmp_path / "worm-mount" / "edi"
    home.mkdir()
    (home / "edi.toml").write_text(
        f'[log]\nwitness_dir = "{witness}"\nannounce_heads = true\n'
        f'[alerts]\nwebhook_url = "{webhook_server.url}"\n'
    )
    log = delivery_log(Workspace.open(home))
    log.append("delivery", now=NOW, carrier="colonial", outcome="delivered", member_count=3)
    log.append("delivery", now=NOW, carrier="unum", outcome="delivered", member_count=4)
    assert webhook_server.payloads == []
    log.checkpoint(now=NOW)
    (payload,) = webhook_server.payloads
    head = log.head()
    assert head is not None
    assert payload["kind"] == "log-head" and payload["extra"]["head"] == head.text
    assert payload["extra"]["signature"] == head.signature and head.text in payload["text"]
    lines = (witness / "delivery-log.witness.jsonl").read_text().splitlines()
    assert [json.loads(line)["count"] for line in lines] == [1, 2]
    assert not (home / "state" / "witness").exists()
    code, out, _ = edi(capsys, "log", "verify", "--home", str(home))
    assert code == 0 and "witnessed to entry 2" in out


def test_a_truncated_witness_with_a_rolled_back_log_is_caught(
    scene: Scene, capsys: pytest.CaptureFixture[str]
) -> None:
    """Beyond the 22: the attacker who can write the witness truncates it to match a rollback
    (what a WORM mount prevents); the lines it lacks are more than a killed run can leave."""
    rollback_to_older_copy(scene)
    lines = scene.witness.read_text().splitlines()
    scene.witness.write_text("\n".join(lines[:10]) + "\n")
    code, out, _ = verify(capsys, scene)
    assert code == 1 and "lacks 10 of the log's checkpoints" in out
    with pytest.raises(transmit.LogError, match="lacks 10"):
        scene.log().append("attempt", carrier="colonial", attempt=1)
    scene.witness.write_text("")
    code, out, _ = verify(capsys, scene)
    assert code == 1 and "lacks 20 of the log's checkpoints" in out
