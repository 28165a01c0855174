"""OAuth2 client credentials against the sandbox's token endpoint: secret and JWT assertion,
renewal before expiry, one refresh on a 401, and clear failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edi.errors import ConfigError, PlanSourceApiError
from edi.plansource.client import ClientSecret, JwtAssertion, credentials_from_settings
from edi.plansource.sandbox import Faults
from edi.workspace import PlanSourceSettings
from tests.support.plansource_server import SAMPLE_EXPORT, RunningSandbox

Sandbox = Callable[..., RunningSandbox]
Export = Callable[..., Path]


def rsa_key_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_token_expiry_mid_pull_renews_the_token(
    plansource_sandbox: Sandbox, plansource_export: Export, tmp_path: Path
) -> None:
    export = plansource_export(subscribers=24, dependents_per=0, coverages_per=0)
    api = plansource_sandbox(export, Faults(latency_ms=100, token_expires_s=1))

    manifest = api.pull(tmp_path / "snap", per_page=1, concurrency=2)  # ~1.3 s of requests

    assert manifest.counts["subscribers"] == 24
    assert api.stats.tokens_issued >= 2


def test_a_revoked_token_is_refreshed_once_on_401(
    plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(token_max_uses=5))
    api.pull(tmp_path / "snap", per_page=20, concurrency=1)
    assert api.stats.statuses[401] >= 1
    assert api.stats.tokens_issued == api.stats.statuses[401] + 1


def test_401_after_a_fresh_token_fails_clearly(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(reject_tokens=True))
    with pytest.raises(PlanSourceApiError) as caught:
        api.pull(tmp_path / "snap")
    assert caught.value.code == "plansource-unauthorized"
    assert caught.value.message == "GET /subscribers page 1: HTTP 401 even with a fresh token"
    assert (api.stats.tokens_issued, api.stats.api_requests) == (2, 2)  # refreshed once, no loop
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "credentials",
    [ClientSecret("sandbox", "wrong"), ClientSecret("someone-else", "sandbox-secret")],
)
def test_wrong_credentials_fail_at_once(
    credentials: ClientSecret, plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT)
    with pytest.raises(PlanSourceApiError) as caught:
        api.pull(tmp_path / "snap", credentials=credentials)
    assert caught.value.code == "plansource-auth-failed"
    assert caught.value.message.startswith("POST /oauth/v2/token: HTTP 401 (invalid_client)")
    assert "wrong" not in str(caught.value) and "sandbox-secret" not in str(caught.value)
    assert api.stats.token_requests == 1  # a refusal is not retried
    assert api.stats.api_requests == 0


def test_jwt_client_assertion(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    private, public = rsa_key_pair()
    key_file = tmp_path / "plansource-key.pem"
    key_file.write_bytes(private)
    api = plansource_sandbox(SAMPLE_EXPORT, client_public_key=public)
    settings = api.settings(private_key_file=str(key_file))

    credentials = credentials_from_settings(settings, environ={})
    assert isinstance(credentials, JwtAssertion)
    manifest = api.pull(tmp_path / "snap", credentials=credentials)
    assert manifest.counts["subscribers"] > 0

    other_private, _ = rsa_key_pair()
    with pytest.raises(PlanSourceApiError) as caught:
        api.pull(tmp_path / "again", credentials=JwtAssertion("sandbox", other_private))
    assert caught.value.code == "plansource-auth-failed"


def test_credentials_come_from_the_named_environment_variable(tmp_path: Path) -> None:
    settings = PlanSourceSettings(client_id="acme", client_secret_env="ACME_PS_SECRET")
    credentials = credentials_from_settings(settings, environ={"ACME_PS_SECRET": "s3cret"})
    assert credentials == ClientSecret("acme", "s3cret")
    assert "s3cret" not in repr(credentials)

    with pytest.raises(ConfigError) as missing:
        credentials_from_settings(settings, environ={})
    assert missing.value.code == "plansource-secret-missing" and missing.value.exit_code == 2
    with pytest.raises(ConfigError) as no_id:
        credentials_from_settings(PlanSourceSettings(), environ={"PLANSOURCE_CLIENT_SECRET": "x"})
    assert no_id.value.code == "plansource-client-id-missing"
    absent_key = settings.model_copy(update={"private_key_file": str(tmp_path / "absent.pem")})
    with pytest.raises(ConfigError) as no_key:
        credentials_from_settings(absent_key, environ={})
    assert no_key.value.code == "plansource-key-unreadable"
