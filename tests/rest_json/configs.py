"""Endpoint configs of the one-stop-shop system and the national portal, as a user writes them.

The tests connect both sandboxes with these dicts and the shipped mappings
alone; docs/rest.md shows the same settings in YAML.
"""

from __future__ import annotations

from typing import Any

from lienthong.plugins.rest_json.onestop_sandbox import OneStopSandbox
from lienthong.plugins.rest_json.portal_sandbox import PortalSandbox

ONESTOP_SECRET_ENV = "LT_TEST_ONESTOP_SECRET"
PORTAL_PASSWORD_ENV = "LT_TEST_PORTAL_PASSWORD"
MADONVI = "000.00.00.H41"


def onestop_auth(onestop: OneStopSandbox) -> dict[str, Any]:
    """OAuth2 client credentials at the platform's token URL (a full URL: not under /api/v1)."""
    return {
        "auth": "oauth2",
        "login_path": f"{onestop.url}/oauth2/token",
        "client_id": onestop.client_id,
        "client_secret": {"env": ONESTOP_SECRET_ENV},
        "error_path": "code",
        "error_ok": "200",
    }


def onestop_dossiers(onestop: OneStopSandbox, **more: Any) -> dict[str, Any]:
    """Dossiers changed since a time: cursor = greatest updatedAt, pages by number."""
    return {
        "adapter": "rest_json",
        "base_url": f"{onestop.url}/api/v1",
        **onestop_auth(onestop),
        "operations": {"dossiers": {"method": "GET", "path": "/dossiers"}},
        "receive_operation": "dossiers",
        "items_path": "response.items",
        "item_key": "dossierNo,version",
        "message_kind": "onestop.dossier",
        "cursor_param": "updated_since",
        "cursor_field": "updatedAt",
        "pagination": "page",
        "page_param": "page",
        "page_size_param": "per_page",
        "page_size": 100,
        **more,
    }


def onestop_steps(onestop: OneStopSandbox, **more: Any) -> dict[str, Any]:
    """Processing steps in recorded order: an opaque cursor, from page to page and poll to poll."""
    return {
        "adapter": "rest_json",
        "base_url": f"{onestop.url}/api/v1",
        **onestop_auth(onestop),
        "operations": {"steps": {"method": "GET", "path": "/steps"}},
        "receive_operation": "steps",
        "items_path": "response.items",
        "item_key": "id",
        "message_kind": "onestop.step",
        "cursor_param": "cursor",
        "cursor_path": "response.next_cursor",
        "pagination": "cursor",
        "next_path": "response.next_cursor",
        "more_path": "response.has_more",
        "page_size_param": "limit",
        "page_size": 100,
        **more,
    }


def onestop_opinions(onestop: OneStopSandbox, **more: Any) -> dict[str, Any]:
    """Posting steps into the one-stop system, once per delivery key (Idempotency-Key)."""
    return {
        "adapter": "rest_json",
        "base_url": f"{onestop.url}/api/v1",
        **onestop_auth(onestop),
        "operations": {
            "add-step": {
                "method": "POST",
                "path": "/dossiers/{body.dossierNo}/steps",
                "idempotency_header": "Idempotency-Key",
                "kind": "onestop.opinion",
            }
        },
        **more,
    }


def portal(portal: PortalSandbox, **more: Any) -> dict[str, Any]:
    """The national portal: a login session in the body, one URL, its error_code table."""
    return {
        "adapter": "rest_json",
        "base_url": f"{portal.url}/api",
        "auth": "login",
        "login_path": "/auth",
        "username": portal.username,
        "password": {"env": PORTAL_PASSWORD_ENV},
        "token_path": "session",
        "expires_path": "",
        "token_ttl": 1800,
        "token_field": "session",
        "operations": {
            # One URL, two services: the route's target kind picks the operation.
            "dong-bo-ho-so": {
                "method": "POST",
                "path": "/integration",
                "kind": "portal.dossier",
                # Already there: update it; not there yet: add it (as the public clients do).
                "resend_with": {"-3": {"isUpdating": "True"}, "-4": {"isUpdating": "False"}},
            },
            "cap-nhat-tien-do": {
                "method": "POST",
                "path": "/integration",
                "kind": "portal.progress",
            },
        },
        "body_fields": {"madonvi": MADONVI},
        "error_path": "error_code",
        "error_ok": "0,00",
        "error_transient": "-4",
        "error_auth": "-1",
        **more,
    }


ROUTES = [
    {
        "name": "dossiers-to-portal",
        "from": "onestop-dossiers",
        "to": [
            {
                "endpoint": "portal",
                "mapping": "onestop/dossier-to-portal.xsl",
                "kind": "portal.dossier",
            }
        ],
    },
    {
        "name": "steps-to-portal",
        "from": "onestop-steps",
        "to": [
            {
                "endpoint": "portal",
                "mapping": "onestop/step-to-portal-progress.xsl",
                "kind": "portal.progress",
                # A dossier's steps reach the portal in the order they happened, also
                # when the first waits for its dossier to be there ("-4", retried).
                "order_by": {"group": "string(//*[@key='dossierNo'])"},
            }
        ],
    },
]
