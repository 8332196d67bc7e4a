"""The console's pages and actions through Flask's test client, over a real bus and store."""

from __future__ import annotations

import html
import json
import re
import threading
from datetime import UTC, datetime

import pytest

from lienthong import audit
from lienthong.console.i18n import TIMEZONE, when
from lienthong.store import audit as audit_table
from lienthong.store import messages
from tests.busproject import REPO
from tests.console.console_fixtures import (
    APPLICATION,
    LOCAL,
    ConsoleProject,
    csrf,
    log_in,
    post,
    text,
)

REFERENCE = REPO.parent / "shared" / "reference"

# --- logging in, sessions, roles ------------------------------------------------------


def test_pages_need_a_login_and_a_login_starts_a_fresh_session(console_project):
    client = console_project.client()
    first = client.get("/dead-letters?stage=deliver")
    assert first.status_code == 302
    assert first.headers["Location"] == "/login?next=/dead-letters?stage%3Ddeliver"
    token = csrf(client.get("/login"))
    before = client.get_cookie("lienthong_console").value

    done = log_in(client, "vanhanh")
    assert done.status_code == 302 and done.headers["Location"] == "/"
    cookie = client.get_cookie("lienthong_console")
    assert cookie.value != before, "a login must not keep the session it started in"
    assert csrf(client.get("/")) != token, "nor its CSRF token"
    assert cookie.http_only and cookie.same_site == "Lax" and not cookie.secure
    assert "vanhanh · người vận hành" in text(client.get("/"))

    post(client, "/logout", {})
    assert client.get("/").status_code == 302


def test_a_login_never_redirects_to_another_site(console_project):
    client = console_project.client()
    token = csrf(client.get("/login"))
    done = client.post("/login", data={"username": "xem", "password": LOCAL["xem"][1],
                                       "csrf": token, "next": "https://evil.example/"})
    assert done.headers["Location"] == "/"


def test_behind_a_tls_proxy_the_cookie_is_secure(tmp_path, users_file):
    project = ConsoleProject(tmp_path, users_file, console={"behind_proxy": True})
    try:
        client = project.client()
        log_in(client, "xem")
        assert client.get_cookie("lienthong_console").secure
    finally:
        project.close()


def test_wrong_passwords_are_refused_and_the_fifth_slows_the_account_down(console_project):
    client = console_project.client()
    for _ in range(5):
        refused = log_in(client, "vanhanh", "wrong password")
        assert refused.status_code == 401
        assert "Sai tên đăng nhập hoặc mật khẩu." in text(refused)
    slowed = log_in(client, "vanhanh")  # even the right password waits now
    assert slowed.status_code == 429
    assert slowed.headers["Retry-After"] == "30"
    assert "Hãy thử lại sau 30 giây" in text(slowed)
    # Another account is not held up by this one.
    other = console_project.client()
    assert log_in(other, "xem").status_code == 302


def test_every_page_answers_a_viewer_in_vietnamese_and_english_on_request(console_project):
    console_project.park()
    client = console_project.client()
    log_in(client, "xem")
    pages = ["/", "/dead-letters", "/dead-letters/1", "/trace", "/documents", "/syncs",
             "/mappings", "/mappings?test=*", "/mappings/try"]
    for page in pages:
        answer = client.get(page)
        assert answer.status_code == 200, page
        assert '<html lang="vi">' in text(answer)
    assert "Tổng quan" in text(client.get("/"))
    assert client.get("/config").status_code == 403

    post(client, "/language", {"lang": "en", "next": "/dead-letters"})
    page = text(client.get("/dead-letters"))
    assert '<html lang="en">' in page and "1 dead letter waiting matches." in page
    post(client, "/language", {"lang": "vi", "next": "/"})
    assert "Có 1 thông điệp lỗi đang chờ khớp bộ lọc." in text(client.get("/dead-letters"))


def test_responses_forbid_scripts_framing_and_caching(console_project):
    client = console_project.client()
    answer = client.get("/login")
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"
    assert "<script" not in text(answer)
    css = client.get("/static/console.css")
    assert css.status_code == 200 and "no-store" not in css.headers.get("Cache-Control", "")


