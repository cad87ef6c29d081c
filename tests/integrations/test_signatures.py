"""Signature verification of every platform, against vectors computed from their published algorithms."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations import signing
from integrations.adapters import adapter_for
from tests.integrations import factories as f

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
BODY = b'{"id":820982911946154508,"email":"jon@example.com","total_price":"199.00"}'


def headers(**values: str) -> dict[str, str]:
    return {name.lower().replace("_", "-"): value for name, value in values.items()}


# ---------------------------------------------------------------- fixed vectors


def test_shopify_vector_base64_hmac_of_the_raw_body() -> None:
    expected = base64.b64encode(hmac.new(b"hush", BODY, hashlib.sha256).digest()).decode()
    assert signing.base64_hmac(b"hush", BODY) == expected
    shopify = adapter_for("shopify")
    assert shopify.verify(headers(x_shopify_hmac_sha256=expected), BODY, [b"hush"], NOW)
    assert shopify.verify(headers(shopify_hmac_sha256=expected), BODY, [b"hush"], NOW)
    assert not shopify.verify(headers(x_shopify_hmac_sha256=expected), BODY + b" ", [b"hush"], NOW)
    assert not shopify.verify(headers(x_shopify_hmac_sha256=expected), BODY, [b"wrong"], NOW)
    assert not shopify.verify({}, BODY, [b"hush"], NOW)


def test_woocommerce_verifies_the_php_escaped_bytes_not_re_serialised_json() -> None:
    php_body = b'{"id":812,"permalink":"https:\\/\\/shop.example\\/?p=812","name":"\\u5f71\\u97f3"}'
    signature = base64.b64encode(hmac.new(b"woo", php_body, hashlib.sha256).digest()).decode()
    woo = adapter_for("woocommerce")
    assert woo.verify(headers(x_wc_webhook_signature=signature), php_body, [b"woo"], NOW)
    reserialised = (
        b'{"id": 812, "permalink": "https://shop.example/?p=812", "name": "\xe5\xbd\xb1\xe9\x9f\xb3"}'
    )
    assert not woo.verify(headers(x_wc_webhook_signature=signature), reserialised, [b"woo"], NOW)


def test_stripe_vector_hex_hmac_of_timestamp_dot_body_with_the_whole_whsec_secret() -> None:
    secret = b"whsec_test_secret"
    v1 = hmac.new(secret, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    stripe = adapter_for("stripe")
    assert stripe.verify(headers(stripe_signature=f"t={NOW},v1={v1}"), BODY, [secret], NOW)
    without_prefix = hmac.new(b"test_secret", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert not stripe.verify(headers(stripe_signature=f"t={NOW},v1={without_prefix}"), BODY, [secret], NOW)


def test_stripe_accepts_any_matching_v1_during_its_own_rotation() -> None:
    header = f.stripe_header("whsec_new", BODY, NOW, extra=["0" * 64])
    assert adapter_for("stripe").verify(headers(stripe_signature=header), BODY, [b"whsec_new"], NOW)


def test_stripe_refuses_a_timestamp_older_than_300_seconds() -> None:
    stripe = adapter_for("stripe")
    old = f.stripe_header("whsec_x", BODY, NOW - 301)
    fresh = f.stripe_header("whsec_x", BODY, NOW - 299)
    assert not stripe.verify(headers(stripe_signature=old), BODY, [b"whsec_x"], NOW)
    assert stripe.verify(headers(stripe_signature=fresh), BODY, [b"whsec_x"], NOW)


def test_our_generic_scheme_is_stripes_under_the_quanyi_signature_header() -> None:
    header = signing.sign_timestamped(b"qsec_1", BODY, NOW)
    assert (
        header == f"t={NOW},v1=" + hmac.new(b"qsec_1", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    )
    generic = adapter_for("generic")
    assert generic.verify(headers(quanyi_signature=header), BODY, [b"qsec_1"], NOW)
    assert not generic.verify(headers(stripe_signature=header), BODY, [b"qsec_1"], NOW)


def test_a_rotated_secret_verifies_with_either_secret_given() -> None:
    old, new = b"old-secret", b"new-secret"
    for secret in (old, new):
        signature = signing.base64_hmac(secret, BODY)
        assert signing.verify_base64_hmac([new, old], BODY, signature)
    assert not signing.verify_base64_hmac([new], BODY, signing.base64_hmac(old, BODY))


def test_malformed_signature_headers_are_refused() -> None:
    for header in ("", "t=,v1=", "v1=abc", f"t={NOW}", f"t=abc,v1={'0' * 64}", "garbage"):
        assert not signing.verify_timestamped([b"s"], BODY, header, NOW), header


# ---------------------------------------------------------------- properties: any tampering is refused


bodies = st.binary(min_size=0, max_size=512)
secrets = st.binary(min_size=8, max_size=64)


@settings(max_examples=200, deadline=None)
@given(secret=secrets, body=bodies, data=st.data())
def test_any_change_to_the_body_breaks_the_base64_signature(
    secret: bytes, body: bytes, data: st.DataObject
) -> None:
    signature = signing.base64_hmac(secret, body)
    tampered = data.draw(bodies.filter(lambda other: other != body))
    assert signing.verify_base64_hmac([secret], body, signature)
    assert not signing.verify_base64_hmac([secret], tampered, signature)


@settings(max_examples=200, deadline=None)
@given(
    secret=secrets,
    body=bodies,
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_change_to_the_signature_is_refused(secret: bytes, body: bytes, position: int, flip: int) -> None:
    header = signing.sign_timestamped(secret, body, NOW)
    raw = bytearray(header.encode())
    start = header.index("v1=") + 3
    index = start + position % (len(raw) - start)
    raw[index] = raw[index] ^ flip
    assert signing.verify_timestamped([secret], body, header, NOW)
    try:
        forged = raw.decode()
    except UnicodeDecodeError:
        return
    assert not signing.verify_timestamped([secret], body, forged, NOW)


@settings(max_examples=200, deadline=None)
@given(secret=secrets, other=secrets, body=bodies, skew=st.integers(min_value=-300, max_value=300))
def test_a_wrong_secret_never_verifies(secret: bytes, other: bytes, body: bytes, skew: int) -> None:
    header = signing.sign_timestamped(other, body, NOW + skew)
    assert signing.verify_timestamped([secret], body, header, NOW) == (secret == other)


@settings(max_examples=100, deadline=None)
@given(secret=secrets, body=bodies, age=st.integers(min_value=301, max_value=10**7))
def test_a_signature_older_or_newer_than_the_tolerance_is_refused(
    secret: bytes, body: bytes, age: int
) -> None:
    assert not signing.verify_timestamped(
        [secret], body, signing.sign_timestamped(secret, body, NOW - age), NOW
    )
    assert not signing.verify_timestamped(
        [secret], body, signing.sign_timestamped(secret, body, NOW + age), NOW
    )
