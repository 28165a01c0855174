"""The PlanSource sandbox as a pytest fixture: a real HTTP server (starlette + uvicorn) on a free
127.0.0.1 port per test, with the fault switches of `edi.plansource.sandbox.Faults`.

    def test_x(plansource_sandbox, plansource_export):
        api = plansource_sandbox(plansource_export(subscribers=12), Faults(latency_ms=20))
        manifest = api.pull(tmp_path / "snap", per_page=5)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edi.plansource.client import ClientSecret, Credentials, RetryPolicy
from edi.plansource.pull import PullManifest, pull
from edi.plansource.sandbox import (
    API_PREFIX,
    DEFAULT_CLIENT_SECRET,
    Faults,
    PlanSourceSandbox,
    SandboxStats,
    running_sandbox,
)
from edi.workspace import PlanSourceSettings

REPO = Path(__file__).resolve().parents[2]
SAMPLE_EXPORT = REPO / "samples" / "plansource"
# Tiny waits: a retried request costs milliseconds, and Retry-After is capped at 2 s.
FAST_RETRY = RetryPolicy(
    attempts=4, backoff_initial_s=0.01, backoff_max_s=0.05, retry_after_max_s=2
)


@dataclass
class RunningSandbox:
    sandbox: PlanSourceSandbox
    base_url: str
    data_dir: Path

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix(API_PREFIX)

    @property
    def stats(self) -> SandboxStats:
        return self.sandbox.stats

    @property
    def faults(self) -> Faults:
        return self.sandbox.faults

    @property
    def credentials(self) -> ClientSecret:
        return ClientSecret(self.sandbox.client_id, DEFAULT_CLIENT_SECRET)

    def settings(self, **overrides: Any) -> PlanSourceSettings:
        values: dict[str, Any] = {"per_page": 500, "concurrency": 4, "timeout_s": 5}
        values.update(overrides)
        return self.sandbox.settings_for(self.base_url, **values)

    def pull(
        self,
        out_dir: Path,
        *,
        credentials: Credentials | None = None,
        retry: RetryPolicy = FAST_RETRY,
        pull_options: dict[str, Any] | None = None,
        **settings: Any,
    ) -> PullManifest:
        return pull(
            self.settings(**settings),
            out_dir,
            credentials=credentials or self.credentials,
            retry=retry,
            **(pull_options or {}),
        )


def write_export(
    folder: Path,
    subscribers: int,
    dependents_per: int = 1,
    coverages_per: int = 2,
    **subscriber_fields: Any,
) -> Path:
    """A small, valid PlanSource export (plain arrays) with predictable ids."""
    folder.mkdir(parents=True, exist_ok=True)
    subs, deps, covs = [], [], []
    for n in range(1, subscribers + 1):
        sid = 1000 + n
        subs.append(
            {
                "id": sid,
                "subscriber_code": f"E{sid}",
                "ssn": f"9{sid:08d}",
                "first_name": "Test",
                "last_name": f"Member{sid}",
                "gender": "F",
                "birthdate": "1980/01/15",
                "hire_date": "2015-03-01",
                "employment_level": "F",
                "employment_status": "Active",
                **subscriber_fields,
            }
        )
        dependent_ids = []
        for d in range(dependents_per):
            did = sid * 10 + d
            dependent_ids.append(did)
            deps.append(
                {
                    "id": did,
                    "subscriber_id": sid,
                    "ssn": "XXX-XX-1234",
                    "first_name": "Kid",
                    "last_name": f"Member{sid}",
                    "birthdate": "2012/05/05",
                    "gender": "M",
                    "relationship_code": "child",
                }
            )
        for c in range(coverages_per):
            covs.append(
                {
                    "id": sid * 100 + c,
                    "subscriber_id": sid,
                    "benefit_lookup_code": "colonial_accident_1",
                    "plan_name": "Accident",
                    "coverage_level": "Employee + Child" if dependent_ids else "Employee Only",
                    "original_effective_date": "2026/01/01",
                    "dependent_ids": dependent_ids,
                }
            )
    for name, records in (("subscribers", subs), ("dependents", deps), ("coverages", covs)):
        (folder / f"{name}.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


@pytest.fixture
def plansource_sandbox() -> Iterator[Callable[..., RunningSandbox]]:
    """Factory: `plansource_sandbox(data_dir=SAMPLE_EXPORT, faults=None, **sandbox_kwargs)`."""
    with ExitStack() as stack:

        def start(
            data_dir: Path = SAMPLE_EXPORT, faults: Faults | None = None, **kwargs: Any
        ) -> RunningSandbox:
            sandbox = PlanSourceSandbox(data_dir, faults, **kwargs)
            base_url = stack.enter_context(running_sandbox(sandbox))
            return RunningSandbox(sandbox, base_url, data_dir)

        yield start


@pytest.fixture
def plansource_export(tmp_path: Path) -> Callable[..., Path]:
    """Factory: `plansource_export(subscribers=N, dependents_per=1, coverages_per=2)`."""
    made = iter(range(1_000_000))

    def make(subscribers: int, **kwargs: Any) -> Path:
        return write_export(tmp_path / f"export-{next(made)}", subscribers, **kwargs)

    return make
