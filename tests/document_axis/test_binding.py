"""Signer binding: certificate subject patterns tied to the agency codes their holders sign for."""

from __future__ import annotations

import unicodedata

import pytest

from lienthong.errors import ConfigError, RejectedError
from lienthong.plugins.document_axis.binding import Binding
from lienthong.plugins.document_axis.sandbox_ca import SandboxCA

UBND, SYT, STC = "000.00.00.H15", "000.00.15.H15", "000.00.01.H15"


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA(intermediate=None)


def cert(ca: SandboxCA, subject: str):
    return ca.issue(subject).certificate


def test_an_organisation_pattern_covers_its_holders_and_only_them(ca) -> None:
    binding = Binding({"O=Sở Y tế,C=VN": [SYT], "O=UBND tỉnh Đắk Lắk,C=VN": UBND})
    clerk = cert(ca, "CN=Văn thư,OU=Văn phòng,O=Sở Y tế,L=Đắk Lắk,C=VN")
    assert binding.agencies(clerk) == {SYT}
    binding.check(clerk, SYT)
    assert binding.agencies(cert(ca, "CN=Văn thư,O=Sở Y tế")) == set()  # no C=VN: not covered
    assert binding.agencies(cert(ca, "CN=Chủ tịch,O=UBND tỉnh Đắk Lắk,C=VN")) == {UBND}


def test_one_agencys_signer_cannot_sign_for_another(ca) -> None:
    """Attack (c): a clerk of Sở Y tế signs a document whose sender is the province."""
    binding = Binding({"O=Sở Y tế,C=VN": [SYT]})
    clerk = cert(ca, "CN=Văn thư,O=Sở Y tế,C=VN")
    with pytest.raises(RejectedError, match=rf"signs for {SYT}, not for the sender '{UBND}'"):
        binding.check(clerk, UBND)
    with pytest.raises(RejectedError, match="is bound to no agency.*add its subject"):
        binding.check(cert(ca, "CN=Someone,O=Sở Xây dựng,C=VN"), SYT)


def test_a_person_may_sign_for_several_agencies_and_patterns_add_up(ca) -> None:
    binding = Binding(
        {"CN=Nguyễn Văn A,O=Sở Tài chính,C=VN": [STC, UBND], "O=Sở Tài chính,C=VN": [STC]}
    )
    assert binding.agencies(cert(ca, "CN=Nguyễn Văn A,O=Sở Tài chính,C=VN")) == {STC, UBND}
    assert binding.agencies(cert(ca, "CN=Trần Thị B,O=Sở Tài chính,C=VN")) == {STC}


def test_values_compare_after_nfc_case_and_spacing(ca) -> None:
    decomposed = unicodedata.normalize("NFD", "Sở Y tế")
    binding = Binding({f"O={decomposed.upper()},C=vn": [SYT]})
    assert binding.agencies(cert(ca, "CN=Văn thư,O=Sở  Y tế,C=VN")) == {SYT}


def test_star_lets_a_pattern_sign_for_any_agency(ca) -> None:
    Binding({"C=VN": ["*"]}).check(cert(ca, "CN=Ai đó,C=VN"), UBND)


def test_bad_entries_are_config_errors_all_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Binding({"not a pattern": [SYT], "O=Sở Y tế": [], "O=Sở Tài chính": {"a": 1}})
    text = str(caught.value)
    assert "3 configuration problems" in text
    assert "'not a pattern' is not a subject pattern. Hint: write it as RFC 4514" in text
    assert "'O=Sở Y tế' needs a list of agency codes" in text
