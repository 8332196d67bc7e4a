"""Mappings: compile once per thread, params, extension functions, errors, cases, sandbox."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from lienthong import mapping as mapping_module
from lienthong.errors import ConfigError, RejectedError, TransientError
from lienthong.mapping import (
    CaseResult,
    MappingError,
    MappingLibrary,
    format_results,
    run_cases,
)

FIXTURES = Path(__file__).parent / "mapping_fixtures"

HEAD = (
    '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" '
    'xmlns:lt="urn:lienthong:functions" xmlns:exsl="http://exslt.org/common" '
    'extension-element-prefixes="exsl" exclude-result-prefixes="lt">\n'
)
IDENTITY = (
    HEAD + '<xsl:template match="@*|node()"><xsl:copy>'
    '<xsl:apply-templates select="@*|node()"/></xsl:copy></xsl:template>\n</xsl:stylesheet>\n'
)
FRAGMENT = HEAD + '<xsl:template name="part"><part/></xsl:template>\n</xsl:stylesheet>\n'


def upper(context: object, value: object) -> str:
    return str(value).upper()


def stylesheet(body: str) -> str:
    return HEAD + body + "\n</xsl:stylesheet>\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "mappings"
    folder.mkdir()
    return folder


@pytest.fixture
def fixtures_lib() -> MappingLibrary:
    return MappingLibrary(FIXTURES, {"upper": upper})


# --- loading and caching ---------------------------------------------------------


def test_get_compiles_once_per_thread_and_caches(
    fixtures_lib: MappingLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = mapping_module._compile_stylesheet

    def counting(doc: etree._ElementTree, extensions: dict) -> etree.XSLT:
        calls.append(threading.current_thread().name)
        return real(doc, extensions)

    monkeypatch.setattr(mapping_module, "_compile_stylesheet", counting)
    first = fixtures_lib.get("examples/upper.xsl")
    assert fixtures_lib.get("examples/upper.xsl") is first
    assert fixtures_lib.get("./examples/../examples/upper.xsl") is first
    assert fixtures_lib.get(str(FIXTURES / "examples" / "upper.xsl")) is first
    data = b"<list><item code='1'><name>x</name></item></list>"
    for _ in range(3):
        assert b"<name>X</name>" in first.apply_bytes(data)
    assert len(calls) == 1

    outputs: list[bytes] = []
    worker = threading.Thread(target=lambda: outputs.append(first.apply_bytes(data)), name="w1")
    worker.start()
    worker.join()
    assert b"<name>X</name>" in outputs[0]
    assert calls == [threading.current_thread().name, "w1"]


def test_concurrent_applies_keep_their_own_results(fixtures_lib: MappingLibrary) -> None:
    mapping = fixtures_lib.get("examples/upper.xsl")
    errors: list[str] = []

    def work(n: int) -> None:
        for i in range(20):
            value = f"t{n}-{i}"
            out = mapping.apply_bytes(
                f"<list><item code='{i}'><name>{value}</name></item></list>".encode(),
                {"agency": value},
            )
            if f'agency="{value}"'.encode() not in out or value.upper().encode() not in out:
                errors.append(out.decode())

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_name_from_the_current_folder_is_accepted(
    fixtures_lib: MappingLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(FIXTURES.parent)
    mapping = fixtures_lib.get("mapping_fixtures/examples/upper.xsl")
    assert mapping.name == "examples/upper.xsl"


def test_missing_mapping_suggests_close_names(fixtures_lib: MappingLibrary) -> None:
    with pytest.raises(ConfigError) as info:
        fixtures_lib.get("examples/uper.xsl")
    assert "'examples/uper.xsl' not found" in str(info.value)
    assert "Did you mean 'examples/upper.xsl'?" in str(info.value)


@pytest.mark.parametrize("name", ["../outside.xsl", "/etc/passwd", "examples/../../x.xsl"])
def test_name_outside_root_is_refused(root: Path, name: str) -> None:
    write(root.parent / "outside.xsl", IDENTITY)
    with pytest.raises(ConfigError) as info:
        MappingLibrary(root).get(name)
    assert f"mapping '{name}' is outside the mappings folder" in str(info.value)
    assert "Hint:" in str(info.value)


def test_compile_error_names_file_and_line(root: Path) -> None:
    write(
        root / "bad.xsl",
        stylesheet(
            '<xsl:template match="/">\n<r>\n<xsl:value-of select="a[["/></r></xsl:template>'
        ),
    )
    with pytest.raises(ConfigError) as info:
        MappingLibrary(root).get("bad.xsl")
    text = str(info.value)
    assert "bad.xsl:4" in text
    assert "a[[" in text


def test_malformed_stylesheet_names_file_and_line(root: Path) -> None:
    write(root / "broken.xsl", HEAD + "<xsl:template match='/'>\n<r>\n</xsl:template>")
    with pytest.raises(ConfigError) as info:
        MappingLibrary(root).get("broken.xsl")
    assert "broken.xsl:4" in str(info.value)


# --- applying ----------------------------------------------------------------------


def test_params_are_literal_strings_even_with_quotes(fixtures_lib: MappingLibrary) -> None:
    mapping = fixtures_lib.get("examples/upper.xsl")
    hostile = "x' or '1'='1\" | document('/etc/passwd')"
    tree = etree.ElementTree(etree.fromstring(b"<list/>"))
    out = mapping.apply(tree, {"agency": hostile})
    assert out.getroot().get("agency") == hostile
    assert mapping.apply(tree).getroot().get("agency") == "unknown"


def test_extension_function_is_called_with_its_arguments(root: Path) -> None:
    seen: list[tuple] = []

    def code(context: object, name: object, level: object) -> str:
        seen.append((name, level))
        return f"{name}/{level}"

    write(
        root / "fn.xsl",
        stylesheet(
            '<xsl:template match="/a"><r><xsl:value-of select="lt:code(string(b), 2)"/></r>'
            "</xsl:template>"
        ),
    )
    out = MappingLibrary(root, {"code": code}).get("fn.xsl").apply_bytes(b"<a><b>STP</b></a>")
    assert seen == [("STP", 2.0)]
    assert b"<r>STP/2.0</r>" in out
    assert b"urn:lienthong:functions" not in out


def test_transient_function_error_stays_transient(root: Path) -> None:
    def lookup(context: object, value: object) -> str:
        raise TransientError("directory 'ldap://127.0.0.1:1' did not answer")

    write(
        root / "look.xsl",
        stylesheet(
            '<xsl:template match="/">\n<r>\n<xsl:value-of select="lt:lookup(.)"/></r>'
            "</xsl:template>"
        ),
    )
    mapping = MappingLibrary(root, {"lookup": lookup}).get("look.xsl")
    with pytest.raises(TransientError) as info:
        mapping.apply_bytes(b"<a/>")
    assert not isinstance(info.value, RejectedError)
    text = str(info.value)
    assert "mapping 'look.xsl' line 4" in text
    assert "lt:lookup" in text and "did not answer" in text
    assert isinstance(info.value.__cause__, TransientError)


def test_other_function_error_is_a_mapping_error(root: Path) -> None:
    def lookup(context: object, value: object) -> str:
        raise KeyError("no agency 'H99'")

    write(
        root / "look.xsl",
        stylesheet(
            '<xsl:template match="/"><r><xsl:value-of select="lt:lookup(.)"/></r></xsl:template>'
        ),
    )
    with pytest.raises(MappingError) as info:
        MappingLibrary(root, {"lookup": lookup}).get("look.xsl").apply_bytes(b"<a/>")
    assert "lt:lookup failed" in str(info.value) and "H99" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)


def test_function_returning_an_unusable_value_is_a_mapping_error(root: Path) -> None:
    write(
        root / "ret.xsl",
        stylesheet(
            '<xsl:template match="/"><r><xsl:value-of select="lt:bad(.)"/></r></xsl:template>'
        ),
    )
    library = MappingLibrary(root, {"bad": lambda context, value: {"not": "xpath"}})
    with pytest.raises(MappingError, match="returned a value XPath cannot use"):
        library.get("ret.xsl").apply_bytes(b"<a/>")


def test_unregistered_function_lists_the_registered_ones(root: Path) -> None:
    write(
        root / "nope.xsl",
        stylesheet(
            '<xsl:template match="/"><r><xsl:value-of select="lt:nope(.)"/></r></xsl:template>'
        ),
    )
    with pytest.raises(MappingError) as info:
        MappingLibrary(root, {"upper": upper}).get("nope.xsl").apply_bytes(b"<a/>")
    assert "not registered" in str(info.value)
    assert "lt:upper" in str(info.value)


def test_terminating_message_text_is_in_the_error(root: Path) -> None:
    write(
        root / "stop.xsl",
        stylesheet(
            '<xsl:template match="/">\n<xsl:message>checking</xsl:message>\n'
            '<xsl:message terminate="yes">no sender in <xsl:value-of select="name(*)"/>'
            "</xsl:message></xsl:template>"
        ),
    )
    with pytest.raises(MappingError) as info:
        MappingLibrary(root).get("stop.xsl").apply_bytes(b"<edXMLEnvelope/>")
    assert info.value.messages == ["checking", "no sender in edXMLEnvelope"]
    assert str(info.value) == (
        "mapping 'stop.xsl' line 4: xsl:message terminate=\"yes\": no sender in edXMLEnvelope"
        " (xsl:message: checking)"
    )


def test_empty_result_is_a_mapping_error(root: Path) -> None:
    write(root / "empty.xsl", stylesheet('<xsl:template match="/"/>'))
    with pytest.raises(MappingError, match="produced no root element"):
        MappingLibrary(root).get("empty.xsl").apply_bytes(b"<a/>")


def test_input_goes_through_the_hardened_parser(root: Path) -> None:
    write(root / "id.xsl", IDENTITY)
    evil = b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'
    with pytest.raises(RejectedError, match="DTD"):
        MappingLibrary(root).get("id.xsl").apply_bytes(evil)


# --- sandbox: no file or network access at run time --------------------------------


def test_document_cannot_read_a_local_file(root: Path) -> None:
    secret = write(root / "secret.xml", "<secret>s3cret</secret>")
    write(
        root / "peek.xsl",
        stylesheet(
            f'<xsl:template match="/">\n<r><xsl:copy-of select="document(\'{secret}\')"/></r>'
            "</xsl:template>"
        ),
    )
    with pytest.raises(MappingError) as info:
        MappingLibrary(root).get("peek.xsl").apply_bytes(b"<a/>")
    text = str(info.value)
    assert f"tried to read '{secret}'" in text
    assert "line 3" in text and "Hint:" in text
    assert "s3cret" not in text


def test_exsl_document_cannot_write_a_file(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "written.xml"
    write(
        root / "drop.xsl",
        stylesheet(
            f'<xsl:template match="/"><exsl:document href="{target}"><w/></exsl:document><r/>'
            "</xsl:template>"
        ),
    )
    with pytest.raises(MappingError) as info:
        MappingLibrary(root).get("drop.xsl").apply_bytes(b"<a/>")
    assert f"tried to write '{target}'" in str(info.value)
    assert not target.exists()


def test_exsl_document_cannot_create_directories(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "newdir" / "deeper" / "written.xml"
    write(
        root / "drop.xsl",
        stylesheet(
            f'<xsl:template match="/"><exsl:document href="{target}"><w/></exsl:document><r/>'
            "</xsl:template>"
        ),
    )
    with pytest.raises(MappingError, match="may never do"):
        MappingLibrary(root).get("drop.xsl").apply_bytes(b"<a/>")
    assert not (tmp_path / "newdir").exists()


# --- sandbox: includes stay inside the folder --------------------------------------


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        body = FRAGMENT.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback that would serve a stylesheet, and counts requests."""
    handler = type("Handler", (_CountingHandler,), {"requests": []})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/part.xsl", handler.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["include", "import"])
