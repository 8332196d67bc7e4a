"""XSLT mappings: load, compile, cache, apply and test the stylesheets in the mappings folder.

A mapping is an XSLT 1.0 stylesheet under the mappings folder, named by its path
relative to that folder (``examples/upper.xsl``). Mappings are sandboxed:

- stylesheets are read with the hardened rules of :mod:`lienthong.xml` (no DTD,
  no entities, no network);
- ``xsl:include`` and ``xsl:import`` go through a resolver that loads only files
  inside the mappings folder; libxslt's access control does *not* cover
  includes (they are loaded while compiling), so the resolver is what confines them;
- transforms run with ``XSLTAccessControl.DENY_ALL``: ``document()`` and
  ``exsl:document`` cannot read or write files or reach the network;
- extension functions from plugins live in ``urn:lienthong:functions`` (prefix ``lt``).

lxml allows sharing an XSLT object between threads but advises one per thread
(libxslt optimisations, and the per-object error log that carries
``xsl:message`` text), so each thread compiles a mapping once, from a snapshot
of the files taken at first load.

A mapping's version is the content hash of the files it was compiled from (the
stylesheet and everything it includes or imports): :attr:`Mapping.version`. A
version's text (:meth:`MappingVersion.to_text`) holds all those files, so a store
can keep it by hash and :meth:`MappingLibrary.load_version` can run it again
after the files on disk have changed.

Each mapping's test cases sit beside it: ``foo/bar.xsl`` has
``foo/bar.cases/<case>/input.xml``, ``expected.xml`` and an optional
``params.json``; :func:`run_cases` runs them. Stylesheets whose name starts
with ``_`` are fragments for ``xsl:include``/``xsl:import`` and are not run alone.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Mapping as MappingType
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from lxml import etree

from . import xml
from .errors import ConfigError, ConfigProblem, LienthongError, RejectedError, TransientError
from .host import XPATH_NAMESPACE
from .suggest import did_you_mean

log = logging.getLogger(__name__)

XSL_NAMESPACE = "http://www.w3.org/1999/XSL/Transform"
CASES_SUFFIX = ".cases"

_INCLUDE_HINT = (
    "Hint: keep shared stylesheets inside the mappings folder and include them by a "
    'relative path, e.g. <xsl:include href="_common.xsl"/>'
)


class MappingError(RejectedError):
    """A mapping failed on this input: the message is dead-lettered with the reason."""

    def __init__(
        self,
        mapping: str,
        reason: str,
        *,
        line: int | None = None,
        messages: Iterable[str] = (),
        hint: str | None = None,
    ) -> None:
        self.mapping = mapping
        self.line = line
        self.messages = [m for m in messages if m]
        where = f"mapping '{mapping}'" + (f" line {line}" if line else "")
        text = f"{where}: {reason}"
        others = [m for m in self.messages if m not in reason]
        if others:
            text += " (xsl:message: " + "; ".join(others) + ")"
        if hint:
            text += f". {hint}"
        super().__init__(text)


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one test case of one mapping."""

    mapping: str
    case: str
    ok: bool
    detail: str | None = None


class _ExtensionFailure(Exception):
    """Carries an extension function's exception, with the function's name, out of libxslt."""

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(name)
        self.name = name
        self.cause = cause


