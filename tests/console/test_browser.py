"""The console in a real browser: Debian's Chromium, driven by Selenium through chromedriver.

One running bus (``lienthong run``'s code, on a thread, serving the console on a
free port) over a real store, folders and the shared slapd; one browser for the
module. The tests follow issue 18's "Done when" and take screenshots of the main
pages: into docs/console/ for docs/console.md when LIENTHONG_SCREENSHOTS=1 is set
(so an ordinary run leaves the tracked images alone), else into a temporary folder.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lienthong.bus import Bus
from lienthong.host import PluginHost
from tests.busproject import REPO
from tests.console.console_fixtures import PEOPLE, ConsoleProject, make_directory
from tests.email_directory.directory_fixtures import Tree

pytestmark = pytest.mark.server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = (
    REPO / "docs" / "console"
    if os.environ.get("LIENTHONG_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "lienthong-console-shots"
)
WAIT = 15.0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "Chromium or its chromedriver is missing: scripts/setup --test installs them "
            "(apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="lienthong-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


class World:
    """A running bus serving the console, its project, and its directory."""

    def __init__(self, project: ConsoleProject, bus: Bus) -> None:
        self.project = project
        self.bus = bus
        self.url = bus.console_server.url

    @property
    def store(self) -> Any:
        return self.bus.store


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, slapd: Any, users_file: Path
          ) -> Iterator[World]:
    tree = Tree(slapd)
    directory = make_directory(tree)
    project = ConsoleProject(tmp_path_factory.mktemp("browser"), users_file, directory,
                             bus={"console_port": 0})
    bus = Bus(project.config(), PluginHost(), worker="browser-bus")
    runner = threading.Thread(target=bus.run, name="bus")
    bus.start()
    runner.start()
    try:
        yield World(project, bus)
    finally:
        bus.stop()
        runner.join(timeout=30)
        bus.close()
        project.close()
        tree.close()


@pytest.fixture
def page(browser: Any, world: World) -> Any:
    """The browser, logged out, with its own helpers."""
    browser.delete_all_cookies()
    return browser


def until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(None, timeout, poll_frequency=0.1).until(
        lambda _: condition(), message=f"waited {timeout} s for {what}"
    )


def find(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return until(lambda: driver.find_elements(By.CSS_SELECTOR, css), css)[0]


def missing(driver: Any, css: str) -> bool:
    from selenium.webdriver.common.by import By

    return not driver.find_elements(By.CSS_SELECTOR, css)


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def log_in(driver: Any, world: World, uid: str, password: str | None = None) -> None:
    driver.get(world.url + "login")
    find(driver, "#username").send_keys(uid)
    find(driver, "#password").send_keys(password or PEOPLE[uid][0])
    # Wait for the answer to the login (a new page, whether in or refused): going on
    # before it arrives would abort the POST and leave the browser logged out.
    click_through(driver, find(driver, "#login"))


def click_through(driver: Any, element: Any) -> None:
    """Click ``element`` and wait for the page it leads to: a ``find`` right after a click
    may otherwise match the old page (both have an ``h1``) and read it as it goes."""
    from selenium.webdriver.support.ui import WebDriverWait

    element.click()
    WebDriverWait(driver, 15).until(lambda _: gone(element))


def gone(element: Any) -> bool:
    """Whether ``element`` left the page (a new page came).

    Chromium sometimes answers a question about an element of a page it has just
    replaced with "Node with given id does not belong to the document", an unknown
    error rather than a stale element: both mean the old page is gone.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


_names = itertools.count(1)


def park(world: World) -> int:
    """A dead letter the running bus makes: the receipt's name is taken. Its id."""
    before = {d["id"] for d in world.store.dead_letters()}
    name = f"web{next(_names)}.xml"
    (world.project.root / "out" / f"receipt-{name}").write_text("another receipt is here")
    (world.project.root / "in" / name).write_bytes(
        (REPO / "mappings/onestop/application-to-receipt.cases/basic/input.xml").read_bytes()
    )
    found = until(
        lambda: [d["id"] for d in world.store.dead_letters() if d["id"] not in before],
        "the bus to park the application",
    )
    return int(found[0])


def test_an_operator_logs_in_replays_a_dead_letter_and_sees_it_delivered(page, world):
    dead = park(world)
    page.get(world.url)
    find(page, "#username")
    shot(page, "login")
    log_in(page, world, "lan")
    find(page, "#endpoints")
    assert "lan · người vận hành" in page.page_source
    shot(page, "overview")

    click_through(page, page.find_element("link text", "Thông điệp lỗi"))
    row = find(page, f'#dead-letters a[href="/dead-letters/{dead}"]')
    shot(page, "dead-letters")
    click_through(page, row)
    assert "already exists with other content" in find(page, "#reason").text
    shot(page, "dead-letter")

    world.project.fix_cause()
    click_through(page, find(page, "#replay"))
    assert "Gửi lại 1 thông điệp lỗi?" in find(page, "h1").text
    click_through(page, find(page, "#confirm"))
    assert find(page, "#result").text == "Đã gửi lại 1, thất bại 0"

    page.get(world.url + f"dead-letters/{dead}")
    click_through(page, find(page, "#trace-link"))

    def delivered() -> bool:
        if missing(page, '[data-state="delivered"]'):
            page.refresh()
            return False
        return True

    until(delivered, "the trace to show the delivery")
    assert "replayed dead letter" in find(page, "#timeline").text
    shot(page, "trace")


