"""Schemathesis against the served OpenAPI document: every operation, valid and invalid input,
through the real app on a real socket with the admin key. Checks: no 5xx, the status code is
one the document lists, and the body matches the documented schema."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from gateway.web.openapi import document
from tests.conftest import ADMIN_KEY, Gateway
from tests.web.test_swap import swap, wait_for
from tests.web.test_voice import post_call

# Small enough that every operation in both modes runs in well under a minute (10-25 s here);
# the long run (`-m resilience`) found the 500s fixed in gateway/web at 300.
MAX_EXAMPLES = 20
LONG_EXAMPLES = 300
SHORT_RUN_BUDGET_S = 60.0
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
REQUEST_TIMEOUT_S = 5.0  # one request; a hung handler fails the run instead of stalling it


def _run(base: str, max_examples: int) -> list[str]:
    """Every operation in both generation modes; the failures, one line (and trace) each."""
    schema = schemathesis.openapi.from_dict(document())
    session = requests.Session()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=max_examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), derandomize=True)
            def check(case: Any) -> None:
                case.call_and_validate(base_url=base, session=session, checks=CHECKS,
                                       headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                                       timeout=REQUEST_TIMEOUT_S)

            try:
                check()
            except Unsatisfiable:
                continue  # nothing to make invalid (no parameters, no body): positive covers it
            # Schemathesis raises a BaseExceptionGroup (FailureGroup): collect every operation's
            # failures, then report them all at once.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    session.close()
    return failures


async def test_every_operation_conforms_to_the_document(gateway: Gateway) -> None:
    base = str(gateway.server.make_url("")).rstrip("/")
    started = time.monotonic()
    failures = await asyncio.to_thread(_run, base, MAX_EXAMPLES)
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < SHORT_RUN_BUDGET_S


@pytest.mark.resilience
async def test_every_operation_conforms_to_the_document_long(gateway: Gateway) -> None:
    base = str(gateway.server.make_url("")).rstrip("/")
    failures = await asyncio.to_thread(_run, base, LONG_EXAMPLES)
    assert not failures, "\n\n".join(failures)


def _real(base: str, cases: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """Named requests on real data, each validated like a generated one."""
    schema = schemathesis.openapi.from_dict(document())
    failures = []
    for method, path, kwargs in cases:
        case = schema[path][method].Case(**kwargs)
        try:
            case.call_and_validate(base_url=base, checks=CHECKS, timeout=REQUEST_TIMEOUT_S,
                                   headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{method} {path} {kwargs}: {exc}")
    return failures


async def test_answers_on_real_data_match_their_schemas(gateway: Gateway, db_url: str) -> None:
    """Generated ids rarely exist, so successful answers with real content (a matched call
    with candidates, an offline call, sources with ids) are checked here by name."""
    first = await swap(gateway, url="https://acme.test/?gclid=1&utm_source=google")
    second = await swap(gateway, url="https://acme.test/?gclid=2")
    assert (await post_call(gateway, "CAreal1", first["number"]))[0] == 200
    assert (await post_call(gateway, "CAreal2", "+14155550199"))[0] == 200
    assert await wait_for(db_url, "SELECT count(*) FROM calls", 2) == 2
    site = {"key": "bravo", "name": "Bravo", "swap_targets": ["+12125550100"], "sources": [
        {"name": "Billboard", "kind": "offline", "forward_to": "+12125550100",
         "numbers": ["+16505550131"]}]}
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/healthz", {}), ("GET", "/readyz", {}), ("GET", "/v1/sites", {}),
        ("GET", "/v1/sites/{site}", {"path_parameters": {"site": "acme"}}),
        ("POST", "/v1/sites", {"body": site, "media_type": "application/json"}),
        ("PATCH", "/v1/sites/{site}", {"path_parameters": {"site": "bravo"},
                                       "body": {"name": "B"}, "media_type": "application/json"}),
        ("GET", "/v1/sources", {"query": {"site": "acme"}}),
        ("GET", "/v1/sources/{source}", {"path_parameters": {"source": "1"}}),
        ("GET", "/v1/numbers", {}),
        ("GET", "/v1/numbers/{number}", {"path_parameters": {"number": "+14155550101"}}),
        ("PATCH", "/v1/numbers/{number}", {"path_parameters": {"number": "+16505550131"},
                                           "body": {"active": False},
                                           "media_type": "application/json"}),
        ("GET", "/v1/calls", {"query": {"limit": 1}}),
        ("GET", "/v1/calls/{call}", {"path_parameters": {"call": "CAreal1"}}),
        ("GET", "/v1/calls/{call}", {"path_parameters": {"call": "CAreal2"}}),
        ("POST", "/v1/calls/{call}/match", {"path_parameters": {"call": "CAreal1"},
                                            "body": {"session": second["session"]},
                                            "media_type": "application/json"}),
        ("GET", "/v1/reports/accuracy", {"query": {"replay": "false"}}),
        ("POST", "/v1/swap", {"body": {"site": "acme", "url": "https://acme.test/?gclid=3"},
                              "media_type": "application/json"}),
    ]
    base = str(gateway.server.make_url("")).rstrip("/")
    failures = await asyncio.to_thread(_real, base, cases)
    assert not failures, "\n\n".join(failures)