def _wrap_function(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(context: Any, *args: Any) -> Any:
        try:
            return fn(context, *args)
        except Exception as exc:
            raise _ExtensionFailure(name, exc) from exc

    return call


class _RootResolver(etree.Resolver):
    """Serves xsl:include/xsl:import from files under the root only, from a snapshot.

    Every URL reaches this resolver (libxml2 has already joined relative hrefs
    to the including file's path); it never returns ``None``, which would let
    libxml2's default loader read any file.
    """

    def __init__(
        self,
        library: MappingLibrary,
        mapping: str,
        snapshot: dict[str, bytes],
        sealed: str | None = None,
    ) -> None:
        super().__init__()
        self.library = library
        self.mapping = mapping
        self.snapshot = snapshot
        self.sealed = sealed
        self.trees: dict[str, etree._ElementTree] = {}

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        path = self._confine_stored(system_url) if self.sealed else self._confine(system_url)
        key = str(path)
        data = self.snapshot.get(key)
        if data is None:
            data = self.library._read(path, what=f"stylesheet '{self.library._relative(path)}'")
            self.snapshot[key] = data
        if key not in self.trees:
            self.trees[key] = self.library._vet(data, path)
        return self.resolve_string(data, context, base_url=key)

    def _confine(self, url: str) -> Path:
        root = self.library.root
        scheme = urlsplit(url).scheme
        if scheme and len(scheme) > 1:
            raise self._refuse(
                url,
                f"is a URL; mappings may include only files inside the mappings folder '{root}'",
            )
        path = Path(url)
        if not path.exists() and "%" in url:
            path = Path(unquote(url))
        path = path.resolve()
        if not path.is_relative_to(root):
            raise self._refuse(url, f"is outside the mappings folder '{root}'")
        if not path.is_file():
            raise self._refuse(url, "does not exist")
        return path

    def _confine_stored(self, url: str) -> Path:
        # A stored version is served from its own files only: never from the disk.
        if len(urlsplit(url).scheme) > 1:
            raise self._refuse(url, "is a URL; mappings may include only files in the folder")
        path = Path(os.path.normpath(unquote(url) if "%" in url else url))
        if str(path) not in self.snapshot:
            raise self._refuse(
                url,
                f"is not part of the stored version {self.sealed}",
                hint="Hint: that version was stored incomplete; run the mapping from its file",
            )
        return path

    def _refuse(self, url: str, why: str, hint: str = _INCLUDE_HINT) -> ConfigError:
        where, href = self._find_include(url)
        what = f"include '{href}'" if href else f"include '{url}'"
        if href and href != url:
            what += f" (resolved to '{url}')"
        return ConfigError([ConfigProblem(where, f"{what} {why}. {hint}")])

    def _find_include(self, url: str) -> tuple[str, str | None]:
        # The resolver sees only the joined URL: find the element that asked for it.
        wanted = os.path.normpath(url) if "://" not in url else url
        for base, tree in self.trees.items():
            for el in tree.iter(f"{{{XSL_NAMESPACE}}}include", f"{{{XSL_NAMESPACE}}}import"):
                href = el.get("href", "")
                joined = (
                    href
                    if "://" in href or href.startswith("/")
                    else os.path.normpath(os.path.join(os.path.dirname(base), href))
                )
                if joined == wanted or href == url:
                    rel = self.library._relative(Path(base))
                    return f"{rel}:{el.sourceline}", href
        return self.mapping, None


VERSION_FORMAT = "lienthong-mapping/1"


@dataclass(frozen=True)
class MappingVersion:
    """What one mapping was compiled from: its file and every file it includes or imports.

    ``files`` maps paths relative to the mappings folder to their bytes. The
    :attr:`hash` covers the mapping's name and every file's path and content, so
    a change to any include is a new version and an unchanged set is the same one.
    """

    name: str
    files: MappingType[str, bytes]

    @cached_property
    def hash(self) -> str:
        digest = hashlib.sha256(f"{VERSION_FORMAT}\n{self.name}\n".encode())
        for path in sorted(self.files):
            data = self.files[path]
            digest.update(f"{path}\0{len(data)}\0".encode())
            digest.update(data)
        return digest.hexdigest()

    def to_text(self) -> str:
        """The version as one JSON text, for a store to keep under :attr:`hash`."""
        files = []
        for path in sorted(self.files):
            data = self.files[path]
            try:
                files.append({"path": path, "text": data.decode("utf-8")})
            except UnicodeDecodeError:  # a stylesheet in another encoding keeps its bytes
                files.append({"path": path, "base64": base64.b64encode(data).decode("ascii")})
        document = {"format": VERSION_FORMAT, "mapping": self.name, "hash": self.hash}
        return json.dumps({**document, "files": files}, ensure_ascii=False)

    @classmethod
    def from_text(cls, text: str) -> MappingVersion:
        """Read :meth:`to_text`'s output back; refuses a text that does not match its hash."""

        try:
            document = json.loads(text)
            if document.get("format") != VERSION_FORMAT:
                raise _refuse_version(
                    f"format is {document.get('format')!r}, not {VERSION_FORMAT!r}"
                )
            files = {
                f["path"]: f["text"].encode("utf-8")
                if "text" in f
                else base64.b64decode(f["base64"])
                for f in document["files"]
            }
            version = cls(str(document["mapping"]), files)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _refuse_version(f"cannot be read: {exc!r}") from exc
        version.check()
        if version.hash != document.get("hash"):
            raise _refuse_version(f"its files hash to {version.hash}, not {document.get('hash')}")
        return version

    def check(self) -> None:
        """Refuse a version whose files leave the mappings folder or lack the mapping itself."""
        for path in [self.name, *self.files]:
            pure = PurePosixPath(path)
            if pure.is_absolute() or ".." in pure.parts or not pure.parts:
                raise _refuse_version(
                    f"names the file {path!r}, which is outside the mappings folder"
                )
        if self.name not in self.files:
            raise _refuse_version(f"does not hold the mapping's own file {self.name!r}")


def _refuse_version(why: str) -> ConfigError:
    return ConfigError(
        [
            ConfigProblem(
                "stored mapping version",
                f"{why}. Hint: the store's copy is damaged or not a mapping version; "
                "run the mapping from its file",
            )
        ]
    )


class Mapping:
    """One compiled mapping; safe to share between threads (each compiles its own copy)."""

    def __init__(
        self,
        library: MappingLibrary,
        name: str,
        path: Path,
        stored: MappingVersion | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self._library = library
        self._snapshot: dict[str, bytes] = {}
        self._sealed: str | None = None
        if stored is not None:
            self._snapshot = {str(library.root / p): data for p, data in stored.files.items()}
            self._sealed = stored.hash
        self._local = threading.local()
        self._xslt()

    def __repr__(self) -> str:
        return f"<Mapping {self.name!r}>"

    @cached_property
    def version(self) -> MappingVersion:
        """The files this mapping was compiled from (the snapshot taken at its first load)."""
        files = {self._library._relative(Path(k)): v for k, v in self._snapshot.items()}
        return MappingVersion(self.name, files)

    def _xslt(self) -> etree.XSLT:
        xslt = getattr(self._local, "xslt", None)
        if xslt is None:
            xslt = self._library._compile(self.name, self.path, self._snapshot, self._sealed)
            self._local.xslt = xslt
        return xslt

    def apply(
        self,
        tree: etree._ElementTree | etree._Element,
        params: MappingType[str, str] | None = None,
        *,
        quiet: bool = False,
    ) -> etree._ElementTree:
        """Transform ``tree``; string params are quoted by lxml so they cannot inject XPath.

        ``quiet`` leaves xsl:message text unlogged (for tools that run a mapping many times).
        """
        xslt = self._xslt()
        quoted = {k: etree.XSLT.strparam(str(v)) for k, v in (params or {}).items()}
        try:
            result = xslt(tree, **quoted)
        except _ExtensionFailure as failure:
            raise self._function_error(xslt, failure) from failure.cause
        except etree.XSLTApplyError as exc:
            raise self._apply_error(xslt, exc) from exc
        except etree.XPathError as exc:
            raise MappingError(
                self.name,
                f"an lt: function returned a value XPath cannot use: {exc}",
                line=_line(xslt.error_log, self.path),
                hint="Hint: return a string, number, boolean, element or list of elements",
            ) from exc
        if result.getroot() is None:
            raise MappingError(
                self.name,
                "produced no root element",
                messages=_messages(xslt),
                hint="Hint: make the template for '/' output one element "
                '(text output, xsl:output method="text", is not a bus message)',
            )
        for message in [] if quiet else _messages(xslt):
            log.info("mapping '%s': xsl:message: %s", self.name, message)
        return result

    def _terminate_line(self) -> int | None:
        # libxslt logs no line for xsl:message; a lone terminating one is unambiguous.
        tree = xml.parse(self._snapshot[str(self.path)], max_bytes=self._library.max_bytes)
        lines = [
            el.sourceline
            for el in tree.iter(f"{{{XSL_NAMESPACE}}}message")
            if el.get("terminate", "").strip() == "yes"
        ]
        return lines[0] if len(lines) == 1 else None

    def apply_bytes(self, data: bytes, params: MappingType[str, str] | None = None) -> bytes:
        """Parse ``data`` with the hardened parser, transform it and serialize the result."""
        tree = xml.parse(data, max_bytes=self._library.max_bytes, what=f"input of '{self.name}'")
        return xml.serialize(self.apply(tree, params))

    def _function_error(self, xslt: etree.XSLT, failure: _ExtensionFailure) -> LienthongError:
        line = _line(xslt.error_log, self.path)
        reason = f"function lt:{failure.name} failed: {failure.cause}"
        if isinstance(failure.cause, TransientError):
            where = f"mapping '{self.name}'" + (f" line {line}" if line else "")
            return TransientError(f"{where}: {reason}")
        return MappingError(self.name, reason, line=line)

    def _apply_error(self, xslt: etree.XSLT, exc: etree.XSLTApplyError) -> MappingError:
        log = xslt.error_log
        line = _line(log, self.path)
        text = str(exc)
        messages = _messages(xslt)
        hint = None
        denied = re.search(r"(read|write) rights for (.+?) denied", text)
        if denied or "creation of directory" in text:
            verb, target = denied.groups() if denied else ("create a directory for", text)
            reason = f"tried to {verb} '{target}', which mappings may never do"
            hint = (
                "Hint: pass outside data in as a param or through an lt: extension "
                "function; document() and exsl:document are denied"
            )
        elif any("Unregistered function" in e.message for e in log):
            known = ", ".join(f"lt:{n}" for n in sorted(self._library.functions)) or "none"
            reason = "calls a function that is not registered"
            hint = f"Hint: check the function's name and namespace; registered: {known}"
        elif any("infinite template recursion" in e.message for e in log):
            # libxslt then logs "unknown error" many times; its own sentence is the news.
            reason = "infinite template recursion: libxslt stopped at 3000 nested template calls"
            hint = "Hint: check that each recursive template has a case that ends it"
        elif text in messages:
            reason = f'xsl:message terminate="yes": {text}'
            line = line or self._terminate_line()
        else:
            details = [
                e.message.strip()
                for e in log
                if "error, element" not in e.message
                and e.message.strip() not in (text, "")
                and e.message.strip() not in messages
            ]
            reason = "; ".join(dict.fromkeys([*details, text]))
        return MappingError(self.name, reason, line=line, messages=messages, hint=hint)


def _line(log: Any, path: Path) -> int | None:
    lines = [e.line for e in log if e.line and e.filename == str(path)]
    return lines[0] if lines else None


def _messages(xslt: etree.XSLT) -> list[str]:
    # libxslt logs its own runtime errors right after a "runtime error, element ..."
    # entry that carries the file and line; xsl:message text comes alone, with neither.
    found: list[str] = []
    previous: Any = None
    for entry in xslt.error_log:
        located = previous is not None and previous.line and "error, element" in previous.message
        text = entry.message.strip()
        if (
            entry.domain_name == "XSLT"
            and not entry.line
            and not located
            and text != "unknown error"
        ):
            found.append(text)
        previous = entry
    return found


class MappingLibrary:
    """The mappings folder: names mappings by relative path, compiles each once and caches it."""

    def __init__(
        self,
        root: Path,
        functions: MappingType[str, Callable[..., Any]] | None = None,
        max_bytes: int = xml.DEFAULT_MAX_BYTES,
    ) -> None:
        self.root = Path(root).resolve()
        self.functions = dict(functions or {})
        self.max_bytes = max_bytes
        self._extensions = {
            (XPATH_NAMESPACE, name): _wrap_function(name, fn) for name, fn in self.functions.items()
        }
        self._cache: dict[str, Mapping] = {}
        self._by_name: dict[str, Mapping] = {}
        self._versions: dict[str, Mapping] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Mapping:
        """The mapping at ``name`` (relative to the root), compiled on first use."""
        known = self._by_name.get(name)
        if known is not None:  # the hot path: one dict lookup per routed message
            return known
        path = self._locate(name)
        key = self._relative(path)
        with self._lock:
            mapping = self._cache.get(key)
            if mapping is None:
                mapping = Mapping(self, key, path)
                self._cache[key] = mapping
            self._by_name[name] = mapping
        return mapping

    def load_version(self, stored: MappingVersion | str) -> Mapping:
        """A mapping compiled from a stored version (or its text), not from the files on disk.

        Its includes come from the version alone; it runs with this library's
        ``lt:`` functions and sandbox. Compiled once per version and cached.
        """
        version = MappingVersion.from_text(stored) if isinstance(stored, str) else stored
        version.check()
        with self._lock:
            mapping = self._versions.get(version.hash)
            if mapping is None:
                mapping = Mapping(self, version.name, self.root / version.name, version)
                self._versions[version.hash] = mapping
        return mapping

    def names(self) -> list[str]:
        """Every stylesheet under the root that is a mapping, as relative names."""
        return [self._relative(p) for p in self._mapping_files(self.root)]

    # --- loading ---

    def _locate(self, name: str) -> Path:
        raw = Path(name)
        path = (self.root / raw).resolve()  # an absolute name replaces the root
        if not path.is_file() and not raw.is_absolute():
            # The command line may name it from the current folder: mappings/examples/x.xsl.
            from_cwd = raw.resolve()
            if from_cwd.is_file() and from_cwd.is_relative_to(self.root):
                path = from_cwd
        if not path.is_relative_to(self.root):
            raise ConfigError(
                [
                    f"mapping '{name}' is outside the mappings folder '{self.root}'. "
                    "Hint: name a mapping by its path in that folder, e.g. 'examples/upper.xsl'"
                ]
            )
        if not path.is_file():
            hint = did_you_mean(name, self.names(), n=3, cutoff=0.5) or (
                " Hint: 'lienthong mapping test' lists the mappings it finds"
            )
            raise ConfigError([f"mapping '{name}' not found in '{self.root}'.{hint}"])
        return path

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _read(self, path: Path, *, what: str) -> bytes:
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise ConfigError(
                    [
                        ConfigProblem(
                            self._relative(path),
                            f"{what} is {size:,} bytes, over the limit of {self.max_bytes:,} bytes",
                        )
                    ]
                )
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                [ConfigProblem(self._relative(path), f"cannot read {what}: {exc}")]
            ) from exc

    def _vet(self, data: bytes, path: Path) -> etree._ElementTree:
        """Check a stylesheet with the bus's hardened parser; refusals are config errors."""
        rel = self._relative(path)
        try:
            return xml.parse(data, max_bytes=self.max_bytes, what=f"stylesheet '{rel}'")
        except xml.XmlRejected as exc:
            cause = exc.__cause__
            line = cause.position[0] if isinstance(cause, etree.XMLSyntaxError) else None
            where = f"{rel}:{line}" if line else rel
            raise ConfigError([ConfigProblem(where, str(exc))]) from exc

    def _compile(
        self, name: str, path: Path, snapshot: dict[str, bytes], sealed: str | None = None
    ) -> etree.XSLT:
        key = str(path)
        data = snapshot.get(key)
        if data is None:
            data = self._read(path, what=f"mapping '{name}'")
            snapshot[key] = data
        resolver = _RootResolver(self, name, snapshot, sealed)
        resolver.trees[key] = self._vet(data, path)
        # The stylesheet is parsed again by a parser carrying the resolver: libxslt
        # loads includes through the resolvers of the parser that read the stylesheet.
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
        parser.resolvers.add(resolver)
        doc = etree.ElementTree(etree.fromstring(data, parser, base_url=key))
        etree.clear_error_log()
        try:
            return _compile_stylesheet(doc, self._extensions)
        except etree.XSLTParseError as exc:
            problems = [
                ConfigProblem(
                    f"{self._relative_or_name(e.filename, name)}:{e.line}", e.message.strip()
                )
                for e in exc.error_log
                if e.line
            ]
            detail = str(exc)
            if problems:
                problems[-1] = ConfigProblem(
                    problems[-1].location, f"{problems[-1].message}: {detail}"
                )
            else:
                problems = [ConfigProblem(name, f"does not compile: {detail}")]
            raise ConfigError(problems) from exc

    def _relative_or_name(self, filename: str | None, name: str) -> str:
        if filename and filename.startswith("/"):
            path = Path(filename)
            if path.is_relative_to(self.root):
                return self._relative(path)
        return name

    def _mapping_files(self, base: Path) -> Iterator[Path]:
        for path in sorted(base.rglob("*.xsl")):
            parts = path.relative_to(self.root).parts
            if path.name.startswith("_") or any(p.endswith(CASES_SUFFIX) for p in parts[:-1]):
                continue
            yield path


def _compile_stylesheet(doc: etree._ElementTree, extensions: dict[Any, Any]) -> etree.XSLT:
    return etree.XSLT(doc, extensions=extensions, access_control=etree.XSLTAccessControl.DENY_ALL)


# --- test cases ------------------------------------------------------------------


def run_cases(library: MappingLibrary, path: Path | None = None) -> list[CaseResult]:
    """Run every case of every mapping under ``path`` (a folder or one .xsl; default the root)."""
    target = library.root if path is None else _target(library, Path(path))
    if target.is_file():
        files: Iterable[Path] = [target]
    else:
        files = library._mapping_files(target)
    results: list[CaseResult] = []
    for file in files:
        results.extend(_run_mapping(library, file))
    return results


def _target(library: MappingLibrary, path: Path) -> Path:
    candidate = path if path.is_absolute() or path.exists() else library.root / path
    resolved = candidate.resolve()
    if not resolved.is_relative_to(library.root):
        raise ConfigError(
            [
                f"'{path}' is outside the mappings folder '{library.root}'. "
                "Hint: give a folder or .xsl file inside it"
            ]
        )
    if resolved.is_file() and resolved.suffix != ".xsl":
        raise ConfigError(
            [f"'{path}' is not a stylesheet. Hint: give a folder or an .xsl file in it"]
        )
    if not resolved.exists():
        raise ConfigError(
            [f"'{path}' does not exist. Hint: give a folder or .xsl file inside '{library.root}'"]
        )
    return resolved


def _shown(path: Path) -> str:
    rel = os.path.relpath(path)
    return path.as_posix() if rel.startswith("..") else Path(rel).as_posix()


def _run_mapping(library: MappingLibrary, file: Path) -> list[CaseResult]:
    name = library._relative(file)
    cases_dir = file.with_suffix(CASES_SUFFIX)
    cases = sorted(p for p in cases_dir.iterdir() if p.is_dir()) if cases_dir.is_dir() else []
    if not cases:
        return [
            CaseResult(
                name,
                "-",
                False,
                f"no test cases: add {_shown(cases_dir)}/<case>/input.xml and expected.xml",
            )
        ]
    try:
        mapping = library.get(name)
    except ConfigError as exc:
        detail = "; ".join(str(p) for p in exc.problems)
        return [CaseResult(name, "(load)", False, detail)]
    return [_run_case(mapping, case) for case in cases]


def _run_case(mapping: Mapping, case: Path) -> CaseResult:
    def fail(detail: str) -> CaseResult:
        return CaseResult(mapping.name, case.name, False, detail)

    for needed in ("input.xml", "expected.xml"):
        if not (case / needed).is_file():
            return fail(f"missing {needed} in {_shown(case)}")
    params: dict[str, str] = {}
    params_file = case / "params.json"
    if params_file.is_file():
        try:
            loaded = json.loads(params_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            return fail(f"params.json is not valid JSON: {exc}")
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            return fail(
                'params.json must be a JSON object of strings, e.g. {"agency": "000.00.01.H53"}'
            )
        params = loaded
    try:
        source = xml.parse_file(case / "input.xml", max_bytes=mapping._library.max_bytes)
        expected = xml.parse_file(case / "expected.xml", max_bytes=mapping._library.max_bytes)
        actual = mapping.apply(source, params)
    except LienthongError as exc:
        return fail(str(exc))
    detail = first_difference(expected.getroot(), actual.getroot())
    return CaseResult(mapping.name, case.name, detail is None, detail)


def _normalized(element: etree._Element) -> etree._Element:
    """A copy without comments or PIs and without whitespace-only text between elements."""
    copy = etree.fromstring(etree.tostring(element, with_tail=False))
    etree.strip_elements(copy, etree.Comment, etree.ProcessingInstruction, with_tail=False)
    for el in copy.iter():
        if len(el) and el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
    copy.tail = None
    return copy


def _qname(el: etree._Element, name: str) -> str:
    qname = etree.QName(name)
    if qname.namespace is None:
        return qname.localname
    prefix = next((p for p, uri in el.nsmap.items() if uri == qname.namespace and p), None)
    return f"{prefix}:{qname.localname}" if prefix else f"{{{qname.namespace}}}{qname.localname}"


def _step(el: etree._Element) -> str:
    name = _qname(el, el.tag)
    parent = el.getparent()
    if parent is None:
        return name
    same = [c for c in parent if c.tag == el.tag]
    return f"{name}[{same.index(el) + 1}]" if len(same) > 1 else name


def first_difference(expected: etree._Element, actual: etree._Element) -> str | None:
    """The first node where ``actual`` differs from ``expected``, as 'path: what', or None."""
    return _diff(_normalized(expected), _normalized(actual), "/" + _qname(expected, expected.tag))


def _diff(exp: etree._Element, act: etree._Element, path: str) -> str | None:
    if exp.tag != act.tag:
        want, got = _qname(exp, exp.tag), _qname(act, act.tag)
        if want == got:
            want, got = str(exp.tag), str(act.tag)
        return f"{path}: expected element <{want}>, got <{got}>"
    for name in sorted(set(exp.attrib) | set(act.attrib)):
        at = f"{path}/@{_qname(exp, name)}"
        want_value, got_value = exp.get(name), act.get(name)
        if got_value is None:
            return f"{at}: missing attribute (expected {want_value!r})"
        if want_value is None:
            return f"{at}: extra attribute with value {got_value!r}"
        if want_value != got_value:
            return f"{at}: expected {want_value!r}, got {got_value!r}"
    if (exp.text or "") != (act.text or ""):
        return f"{path}: expected text {exp.text or ''!r}, got {act.text or ''!r}"
    exp_children, act_children = list(exp), list(act)
    for i in range(min(len(exp_children), len(act_children)) + 1):
        e_child = exp_children[i] if i < len(exp_children) else None
        a_child = act_children[i] if i < len(act_children) else None
        if e_child is None or a_child is None or e_child.tag != a_child.tag:
            return _misaligned(exp_children[i:], act_children[i:], path)
        child_path = f"{path}/{_step(e_child)}"
        found = _diff(e_child, a_child, child_path)
        if found:
            return found
        if (e_child.tail or "") != (a_child.tail or ""):
            return (
                f"{child_path}: expected text {e_child.tail or ''!r} after the element, "
                f"got {a_child.tail or ''!r}"
            )
    return None


def _misaligned(exp: list[etree._Element], act: list[etree._Element], path: str) -> str | None:
    """Name the first missing, extra or different child once the children stop lining up."""
    if not exp and not act:
        return None
    matcher = difflib.SequenceMatcher(
        a=[c.tag for c in exp], b=[c.tag for c in act], autojunk=False
    )
    op, i1, _, j1, _ = matcher.get_opcodes()[0]
    if op == "delete" or not act:
        return f"{path}/{_step(exp[i1])}: missing element <{_qname(exp[i1], exp[i1].tag)}>"
    if op == "insert" or not exp:
        return f"{path}/{_step(act[j1])}: extra element <{_qname(act[j1], act[j1].tag)}>"
    return _diff(exp[0], act[0], f"{path}/{_step(exp[0])}")


def format_results(results: Iterable[CaseResult]) -> str:
    """One line per case and a summary line, as ``lienthong mapping test`` prints them."""
    lines: list[str] = []
    passed = failed = 0
    for r in results:
        if r.ok:
            passed += 1
            lines.append(f"PASS {r.mapping} {r.case}")
        else:
            failed += 1
            lines.append(f"FAIL {r.mapping} {r.case}: {r.detail}")
    lines.append(f"{passed} passed, {failed} failed")
    return "\n".join(lines)