# --- CSRF --------------------------------------------------------------------------------


def test_a_state_changing_request_without_the_token_is_refused(console_project):
    dead = console_project.park()
    console_project.fix_cause()
    client = console_project.client()
    log_in(client, "vanhanh")
    form = {"action": "replay", "scope": "selected", "ids": str(dead), "confirmed": "yes"}
    missing = client.post("/dead-letters/act", data=form)
    assert missing.status_code == 403
    assert "did not come from the console" in html.unescape(text(missing)) or \
        "không phải từ bảng điều khiển" in text(missing)
    wrong = client.post("/dead-letters/act", data={**form, "csrf": "guessed"})
    assert wrong.status_code == 403
    token = csrf(client.get("/"))
    foreign = client.post("/dead-letters/act", data={**form, "csrf": token},
                          headers={"Origin": "http://127.0.0.1:9"})
    assert foreign.status_code == 403 and "trang khác" in text(foreign)
    assert console_project.bus().store.dead_letter(dead)["replayed_at"] is None


def test_a_viewer_may_not_replay_purge_or_run_syncs(console_project):
    dead = console_project.park()
    client = console_project.client()
    log_in(client, "xem")
    assert "replay-selected" not in text(client.get("/dead-letters"))
    for path, form in [
        ("/dead-letters/confirm", {"choice": "replay:selected", "ids": str(dead)}),
        ("/dead-letters/act", {"action": "purge", "scope": "selected", "ids": str(dead),
                               "confirmed": "yes"}),
        ("/syncs/anything/run", {"mode": "dry"}),
        ("/syncs/runs/1/approve", {}),
    ]:
        refused = post(client, path, form)
        assert refused.status_code == 403, path
        assert "Vai trò của bạn (người xem) không được" in text(refused)
    assert console_project.bus().store.dead_letter(dead) is not None


# --- dead letters ------------------------------------------------------------------------


def test_a_dead_letter_shows_its_reason_attempts_and_pretty_body(console_project):
    dead = console_project.park()
    client = console_project.client()
    log_in(client, "xem")
    page = text(client.get(f"/dead-letters/{dead}"))
    assert "already exists with other content" in html.unescape(page)
    assert re.search(r'<table id="attempts">.*?<td>1</td>.*?test-bus.*?bị từ chối', page, re.S)
    body = re.search(r'<pre class="body" id="body-message">(.*?)</pre>', page, re.S).group(1)
    assert html.unescape(body).startswith("<?xml version='1.0' encoding='UTF-8'?>\n<application")
    assert "\n  <" in html.unescape(body), "the XML is indented"
    assert 'id="body-sent"' in page  # what the mapping made of it, too
    raw = client.get(f"/dead-letters/{dead}/body")
    assert raw.data == APPLICATION
    assert raw.headers["Content-Disposition"] == f"attachment; filename=dead-letter-{dead}.bin"


def test_a_hostile_body_is_shown_as_text_never_as_markup(console_project):
    hostile = b"<application><applicant><name>&lt;script&gt;alert(1)&lt;/script&gt;" \
              b"<img src=x onerror=alert(2)></name></applicant></application>"  # malformed
    dead = console_project.park(hostile)
    client = console_project.client()
    log_in(client, "xem")
    page = text(client.get(f"/dead-letters/{dead}"))
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<script>" not in page


def test_dates_are_shown_dd_mm_yyyy_in_hanoi_time(console_project):
    dead = console_project.park()
    client = console_project.client()
    log_in(client, "xem")
    stored = console_project.bus().store.dead_letter(dead)["created_at"]
    assert when(stored) in text(client.get("/dead-letters"))
    assert when(datetime(2026, 12, 1, 20, 30, 5)) == "02/12/2026 03:30:05"  # naive = UTC
    assert when(datetime(2026, 12, 1, 20, 30, 5, tzinfo=UTC), seconds=False) == "02/12/2026 03:30"