@pytest.mark.parametrize("form", ["relative", "absolute", "file-url", "http-url"])
def test_include_outside_root_is_refused(
    root: Path, kind: str, form: str, http_server: tuple[str, list[str]]
) -> None:
    outside = write(root.parent / "outside.xsl", FRAGMENT)
    url, requests = http_server
    href = {
        "relative": "../../outside.xsl",
        "absolute": str(outside),
        "file-url": outside.as_uri(),
        "http-url": url,
    }[form]
    write(
        root / "sub" / "m.xsl",
        stylesheet(
            f'<xsl:{kind} href="{href}"/>\n'
            '<xsl:template match="/"><r><xsl:call-template name="part"/></r></xsl:template>'
        ),
    )
    with pytest.raises(ConfigError) as info:
        MappingLibrary(root).get("sub/m.xsl")
    text = str(info.value)
    assert f"sub/m.xsl:2: include '{href}'" in text
    assert ("is a URL" if "url" in form else "is outside the mappings folder") in text
    assert "Hint:" in text
    assert requests == []


def test_include_escape_from_a_nested_fragment_is_refused(root: Path) -> None:
    write(root.parent / "outside.xsl", FRAGMENT)
    write(root / "_inner.xsl", stylesheet('<xsl:include href="../outside.xsl"/>'))
    write(
        root / "m.xsl",
        stylesheet(
            '<xsl:include href="_inner.xsl"/>\n'
            '<xsl:template match="/"><r><xsl:call-template name="part"/></r></xsl:template>'
        ),
    )
    with pytest.raises(ConfigError) as info:
        MappingLibrary(root).get("m.xsl")
    assert "_inner.xsl:2: include '../outside.xsl'" in str(info.value)


