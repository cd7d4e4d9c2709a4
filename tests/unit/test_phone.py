"""kernel.phone.caller_number: Genesys's Call.Ani forms to E.164, everything else to None."""

from __future__ import annotations

import pytest

from kernel.phone import MAX_INPUT_LENGTH, caller_number

SAME_CALLER = [
    "+13175550100",
    "tel:+13175550100",
    "tel: +13175550100",                              # as Genesys's help prints Call.Ani
    "TEL:+13175550100",
    " tel:+13175550100 ",
    "sip:+13175550100@host;user=phone",
    "sip:+13175550100@10.87.26.159;user=phone",       # an agent leg's ani in a conversation payload
    "sip:+13175550100@host:5060",
    "sip:+13175550100@host:5060;transport=tcp",
    "sips:+13175550100@host",
    "sip:%2B13175550100@host",
    "<sip:+13175550100@host;user=phone>",
    "+1 317 555 0100",
    "+1 (317) 555-0100",
    "+1.317.555.0100",
    "tel:+1-317-555-0100",
    "tel:+1-317-555-0100;ext=42",
    "tel:+13175550100;phone-context=example.com",
    "sip:+1-317-555-0100;postd=pp22@host;user=phone",
]


@pytest.mark.parametrize("raw", SAME_CALLER)
def test_every_genesys_form_of_one_number_is_the_same_e164(raw):
    assert caller_number(raw) == "+13175550100"


@pytest.mark.parametrize("raw, expected", [
    ("tel:+491604697810", "+491604697810"),                  # an AudioHook open message's ani
    ("+44 20 7946 0958", "+442079460958"),
    ("+15551234567", "+15551234567"),                       # possible, if not in an assigned range
    ("sip:+81312345678@pbx.example.jp", "+81312345678"),
])
def test_other_countries_and_fictional_ranges(raw, expected):
    assert caller_number(raw) == expected


@pytest.mark.parametrize("raw", [
    None, 13175550100, b"+13175550100", ["+13175550100"], "", "   ", "tel:", "sip:", "sip:@host",
    "3175550100",                                   # national: no region is guessed
    "13175550100",
    "tel:3175550100;phone-context=+1",
    "sip:3175550100@host",
    "+1-800-FLOWERS",                               # letters are not digits here
    "sip:anonymous@anonymous.invalid",
    "sip:0b2c7a43-5cbf-4a6b-8d1f-2f8b5f0b3c1e@127.0.0.1;language=en-US;user=ivr",
    "sip:+13175550100",                             # a SIP URI needs its host
    "mailto:+13175550100",
    "+0551234567",                                  # no country code starts with 0
    "+999123456789",                                # no such country code
    "+1317555010",                                  # too short for +1
    "+1555123456789012",                            # longer than E.164 allows
    "+12",
    "+13175550100x",
    "++13175550100",
    "+1 317 555 0100" + " " * MAX_INPUT_LENGTH,
])
def test_what_is_not_a_caller_number_is_none(raw):
    assert caller_number(raw) is None