def test_the_list_filters_by_endpoint_stage_reason_and_date(console_project):
    first = console_project.park()
    (console_project.root / "in" / "bad.xml").write_bytes(b"<not-closed>")
    console_project.run_until(lambda: len(console_project.bus().store.dead_letters()) == 2)
    client = console_project.client()
    log_in(client, "xem")

    def ids(query: str) -> list[int]:
        page = text(client.get("/dead-letters" + query))
        return [int(i) for i in re.findall(r'name="ids" value="(\d+)"', page)]

    assert len(ids("")) == 2
    assert ids("?endpoint=outbox") == [first]
    assert ids("?stage=deliver") == [first]
    assert len(ids("?stage=accept")) == 1 and ids("?stage=accept") != [first]
    assert ids("?reason=already+exists") == [first]
    assert ids("?reason=%25") == []  # a LIKE wildcard is only a character here
    today = datetime.now(TIMEZONE).date().isoformat()  # the filter's days are Hanoi's
    assert len(ids(f"?since={today}&until={today}")) in (1, 2)  # near midnight Hanoi
    assert ids("?until=2000-01-01") == []
    assert len(ids("?since=not-a-date")) == 2


def test_an_operator_replays_a_dead_letter_after_confirming_and_is_audited(console_project):
    dead = console_project.park()
    message = console_project.bus().store.dead_letter(dead)["message_id"]
    console_project.fix_cause()
    client = console_project.client()
    log_in(client, "vanhanh")

    confirm = post(client, "/dead-letters/confirm", {"choice": "replay:selected", "ids": str(dead)})
    assert confirm.status_code == 200
    assert "Gửi lại 1 thông điệp lỗi?" in text(confirm)
    done = post(client, "/dead-letters/act", {"action": "replay", "scope": "selected",
                                              "ids": str(dead), "confirmed": "yes"})
    assert "Đã gửi lại 1, thất bại 0" in text(done)
    assert "delivery to &#39;outbox&#39; queued again" in text(done)

    store = console_project.bus().store
    console_project.run_until(console_project.delivered)
    trace = text(client.get(f"/trace/{message}"))
    assert 'data-state="delivered"' in trace
    assert "vanhanh (operator, local) replayed dead letter" in html.unescape(trace)
    records = [h for h in store.trace(message)["hops"] if h["event"] == "operator"]
    assert len(records) == 1 and f"#{dead}" in records[0]["detail"]
    assert audit.verify(store.engine, audit_table, [store.audit_key]).ok

    again = post(client, "/dead-letters/act", {"action": "replay", "scope": "selected",
                                               "ids": str(dead), "confirmed": "yes"})
    assert again.status_code == 400  # no longer waiting: nothing chosen


def test_replay_by_filter_counts_first_and_leaves_newer_dead_letters_alone(console_project):
    chosen = [console_project.park() for _ in range(3)]
    client = console_project.client()
    log_in(client, "vanhanh")
    confirm = post(client, "/dead-letters/confirm",
                   {"choice": "replay:filter", "endpoint": "outbox", "stage": "deliver"})
    assert "Gửi lại 3 thông điệp lỗi?" in text(confirm)
    upto = re.search(r'name="upto" value="(\d+)"', text(confirm)).group(1)
    assert int(upto) == max(chosen)
    newer = console_project.park()  # arrives while the operator reads the confirmation
    console_project.fix_cause()
    done = post(client, "/dead-letters/act", {"action": "replay", "scope": "filter",
                                              "upto": upto, "endpoint": "outbox",
                                              "stage": "deliver", "confirmed": "yes"})
    assert "Đã gửi lại 3, thất bại 0" in text(done)
    store = console_project.bus().store
    waiting = [d["id"] for d in store.dead_letters()]
    assert waiting == [newer]