def test_include_through_a_symlink_out_of_root_is_refused(root: Path) -> None:
    outside = write(root.parent / "outside.xsl", FRAGMENT)
    (root / "_link.xsl").symlink_to(outside)
    write(
        root / "m.xsl",
        stylesheet(
            '<xsl:include href="_link.xsl"/>\n'
            '<xsl:template match="/"><r><xsl:call-template name="part"/></r></xsl:template>'
        ),
    )
    with pytest.raises(ConfigError, match="outside the mappings folder"):
        MappingLibrary(root).get("m.xsl")


def test_include_of_a_sibling_inside_root_works(fixtures_lib: MappingLibrary) -> None:
    out = fixtures_lib.get("shared/report.xsl").apply_bytes(
        b"<list><item><name>a</name></item><item><name>b</name></item></list>"
    )
    assert b'<row n="2">b</row>' in out


def test_include_of_a_missing_file_names_it(root: Path) -> None:
    write(root / "m.xsl", stylesheet('<xsl:import href="_gone.xsl"/>'))
    with pytest.raises(ConfigError) as info:
        MappingLibrary(root).get("m.xsl")
    assert "m.xsl:2: include '_gone.xsl'" in str(info.value)
    assert "does not exist" in str(info.value)


def test_stylesheet_with_doctype_is_refused(root: Path) -> None:
    write(
        root / "dtd.xsl",
        '<!DOCTYPE xsl:stylesheet [<!ENTITY e SYSTEM "/etc/passwd">]>\n' + IDENTITY,
    )
    with pytest.raises(ConfigError) as info:
        MappingLibrary(root).get("dtd.xsl")
    assert "dtd.xsl" in str(info.value) and "DOCTYPE" in str(info.value)


