"""Fixture modules are plugins so each area keeps its own servers and data."""

pytest_plugins = [
    "tests.support.workspace",
    "tests.support.servers",
    "tests.support.plansource_server",
    "tests.support.postgres",
]