def test_purge_a_selection_keeps_the_messages_and_their_trail(console_project):
    first, second = console_project.park(), console_project.park()
    store = console_project.bus().store
    message = store.dead_letter(first)["message_id"]
    client = console_project.client()
    log_in(client, "quantri")
    confirm = post(client, "/dead-letters/confirm",
                   [("choice", "purge:selected"), ("ids", str(first)), ("ids", str(second))])
    assert "Xóa 2 thông điệp lỗi?" in text(confirm)
    done = post(client, "/dead-letters/act", [("action", "purge"), ("scope", "selected"),
                                              ("ids", str(first)), ("ids", str(second)),
                                              ("confirmed", "yes")])
    assert "Đã xóa 2 thông điệp lỗi" in text(done)
    assert store.dead_letters() == []
    assert store.message(message) is not None
    hops = [h["event"] for h in store.trace(message)["hops"]]
    assert hops[-1] == "operator" and "dead-lettered" in hops


def test_an_action_must_be_confirmed(console_project):
    dead = console_project.park()
    client = console_project.client()
    log_in(client, "vanhanh")
    skipped = post(client, "/dead-letters/act",
                   {"action": "purge", "scope": "selected", "ids": str(dead)})
    assert skipped.status_code == 400
    assert console_project.bus().store.dead_letter(dead) is not None


def test_console_replays_while_the_bus_works_keep_one_audit_chain(console_project):
    parked = [console_project.park() for _ in range(6)]
    console_project.fix_cause()
    services = console_project.console()
    client = console_project.client(services)
    log_in(client, "vanhanh")
    bus = console_project.bus()
    stop = threading.Event()

    def work() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            (console_project.root / "in" / f"busy{n}.xml").write_bytes(APPLICATION)
            bus.run_cycle()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        for dead in parked:
            done = post(client, "/dead-letters/act", {"action": "replay", "scope": "selected",
                                                      "ids": str(dead), "confirmed": "yes"})
            assert "Đã gửi lại 1, thất bại 0" in text(done)
    finally:
        stop.set()
        worker.join()
    verdict = audit.verify(bus.store.engine, audit_table, [bus.store.audit_key])
    assert verdict.ok, verdict.problem
    operators = [r for r in bus.store.engine.connect().execute(
        audit_table.select().where(audit_table.c.event == "operator"))]
    assert len(operators) == 6


# --- trace, documents, mappings, overview -----------------------------------------


def test_the_trace_shows_hops_deliveries_mapping_and_correlated_messages(console_project):
    (console_project.root / "in" / "one.xml").write_bytes(APPLICATION)
    store = console_project.bus().store
    console_project.run_until(lambda: store.counts()["delivered"] == 1)
    with store.engine.connect() as conn:
        message_id = conn.execute(messages.select()).first().id
    client = console_project.client()
    log_in(client, "xem")
    assert client.get(f"/trace?id={message_id[-10:]}").headers["Location"] == \
        f"/trace/{message_id[-10:]}"
    page = html.unescape(text(client.get(f"/trace/{message_id[-10:]}")))
    assert re.search(r"<strong>tiếp nhận</strong>.*<strong>đã chuyển</strong>.*"
                     r"<strong>lần thử 1</strong>", page, re.S)
    assert "onestop/application-to-receipt.xsl" in page
    assert client.get("/trace/nothing-like-this").status_code == 404


def test_documents_show_an_edxml_documents_life(console_project):
    samples = REFERENCE / "edxml"
    if not samples.is_dir():
        pytest.skip(f"the edXML samples are not at {samples} (shared/ beside the repository)")
    (console_project.root / "edxml" / "doc.xml").write_bytes(
        (samples / "messages" / "edoc_new.edxml").read_bytes())
    (console_project.root / "edxml" / "status.xml").write_bytes(
        (samples / "status" / "status_inbox_01.edxml").read_bytes())
    store = console_project.bus().store
    console_project.run_until(lambda: store.counts()["messages"] == 2)
    client = console_project.client()
    log_in(client, "xem")
    listing = text(client.get("/documents"))
    link = re.search(r'href="(/documents\?id=edxml-[^"]+)"', listing).group(1)
    page = html.unescape(text(client.get(html.unescape(link))))
    assert '<table id="history">' in page
    assert "document" in page and "dead-letter" in page  # no route took it here
    missing = text(client.get("/documents?id=000.00.00.X99,2026/01/01,1/XX"))
    assert "Kho này không có thông tin gì về văn bản đó." in missing


