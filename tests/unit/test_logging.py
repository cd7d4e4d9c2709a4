"""The log redaction filter: card-number-like text is masked, ids that merely contain digits are not."""

from __future__ import annotations

import logging

from kernel.logging import RedactingFilter, redact_text, redact_value


def test_grouped_and_plain_pans_are_masked_to_the_last_four():
    assert redact_text("card 4242 4242 4242 4242 ok") == "card [PAN ****4242] ok"
    assert redact_text("n=378282246310005;") == "n=[PAN ****0005];"
    assert redact_text("5555-5555-5555-4444") == "[PAN ****4444]"


def test_a_luhn_valid_pan_glued_to_letters_is_still_masked():
    assert redact_text("pan4242424242424242x") == "pan[PAN ****4242]x"


def test_digit_runs_inside_uuids_stay_traceable():
    message_id = "01ab74ee-b123-4567-8901-23184ca4f613"  # "123-4567-8901-23184" fails the Luhn check
    assert redact_text(f"sent {message_id}") == f"sent {message_id}"


def test_short_runs_and_amounts_are_left_alone():
    assert redact_text("amount 2500 USD, attempt 3 of 3, last4 4242") == "amount 2500 USD, attempt 3 of 3, last4 4242"


def test_card_field_keys_are_dropped_whatever_their_value():
    assert redact_value("cvc", "123") == "[redacted]"
    assert redact_value("card_number", "4242") == "[redacted]"
    assert redact_value("data", {"number": "1", "note": "4000 0000 0000 0002"}) == {
        "number": "[redacted]", "note": "[PAN ****0002]"}


def test_the_filter_masks_message_arguments():
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "got %s", ("4242424242424242",), None)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "got [PAN ****4242]"


def test_a_traceback_carrying_a_pan_is_masked_in_the_output():
    import io

    from kernel.logging import configure_logging

    out = io.StringIO()
    configure_logging("INFO", stream=out)
    try:
        try:
            raise ValueError("gateway refused 4242 4242 4242 4242")
        except ValueError:
            logging.getLogger("paygate.test").exception("unhandled error")
    finally:
        configure_logging("INFO")
    text = out.getvalue()
    assert "ValueError" in text and "[PAN ****4242]" in text
    assert "4242 4242 4242 4242" not in text and "4242424242424242" not in text