def test_included_fragment_with_doctype_is_refused(root: Path) -> None:
    write(root / "_frag.xsl", "<!DOCTYPE x>\n" + FRAGMENT)
    write(root / "m.xsl", stylesheet('<xsl:include href="_frag.xsl"/>'))
    with pytest.raises(ConfigError, match="_frag.xsl.*DTD"):
        MappingLibrary(root).get("m.xsl")


# --- test cases --------------------------------------------------------------------


def test_fixture_cases_pass(fixtures_lib: MappingLibrary) -> None:
    results = run_cases(fixtures_lib)
    assert [(r.mapping, r.case, r.ok) for r in results] == [
        ("examples/upper.xsl", "basic", True),
        ("examples/upper.xsl", "quoted-agency", True),
        ("shared/report.xsl", "two-items", True),
    ]
    one = run_cases(fixtures_lib, FIXTURES / "shared" / "report.xsl")
    assert [r.case for r in one] == ["two-items"]
    folder = run_cases(fixtures_lib, Path("examples"))
    assert {r.mapping for r in folder} == {"examples/upper.xsl"}


INPUT = (
    '<out xmlns:e="urn:edxml">\n  <item id="1"><name>A</name></item>\n'
    '  <item id="2"><name>A</name></item>\n  <e:note>x</e:note>\n</out>\n'
)


@pytest.mark.parametrize(
    ("expected", "detail"),
    [
        (
            INPUT.replace("<name>A</name></item>\n  <e:", "<name>B</name></item>\n  <e:"),
            "/out/item[2]/name: expected text 'B', got 'A'",
        ),
        (
            INPUT.replace("<e:note>x</e:note>", "<e:note>x</e:note><tail/>"),
            "/out/tail: missing element <tail>",
        ),
        (
            INPUT.replace('  <item id="2"><name>A</name></item>\n', ""),
            "/out/item[2]: extra element <item>",
        ),
        (INPUT.replace('id="2"', 'id="3"'), "/out/item[2]/@id: expected '3', got '2'"),
        (
            INPUT.replace('id="2"', 'id="2" kind="x"'),
            "/out/item[2]/@kind: missing attribute (expected 'x')",
        ),
        (INPUT.replace('id="2"', ""), "/out/item[2]/@id: extra attribute with value '2'"),
        (
            INPUT.replace("urn:edxml", "urn:other"),
            "/out/e:note: expected element <{urn:other}note>, got <{urn:edxml}note>",
        ),
        (
            INPUT.replace("</e:note>", "</e:note>tail"),
            "/out/e:note: expected text 'tail\\n' after the element, got ''",
        ),
    ],
    ids=["text", "missing", "extra", "attribute", "missing-attr", "extra-attr", "ns", "tail"],
)
def test_failure_detail_names_the_first_differing_node(
    root: Path, expected: str, detail: str
) -> None:
    write(root / "id.xsl", IDENTITY)
    write(root / "id.cases" / "c1" / "input.xml", INPUT)
    write(root / "id.cases" / "c1" / "expected.xml", expected)
    assert run_cases(MappingLibrary(root)) == [CaseResult("id.xsl", "c1", False, detail)]