def test_an_operator_approves_a_sync_plan_and_the_directory_changes(page, world):
    directory = world.project.directory
    world.project.drop_staff([
        "nva,Nguyễn Văn An,An,Nguyễn,nva@tinh.gov.vn,Phó Giám đốc",
        "ttb,Trần Thị Bình,Bình,Trần,ttb@tinh.gov.vn,Trưởng phòng",
        "lvc,Lê Văn Cường,Cường,Lê,lvc@tinh.gov.vn,Giám đốc",
        "pthd,Phạm Thị Hồng Đào,Đào,Phạm,pthd@tinh.gov.vn,Văn thư",
        "hlm,Hoàng Lan Mai,Mai,Hoàng,hlm@tinh.gov.vn,Kế toán",
    ], name="staff-browser.csv")
    log_in(page, world, "lan")
    find(page, "#endpoints")
    page.get(world.url + "syncs")
    find(page, "#dry-run-staff-sync").click()
    plan = find(page, "#plan").text
    assert "hlm" in plan and "Chuyên viên → Phó Giám đốc" in plan
    shot(page, "sync-plan")
    assert directory.account("hlm") is None

    find(page, "#approve").click()
    until(lambda: "approved by lan" in page.page_source, "the applied run's report")
    assert directory.account("hlm")["title"] == ["Kế toán"]
    assert directory.account("nva")["title"] == ["Phó Giám đốc"]
    page.get(world.url + "syncs")
    find(page, "#sync-runs")
    shot(page, "syncs")


def test_a_viewers_replay_is_refused(page, world):
    dead = park(world)
    log_in(page, world, "minh")
    page.get(world.url + f"dead-letters/{dead}")
    find(page, "#reason")
    assert missing(page, "#replay"), "a viewer is offered no replay"
    # Posting the form anyway, with the viewer's own valid token:
    page.execute_script(
        """const form = document.createElement('form');
           form.method = 'post'; form.action = '/dead-letters/confirm';
           for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value],
                                 ['choice', 'replay:selected'], ['ids', arguments[0]]]) {
             const input = document.createElement('input');
             input.name = k; input.value = v; form.appendChild(input);
           }
           document.body.appendChild(form); form.submit();""",
        str(dead),
    )
    assert "Vai trò của bạn (người xem) không được" in find(page, "#problem").text
    assert world.store.dead_letter(dead)["replayed_at"] is None


class _Evil(BaseHTTPRequestHandler):
    """Another site a logged-in operator visits: it posts a replay to the console."""

    target = ""
    dead = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = (
            f'<form id="f" method="post" action="{self.target}dead-letters/act">'
            f'<input name="action" value="replay"><input name="scope" value="selected">'
            f'<input name="ids" value="{self.dead}"><input name="confirmed" value="yes">'
            "</form><script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_cross_site_post_without_the_token_is_refused(page, world):
    dead = park(world)
    world.project.fix_cause()
    log_in(page, world, "lan")
    find(page, "#endpoints")
    handler = type("Evil", (_Evil,), {"target": world.url, "dead": dead})
    evil = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server = threading.Thread(target=evil.serve_forever)
    server.start()
    try:
        page.get(f"http://127.0.0.1:{evil.server_address[1]}/")
        refusal = find(page, "#problem").text
    finally:
        evil.shutdown()
        server.join()
        evil.server_close()
    assert refusal == "Biểu mẫu này đến từ một trang khác nên đã bị từ chối."
    assert world.store.dead_letter(dead)["replayed_at"] is None


def test_five_wrong_passwords_slow_the_account_down(page, world):
    for _ in range(5):
        log_in(page, world, "minh", "not the password")
        assert find(page, "#problem").text == "Sai tên đăng nhập hoặc mật khẩu."
    log_in(page, world, "minh")
    assert find(page, "#problem").text.startswith("Nhập sai mật khẩu quá nhiều lần.")
    assert "/login" in page.current_url


def test_the_overview_fits_a_phone(page, world):
    log_in(page, world, "lan")
    find(page, "#endpoints")
    page.set_window_size(390, 844)
    try:
        page.refresh()
        find(page, "#endpoints")
        width = page.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, "the page itself does not scroll sideways (tables scroll inside)"
        shot(page, "overview-phone")
    finally:
        page.set_window_size(1280, 900)
