"""An address that matches no route: problem+json under /api/, the 404 page elsewhere."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path", ["/api/v1/identity-mappings/null,null/", "/api/v1/models/-1/", "/api/v2/"]
)
def test_an_unknown_api_address_is_a_problem_json_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/not-found")


def test_an_unknown_page_is_the_html_404_page_with_its_navigation(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Page not found" in response.content