def test_mappings_run_their_cases_and_try_one_on_a_stored_message(console_project):
    (console_project.root / "in" / "one.xml").write_bytes(APPLICATION)
    store = console_project.bus().store
    console_project.run_until(lambda: store.counts()["delivered"] == 1)
    with store.engine.connect() as conn:
        message_id = conn.execute(messages.select()).first().id
    client = console_project.client()
    log_in(client, "xem")
    tested = html.unescape(text(client.get("/mappings?test=onestop/application-to-receipt.xsl")))
    assert re.search(r"\d+ passed, 0 failed", tested)
    tried = html.unescape(text(client.get(
        f"/mappings/try?mapping=onestop/application-to-receipt.xsl&message={message_id}"
        "&params=issuer%3D000.00.00.H99")))
    assert "<receipt" in tried and "000.00.00.H99" in tried
    unknown = text(client.get(f"/mappings/try?mapping=none.xsl&message={message_id}"))
    assert 'id="problem"' in unknown


def test_the_overview_shows_endpoints_dead_letters_and_the_audit_chain(console_project):
    console_project.park()
    services = console_project.console()
    services.audit.check()
    client = console_project.client(services)
    log_in(client, "xem")
    page = text(client.get("/"))
    assert '<meta http-equiv="refresh" content="15">' in page
    assert re.search(r'id="dead-letters-waiting"><span>1</span>', page)
    assert re.search(r"<td>outbox</td><td>folder</td>\s*<td><span class=\"badge ok\">", page)
    assert "nguyên vẹn" in page
    with services.queries.engine.begin() as conn:
        conn.execute(audit_table.update().where(audit_table.c.id == 1).values(detail="edited"))
    services.audit.check()
    page = text(client.get("/"))
    assert "bị phá vỡ" in page and "record #1" in page


def test_json_bodies_are_pretty_printed_and_anything_else_shown_as_text():
    from lienthong.console.views import shown_body

    shown = shown_body(json.dumps({"tên": "Liên thông", "n": [1, 2]}).encode())
    assert shown["kind"] == "json" and '"tên": "Liên thông"' in shown["text"]
    assert shown_body(b"plain words")["kind"] == "text"
    assert shown_body(b"<broken")["kind"] == "text"
    big = shown_body(b"<a>" + b"x" * 300_000 + b"</a>")
    assert big["cut"] and len(big["text"]) == 200_000


@pytest.mark.server
def test_on_postgresql_the_pages_read_and_a_replay_is_audited(tmp_path, users_file, pg_url):
    from lienthong.store import Store, make_engine

    Store(make_engine(pg_url)).upgrade()
    project = ConsoleProject(tmp_path, users_file, bus={"store": pg_url})
    try:
        samples = REFERENCE / "edxml" / "messages" / "edoc_new.edxml"
        if samples.exists():
            (project.root / "edxml" / "doc.xml").write_bytes(samples.read_bytes())
        dead = project.park()
        message = project.bus().store.dead_letter(dead)["message_id"]
        project.fix_cause()
        client = project.client()
        log_in(client, "vanhanh")
        for page in ["/", "/dead-letters?reason=already", f"/dead-letters/{dead}", "/documents",
                     f"/trace/{message[:12]}", "/syncs"]:
            assert client.get(page).status_code == 200, page
        if samples.exists():
            assert "edxml-" in text(client.get("/documents"))
        done = post(client, "/dead-letters/act", {"action": "replay", "scope": "selected",
                                                  "ids": str(dead), "confirmed": "yes"})
        assert "Đã gửi lại 1, thất bại 0" in text(done)
        project.run_until(project.delivered)
        assert 'data-state="delivered"' in text(client.get(f"/trace/{message}"))
        assert audit.verify(project.bus().store.engine, audit_table, [project.bus().store.audit_key]).ok
    finally:
        project.close()