def test_whitespace_between_elements_and_comments_are_insignificant(root: Path) -> None:
    write(root / "id.xsl", IDENTITY)
    write(root / "id.cases" / "c1" / "input.xml", "<a><b>x</b><c/></a>")
    write(
        root / "id.cases" / "c1" / "expected.xml",
        '<?xml version="1.0"?>\n<!-- why -->\n<a>\n  <b>x</b>\n  <!-- c -->\n  <c></c>\n</a>\n',
    )
    write(root / "id.cases" / "c2" / "input.xml", "<a><b> </b></a>")
    write(root / "id.cases" / "c2" / "expected.xml", "<a><b/></a>")
    results = run_cases(MappingLibrary(root))
    assert results[0] == CaseResult("id.xsl", "c1", True, None)
    assert results[1].detail == "/a/b: expected text '', got ' '"


def test_mapping_without_cases_fails_with_instructions(root: Path) -> None:
    write(root / "lonely" / "m.xsl", IDENTITY)
    write(root / "lonely" / "_part.xsl", FRAGMENT)
    results = run_cases(MappingLibrary(root))
    assert len(results) == 1
    result = results[0]
    assert (result.mapping, result.ok) == ("lonely/m.xsl", False)
    assert result.detail is not None
    assert result.detail.startswith("no test cases: add ")
    assert result.detail.endswith("lonely/m.cases/<case>/input.xml and expected.xml")


def test_broken_case_files_fail_with_a_reason(root: Path) -> None:
    write(root / "id.xsl", IDENTITY)
    write(root / "id.cases" / "no-expected" / "input.xml", "<a/>")
    write(root / "id.cases" / "bad-params" / "input.xml", "<a/>")
    write(root / "id.cases" / "bad-params" / "expected.xml", "<a/>")
    write(root / "id.cases" / "bad-params" / "params.json", '{"n": 1}')
    write(root / "id.cases" / "bad-input" / "input.xml", "<a>")
    write(root / "id.cases" / "bad-input" / "expected.xml", "<a/>")
    details = {r.case: r.detail or "" for r in run_cases(MappingLibrary(root))}
    assert "params.json must be a JSON object of strings" in details["bad-params"]
    assert "not well-formed" in details["bad-input"]
    assert details["no-expected"].startswith("missing expected.xml")


def test_a_mapping_that_does_not_compile_is_one_failed_result(root: Path) -> None:
    write(
        root / "bad.xsl",
        stylesheet('<xsl:template match="/">\n<xsl:value-of select="a[["/></xsl:template>'),
    )
    write(root / "bad.cases" / "c" / "input.xml", "<a/>")
    write(root / "bad.cases" / "c" / "expected.xml", "<a/>")
    [result] = run_cases(MappingLibrary(root))
    assert (result.case, result.ok) == ("(load)", False)
    assert "bad.xsl:3" in (result.detail or "")


def test_run_cases_refuses_a_path_outside_root(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outside the mappings folder"):
        run_cases(MappingLibrary(root), tmp_path)
    with pytest.raises(ConfigError, match="is not a stylesheet"):
        run_cases(MappingLibrary(FIXTURES), FIXTURES / "shared/report.cases/two-items/input.xml")


def test_format_results() -> None:
    text = format_results(
        [
            CaseResult("a.xsl", "one", True),
            CaseResult("a.xsl", "two", False, "/out/x: missing element <x>"),
        ]
    )
    assert text.splitlines() == [
        "PASS a.xsl one",
        "FAIL a.xsl two: /out/x: missing element <x>",
        "1 passed, 1 failed",
    ]


def test_fixtures_copied_elsewhere_still_pass(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(FIXTURES, copy)
    results = run_cases(MappingLibrary(copy, {"upper": upper}))
    assert all(r.ok for r in results) and len(results) == 3
