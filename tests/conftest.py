"""Shared pytest options: the slow tier runs only with --run-slow (tools/test.sh --slow)."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run the slow tier too")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slow tier (paper sweep); runs with --run-slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow tier: run tools/test.sh --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
