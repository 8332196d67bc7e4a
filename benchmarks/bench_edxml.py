"""How fast the bus takes in edXML, against two raw baselines measured in the same run.

Run: ``python benchmarks/bench_edxml.py``. Two messages: a small signed status
and the ~360 KB signed edoc_new sample with its attachment, signed under a
SANDBOX CA (root, intermediate carried in the signature). For each:

- the intake as the axis adapter runs it (:func:`inspection.inspect`: one
  hardened parse; read, checked and verified on that tree, with the chain to
  the root and both CRLs, and the signer bound to the sender), and each step
  alone on bytes (``edxml.read``, ``validation.check``, ``signature.verify``);
- the **raw floor** of the same verification, done with the bare libraries:
  lxml parse, C14N of the signed content (the enveloped signature taken out),
  SHA-256 of it, base64 decode of the attachments, C14N of ``SignedInfo`` and
  the RSA verify. The ratio says how many floors one intake costs;
- the floor plus inflating the attachment's ZIP (what the zip-bomb check
  cannot do without), and the bare ``lxml.etree.fromstring``, for reference;
- for a document with attachments, where one intake goes: each part it runs
  alone on the same message, in raw floors (paired with the floor as above).

Where the time goes (2 shared cores, 3 runs): the 360 KB document's intake
costs 1.9-2.0 floors, 1.16-1.20 of "floor + inflate". Its parts: the hardened
parse 0.14-0.17 floors (the bare parse plus the DTD scan of the bytes); read
0.51-0.54 (mostly the attachment's base64 decode, which the floor does too);
check 0.58-0.69, of which inflating the attachment's 380 KB ZIP entry and its
CRC-32 are 0.48-0.49 (zlib itself: the checks stream it and keep none), the
schema and the rules the rest; verify 0.61-0.70 (the floor's C14N, SHA-256
and RSA, plus the cached chain, the CRLs and the binding). Of the 0.9-1.0
floor over the floor, the inflate is half; the model, the schema and rules,
the DTD scan and the chain, CRL and binding look-ups share the rest, each a
tenth or two of a floor. Inflating on a worker thread while the signature is
verified was tried: on these shared cores it made the intake 8-17% slower in
wall time and no cheaper in CPU time, so it was not kept.

``--profile`` prints where the intake's time goes (cProfile, by own time);
``--rounds 3`` is a quicker, noisier run.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import cProfile
import hashlib
import io
import pstats
import shlex
import statistics
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from lienthong import xml
from lienthong.plugins.document_axis import edxml, signature, validation
from lienthong.plugins.document_axis.binding import Binding
from lienthong.plugins.document_axis.inspection import inspect
from lienthong.plugins.document_axis.provenance import Provenance
from lienthong.plugins.document_axis.sandbox_ca import SandboxCA
from lienthong.plugins.document_axis.trust import CrlFiles, Trust

DATA = Path(__file__).resolve().parent.parent / "tests" / "document_axis" / "data" / "edxml"
DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
ED = "{http://www.mic.gov.vn/TBT/QCVN_102_2016}"
SIGNER = "CN=bench,O=Sở Y tế,C=VN"


def rate(func: Callable[[], object], seconds: float = 0.3) -> float:
    """Operations per second of this process's CPU time, after a warm-up, over ``seconds``.

    CPU time, not wall time: the machine may be shared, and another process's
    work must not count as ours (the baselines are measured the same way).
    """
    for _ in range(3):
        func()
    count, start = 0, time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        func()
        count += 1
    return count / elapsed


def paired(
    func: Callable[[], object], baseline: Callable[[], object], rounds: int = 7
) -> tuple[float, float, float]:
    """Median ops/s of ``func`` and of ``baseline``, and the median of their ratios.

    Measured in alternating short rounds, so a change in the machine's load
    (it may be shared) weighs on both alike instead of on whichever ran then.
    """
    figures, baselines, ratios = [], [], []
    for _ in range(rounds):
        b = rate(baseline, 0.3)
        f = rate(func, 0.3)
        figures.append(f)
        baselines.append(b)
        ratios.append(b / f)
    return statistics.median(figures), statistics.median(baselines), statistics.median(ratios)


def raw_floor(data: bytes, *, inflate: bool = False) -> None:
    """The verification with bare lxml, hashlib, base64 and cryptography: the floor.

    Parse; C14N of the document without its enveloped signature; SHA-256 of
    it against the DigestValue; base64 decode of every attachment (and, with
    ``inflate``, reading its ZIP's entry); C14N of SignedInfo; RSA verify.
    """
    root = etree.fromstring(data)
    sig = root.find(f"{ED}edXMLEnvelope/{ED}edXMLHeader/{DSIG}Signature")
    assert sig is not None
    # The enveloped-signature transform: the signature out, the text around it kept.
    previous = sig.getprevious()
    assert previous is not None
    saved, tail = previous.tail, sig.tail
    sig.getparent().remove(sig)  # type: ignore[union-attr]
    previous.tail = (saved or "") + (tail or "")
    digest = hashlib.sha256(etree.tostring(root.getroottree(), method="c14n")).digest()
    previous.tail = saved
    previous.addnext(sig)
    sig.tail = tail
    expected = sig.findtext(f"{DSIG}SignedInfo/{DSIG}Reference/{DSIG}DigestValue") or ""
    assert base64.b64decode(expected) == digest
    for element in root.iter(f"{ED}ContentTransferEncoded"):
        # The fastest bare decode (strict, no copy); the samples' base64 has no line breaks.
        payload = binascii.a2b_base64(element.text or "", strict_mode=True)
        if inflate:
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                archive.read(archive.infolist()[0])
    signed_info = sig.find(f"{DSIG}SignedInfo")
    canonical = etree.tostring(
        etree.fromstring(etree.tostring(signed_info)).getroottree(), method="c14n"
    )
    value = base64.b64decode(sig.findtext(f"{DSIG}SignatureValue") or "")
    der = base64.b64decode(
        sig.findtext(f"{DSIG}KeyInfo/{DSIG}X509Data/{DSIG}X509Certificate") or ""
    )
    key = x509.load_der_x509_certificate(der).public_key()
    key.verify(value, canonical, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg,union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="store_true", help="print where the intake's time goes")
    parser.add_argument(
        "--rounds",
        type=int,
        default=7,
        help="paired rounds per figure (default 7; 3 is a quicker, noisier run)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ca = SandboxCA()
        files = ca.write(Path(folder))
        trust = Trust(
            [ca.root.certificate], crls=CrlFiles([files["root_crl"], files["intermediate_crl"]])
        )
        run(ca.issue(SIGNER), trust, profile=args.profile, rounds=args.rounds)


def run(
    key: signature.KeyMaterial, trust: Trust, *, profile: bool = False, rounds: int = 7
) -> None:
    messages = {
        "small signed status": signature.sign((DATA / "status_finish_06.edxml").read_bytes(), key),
        "edoc_new signed, attachment": signature.sign((DATA / "edoc_new.edxml").read_bytes(), key),
    }
    print(f"{'message':38} {'step':24} {'ops/s':>10} {'baseline ops/s':>15} {'ratio':>8}")
    for label, data in messages.items():
        sender = edxml.read(data).sender.organ_id or ""
        recipient = None
        found = edxml.read(data)
        if isinstance(found, edxml.Document):
            recipient = found.recipient_ids[0]
        provenance = Provenance(
            policy="require", trust=trust, binding=Binding({"O=Sở Y tế,C=VN": [sender]})
        )

        def intake(
            data: bytes = data,
            provenance: Provenance = provenance,
            sender: str = sender,
            recipient: str | None = recipient,
        ) -> None:
            inspection = inspect(
                xml.parse(data),
                provenance=provenance,
                axis_sender=sender,
                organ_id=recipient,
            )
            assert not inspection.problems, inspection.problems
            assert inspection.verdict.signature is not None

        floor = lambda data=data: raw_floor(data)  # noqa: E731
        floor_zip = lambda data=data: raw_floor(data, inflate=True)  # noqa: E731
        parse = lambda data=data: etree.fromstring(data)  # noqa: E731
        steps: dict[str, tuple[Callable[[], object], Callable[[], object], str]] = {
            "read+check+verify": (intake, floor, "raw floor"),
            "read+check+verify ": (intake, floor_zip, "raw floor + inflate"),
            "read": (lambda data=data: edxml.read(data), parse, "raw parse"),
            "check": (lambda data=data: validation.check(data), parse, "raw parse"),
            "verify": (lambda data=data: signature.verify(data, trust=trust), floor, "raw floor"),
        }
        size = f"{len(data) / 1024:.0f} KB"
        print(f"{label} ({size})")
        for step, (func, base, baseline_name) in steps.items():
            figure, baseline, ratio = paired(func, base, rounds)
            shown = f"{step.strip()} vs {baseline_name}"
            print(f"{'':38} {shown:24.24} {figure:10.1f} {baseline:15.1f} {ratio:7.2f}x")
            name = f"edxml.{label.split()[0]}.{step.strip()}"
            if baseline_name != "raw floor" and step.startswith("read+check"):
                name += ".inflate"
            baseline_of = {
                "raw floor": "bare lxml parse + C14N + SHA-256 + base64 decode + RSA verify",
                "raw floor + inflate": "the raw floor + reading the attachment's ZIP entry",
                "raw parse": "raw lxml etree.fromstring of the same bytes",
            }[baseline_name]
            print(
                shlex.join(
                    [
                        "RESULT",
                        f"name={name}",
                        f"label=edXML {step.strip()}, {label} ({size})",
                        f"figure={figure:.1f}",
                        "unit=ops/s",
                        f"baseline={baseline:.1f}",
                        f"baseline_of={baseline_of}",
                        f"ratio={ratio:.2f}",
                        "ratio_of=baselines per operation (median of paired rounds), lower is "
                        "better",
                    ]
                )
            )
        if isinstance(found, edxml.Document) and found.attachments:
            breakdown(data, found, provenance, floor, rounds)
        if profile and label.startswith("edoc"):
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(50):
                intake()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def breakdown(
    data: bytes,
    document: edxml.Document,
    provenance: Provenance,
    floor: Callable[[], object],
    rounds: int,
) -> None:
    """Where one intake's time goes: each part it runs, in raw floors, paired with the floor."""
    tree = xml.parse(data)
    root = tree.getroot()
    decoded = [a.data for a in document.attachments]
    sender = document.sender.organ_id or ""
    limit = validation.DEFAULT_ATTACHMENT_BYTES
    parts: dict[str, Callable[[], object]] = {
        "parse (hardened: size, DTD scan, lxml)": lambda: xml.parse(data),
        "read (the model, base64 decode)": lambda: edxml.read_root(root),
        "check (schema, rules, inflate)": lambda: validation.check_tree(tree, decoded=decoded),
        "  of which inflate + CRC-32": lambda: [a.check(limit) for a in document.attachments],
        "verify (C14N, digest, RSA, chain, CRLs, binding)": lambda: provenance.check(
            root, axis_sender=sender, document_sender=sender, type_name=document.type_name
        ),
    }
    print(f"{'':38} where one intake goes, in raw floors:")
    total = 0.0
    for name, func in parts.items():
        ratio = paired(func, floor, rounds)[2]
        if not name.startswith(" "):
            total += ratio
        print(f"{'':38} {name:50.50} {ratio:5.2f}")
    print(f"{'':38} {'sum of the parts':50} {total:5.2f}")


if __name__ == "__main__":
    main()
