"""Compressed responses and a Content-Security-Policy that no template needs to weaken."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from greenkpi.dashboard.common.middleware import CONTENT_SECURITY_POLICY

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_no_template_has_an_inline_script_or_event_handler():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        if path.parent.name == "alerts":  # e-mails: never served as pages
            continue
        text = path.read_text()
        for match in re.finditer(r"<script\b[^>]*>", text):
            if "src=" not in match.group(0):
                offenders.append(f"{path.name}: inline {match.group(0)}")
        if re.search(r"\son[a-z]+\s*=", text) or "javascript:" in text:
            offenders.append(f"{path.name}: event handler or javascript: URL")
    assert offenders == []


def test_the_policy_allows_scripts_only_from_our_origin():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


@pytest.mark.django_db
def test_pages_carry_the_policy_and_the_api_docs_keep_their_inline_script(client, fleet, people):
    client.force_login(people["alice"])
    assert client.get("/")["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert client.get("/charts/energy-by-team.json")["Content-Security-Policy"]
    assert "Content-Security-Policy" not in client.get("/api/docs/")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["/", "/charts/energy-by-team.json", "/hosts/{host}/power.csv?range=24h"]
)
def test_html_json_and_csv_are_gzipped_for_clients_that_accept_it(client, fleet, people, url):
    # (Django leaves bodies under 200 bytes as they are: the team CSV of this fixture is one.)
    url = url.format(host=fleet.hosts["vision-1"].pk)
    client.force_login(people["alice"])
    plain = client.get(url)
    packed = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert "Content-Encoding" not in plain
    assert packed["Content-Encoding"] == "gzip"
    assert (
        gzip.decompress(packed.content) == plain.content or url == "/"
    )  # "/" carries a CSRF token
    assert "Accept-Encoding" in packed["Vary"]
