"""The JSON/REST adapter's options: what an endpoint's config may say, documented.

Declared here, apart from the code that reads them (``config.py``), because the
list is long: every call, poll, auth scheme, error code and limit is a setting.
``lienthong adapters --options rest_json`` and docs/options.md are made from it.
"""

from __future__ import annotations

from lienthong.adapter import Option

DEFAULT_HMAC_MESSAGE = "{method}\n{path}\n{timestamp}\n{nonce}\n{body_sha256}"

OPTIONS = (
    Option(
        "base_url",
        "the system's URL; operation paths follow it",
        example="https://motcua.example.gov.vn/api",
    ),
    Option(
        "operations",
        "the calls: name -> {method, path, query, headers, kind, idempotency_header, "
        "idempotency_field, request_schema, response_schema, done_statuses, body}",
        type=dict,
        example={"add-step": {"method": "POST", "path": "/dossiers/{body.dossierNo}/steps"}},
    ),
    Option(
        "send_operation", "operation send() uses when none names the message's kind", default=""
    ),
    Option(
        "receive_operation",
        "operation receive() polls (empty: this endpoint only sends)",
        default="",
    ),
    Option(
        "items_path",
        "JSON path of the item list in a poll's answer (empty: the answer is the list)",
        default="",
    ),
    Option(
        "item_key",
        "comma-separated JSON paths in an item forming its source key (empty: a digest of it)",
        default="",
        example="dossierNo,updatedAt",
    ),
    Option("message_kind", "kind of the received messages", default="json"),
    Option("cursor_param", "query parameter carrying the cursor (empty: no cursor)", default=""),
    Option("cursor_path", "JSON path of the next cursor in the answer", default=""),
    Option("cursor_field", "item field whose greatest value is the next cursor", default=""),
    Option("cursor_start", "cursor of the very first poll (empty: from the beginning)", default=""),
    Option("pagination", "none, next_link, page or cursor", default="none"),
    Option(
        "next_path",
        "JSON path of the next link (next_link) or next page's cursor (cursor)",
        default="",
    ),
    Option("more_path", "JSON path of a 'more pages' flag in the answer", default=""),
    Option("page_param", "query parameter of the page number (pagination: page)", default="page"),
    Option("page_start", "number of the first page", default=1, type=int),
    Option("page_size_param", "query parameter of the page size (empty: not sent)", default=""),
    Option("page_size", "items asked per page", default=100, type=int),
    Option("max_pages", "pages read per poll at most: a bounded batch", default=10, type=int),
    Option(
        "item_schema",
        "JSON Schema file each received item must satisfy (else parked)",
        default="",
    ),
    Option("auth", "none, basic, bearer, login, oauth2, api_key or hmac", default="none"),
    Option("username", "user for basic or login", default=""),
    Option(
        "password",
        "password for basic or login",
        default=None,
        secret=True,
        example={"env": "PORTAL_PASSWORD"},
    ),
    Option("token", "the fixed token of auth: bearer", default=None, secret=True),
    Option("client_id", "OAuth2 client id (the platform's app name)", default=""),
    Option("client_secret", "OAuth2 client secret", default=None, secret=True),
    Option(
        "client_auth",
        "OAuth2: client credentials in a Basic header (basic) or the form (post)",
        default="basic",
    ),
    Option("scope", "OAuth2 scope (empty: none asked)", default=""),
    Option(
        "login_path",
        "the login or token call: a path after base_url, or a full URL",
        default="",
        example="/oauth2/token",
    ),
    Option(
        "login_body",
        "JSON body of a login call; {username} and {password} are filled in",
        default=None,
        type=dict,
        example={"username": "{username}", "password": "{password}"},
    ),
    Option("token_path", "JSON path of the token in the login answer", default="access_token"),
    Option(
        "expires_path",
        "JSON path of the token's lifetime in seconds (empty: token_ttl)",
        default="expires_in",
    ),
    Option(
        "token_ttl",
        "seconds a token lives when the login answer does not say",
        default=3600.0,
        type=float,
    ),
    Option(
        "token_field",
        "send the token in this body field (e.g. session) instead of a header",
        default="",
    ),
    Option("token_header", "header that carries the token", default="Authorization"),
    Option("token_prefix", "text before the token in its header", default="Bearer "),
    Option("api_key", "the key of auth: api_key", default=None, secret=True),
    Option("api_key_header", "header carrying the API key", default="X-API-Key"),
    Option("hmac_key_id", "key id sent with HMAC signatures", default=""),
    Option("hmac_secret", "shared secret of HMAC signatures", default=None, secret=True),
    Option("hmac_message", "template of the signed text", default=DEFAULT_HMAC_MESSAGE),
    Option(
        "hmac_headers",
        "headers carrying the signature: name -> template",
        default=None,
        type=dict,
    ),
    Option("hmac_encoding", "signature encoding: hex or base64", default="hex"),
    Option("hmac_algorithm", "sha256 or sha512", default="sha256"),
    Option(
        "body_fields",
        "fields added to every JSON body sent (e.g. madonvi)",
        default=None,
        type=dict,
    ),
    Option("error_path", "JSON path of the system's own result code (e.g. error_code)", default=""),
    Option("error_ok", "result codes meaning success", default="0,00"),
    Option("error_message_path", "JSON path of the system's error text", default="message"),
    Option(
        "error_done",
        "codes meaning 'already there' (a repeat): the delivery is done",
        default="",
    ),
    Option("error_transient", "codes worth retrying later", default=""),
    Option("error_auth", "codes meaning the session expired: log in again, retry once", default=""),
    Option(
        "duplicate_keys",
        "received JSON with a repeated key: reject, use-first or retain",
        default="reject",
    ),
    Option(
        "invalid_characters",
        "characters XML cannot hold: replace (U+FFFD), reject or escape",
        default="replace",
    ),
    Option("max_response_bytes", "largest answer read", default=10 * 1024 * 1024, type=int),
    Option("json_max_depth", "deepest nesting accepted in JSON", default=64, type=int),
    Option("json_max_number_chars", "longest number literal accepted", default=100, type=int),
    Option(
        "max_retry_after",
        "longest Retry-After honoured, in seconds",
        default=3600.0,
        type=float,
    ),
    Option("timeout", "seconds for a whole call, connecting included", default=30.0, type=float),
    Option("verify_tls", "verify the server's TLS certificate", default=True, type=bool),
    Option("ca_file", "PEM file of the CA(s) to trust instead of the system's", default=""),
    Option("client_cert", "PEM client certificate for mutual TLS", default=""),
    Option("client_key", "PEM key of client_cert, when not in the same file", default=""),
    Option("proxy", "HTTP(S) proxy URL (empty: direct)", default=""),
)
