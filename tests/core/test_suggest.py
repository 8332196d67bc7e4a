"""The one "Did you mean" and the one unknown-key message every check words its hint with."""

from __future__ import annotations

from lienthong.suggest import closest, did_you_mean, unknown_key


def test_closest_finds_the_nearest_names_best_first():
    known = ["poll_interval", "poll_threads", "batch_size"]
    assert closest("pol_interval", known) == ["poll_interval"]
    assert closest("poll_thread", known, n=2) == ["poll_threads", "poll_interval"]
    assert closest("zzz", known) == []


def test_within_also_finds_a_name_that_contains_a_short_one():
    adapters = ["folder", "accounting_soap", "memory"]
    assert closest("soap", adapters, cutoff=0.5) == []
    assert closest("soap", adapters, cutoff=0.5, within=True) == ["accounting_soap"]


def test_did_you_mean_follows_a_sentence_or_says_nothing():
    assert f"no endpoint named 'inbx'.{did_you_mean('inbx', {'inbox', 'outbox'})}" == (
        "no endpoint named 'inbx'. Did you mean 'inbox'?"
    )
    assert did_you_mean("inbx", []) == ""
    assert did_you_mean(
        "upper", ["examples/upper.xsl", "x/upper.xsl", "c.xsl"], n=3, cutoff=0.3
    ) == (
        " Did you mean 'x/upper.xsl', 'examples/upper.xsl'?"  # best first
    )
    assert did_you_mean(2, [1, 2.5, 3]) == ""  # non-strings compared as text, not an error
    assert did_you_mean("outt", ("in", "out")) == " Did you mean 'out'?"


def test_unknown_key_suggests_then_lists_every_known_key():
    known = ("cron", "interval", "poll")
    assert (
        unknown_key("crn", known) == "unknown key. Did you mean 'cron'? Known: cron, interval, poll"
    )
    assert unknown_key("zzz", known) == "unknown key. Known: cron, interval, poll"
    assert unknown_key("pth", [], "unknown option for adapter 'x'") == (
        "unknown option for adapter 'x'. Known: none"
    )
