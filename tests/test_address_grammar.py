"""The envelope address grammar at its edges: RFC 5321 §4.1.2/§4.1.3, its limits
(§4.5.3.1) and RFC 6531's UTF-8 addresses.

Every verdict of ``check_address`` is compared with an oracle written here from the
RFC's ABNF, independently of the module's regular expressions: a recursive-descent
reader for the mailbox, and the IPv6 forms transcribed one ABNF rule per pattern.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import smtpx
import smtpx._address
from smtpx._address import check_address, check_parameter, needs_smtputf8, text_arg

# -- the oracle -------------------------------------------------------------------------

ALPHA = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
DIGIT = set("0123456789")
ATEXT_ASCII = ALPHA | DIGIT | set("!#$%&'*+-/=?^_`{|}~")  # RFC 5322 §3.2.3


def non_ascii_text(char: str) -> bool:
    """RFC 6531 UTF8-non-ascii, as smtpx admits it: printable, never U+FFFD."""
    return ord(char) > 127 and char.isprintable() and char != "\ufffd"


def is_atext(char: str) -> bool:
    return char in ATEXT_ASCII or non_ascii_text(char)


def is_qtext(char: str) -> bool:  # qtextSMTP: %d32-33 / %d35-91 / %d93-126, RFC 6531 adds
    code = ord(char)
    return 32 <= code <= 33 or 35 <= code <= 91 or 93 <= code <= 126 or non_ascii_text(char)


def is_let_dig(char: str) -> bool:
    return char in ALPHA or char in DIGIT or non_ascii_text(char)


class Reader:
    """Recursive descent over one string; each rule returns whether it matched."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self, wanted: str) -> bool:
        if self.text.startswith(wanted, self.at):
            self.at += len(wanted)
            return True
        return False

    def atom(self) -> bool:  # Atom = 1*atext
        start = self.at
        while self.peek() and is_atext(self.peek()):
            self.at += 1
        return self.at > start

    def dot_string(self) -> bool:  # Dot-string = Atom *("." Atom)
        if not self.atom():
            return False
        while self.take("."):
            if not self.atom():
                return False
        return True

    def quoted_string(self) -> bool:  # DQUOTE *QcontentSMTP DQUOTE
        if not self.take('"'):
            return False
        while True:
            char = self.peek()
            if char == '"':
                self.at += 1
                return True
            if char == "\\":
                self.at += 1
                escaped = self.peek()
                if not escaped or not 32 <= ord(escaped) <= 126:
                    return False
                self.at += 1
            elif char and is_qtext(char):
                self.at += 1
            else:
                return False

    def sub_domain(self) -> bool:  # Let-dig [Ldh-str]; Ldh-str ends with a Let-dig
        if not (self.peek() and is_let_dig(self.peek())):
            return False
        self.at += 1
        while self.peek() and (is_let_dig(self.peek()) or self.peek() == "-"):
            self.at += 1
        return self.text[self.at - 1] != "-"

    def domain(self) -> bool:
        if not self.sub_domain():
            return False
        while self.take("."):
            if not self.sub_domain():
                return False
        return True


SNUM = r"(?:[0-9]{1,3})"  # 1*3DIGIT; the value 0-255 is checked after matching
IPV4 = rf"{SNUM}\.{SNUM}\.{SNUM}\.{SNUM}"
H = r"[0-9A-Fa-f]{1,4}"
IPV6_FORMS = [  # RFC 5321 §4.1.3, one rule each, with its "no more than N groups" note
    (re.compile(rf"{H}(?::{H}){{7}}"), 8),  # IPv6-full
    (re.compile(rf"(?:{H}(?::{H}){{0,5}})?::(?:{H}(?::{H}){{0,5}})?"), 6),  # IPv6-comp
    (re.compile(rf"{H}(?::{H}){{5}}:{IPV4}"), 6),  # IPv6v4-full
    (re.compile(rf"(?:{H}(?::{H}){{0,3}})?::(?:{H}(?::{H}){{0,3}}:)?{IPV4}"), 4),  # v4-comp
]


def ipv4_ok(text: str) -> bool:
    return re.fullmatch(IPV4, text) is not None and all(int(n) <= 255 for n in text.split("."))


def ipv6_ok(text: str) -> bool:
    for form, most in IPV6_FORMS:
        if form.fullmatch(text):
            head = text.rsplit(":", 1)[0] + ":" if "." in text else text
            groups = [g for g in head.replace("::", ":").split(":") if g]
            if len(groups) <= most and ("." not in text or ipv4_ok(text.rsplit(":", 1)[1])):
                return True
    return False


def literal_ok(content: str) -> bool:
    if ipv4_ok(content):
        return True
    if content[:5].lower() == "ipv6:":
        return ipv6_ok(content[5:])
    tag, _, rest = content.partition(":")
    tag_ok = bool(tag) and all(c in ALPHA | DIGIT | {"-"} for c in tag) and tag[-1] != "-"
    dcontent = all(33 <= ord(c) <= 90 or 94 <= ord(c) <= 126 for c in rest)
    return ":" in content and tag_ok and bool(rest) and dcontent


def oracle(address: str) -> bool:
    """Whether ``address`` is an RFC 5321 Mailbox that fits in a 256-octet path."""
    reader = Reader(address)
    if not (reader.quoted_string() if reader.peek() == '"' else reader.dot_string()):
        return False
    local = address[: reader.at]
    if not reader.take("@"):
        return False
    domain = address[reader.at :]
    if domain.startswith("["):
        if not (domain.endswith("]") and literal_ok(domain[1:-1])):
            return False
    elif not (reader.domain() and reader.at == len(address)):
        return False
    octets = len(address.encode())
    return len(local.encode()) <= 64 and len(domain.encode()) <= 255 and octets + 2 <= 256


def accepted(address: str) -> bool:
    try:
        check_address(address, role="recipient")
    except smtpx.InvalidEnvelope:
        return False
    return True


# -- tables -----------------------------------------------------------------------------

D = "example.com"
VALID = [
    "a@b",
    "a.b@example.com",
    "!#$%&'*+-/=?^_`{|}~@example.com",  # every atext special
    "0@0",
    '""@example.com',  # *QcontentSMTP: empty is a quoted string
    '"a b"@example.com',
    '"a..b"@example.com',
    '".a"@example.com',
    '"a@b"@example.com',
    '"a@[x"@[192.0.2.1]',  # an "@" in the quoted local part
    "a@[tag:b@c]",  # and in a general literal: dcontent includes it
    '"a\\"b"@example.com',  # escaped quote
    '"a\\\\b"@example.com',  # escaped backslash
    '"\\ \\~"@example.com',  # quoted-pair: %d32-126, first and last
    '" !#[]~"@example.com',  # qtextSMTP's edges
    "a@[127.0.0.1]",
    "a@[0.0.0.0]",
    "a@[255.255.255.255]",
    "a@[001.02.3.099]",  # 1*3DIGIT: leading zeros are digits
    "a@[IPv6:::1]",
    "a@[ipv6:::]",  # ABNF strings are case-insensitive
    "a@[IPv6:2001:db8::1]",
    "a@[IPv6:1:2:3:4:5:6:7:8]",
    "a@[IPv6:1:2:3:4:5:6::]",  # six groups beside "::"
    "a@[IPv6:::1:2:3:4:5:6]",
    "a@[IPv6:ABCD:ef01::]",
    "a@[IPv6:::ffff:192.0.2.1]",
    "a@[IPv6:1:2:3:4:5:6:192.0.2.1]",
    "a@[IPv6:1:2:3:4::192.0.2.1]",  # four beside "::" and the IPv4 part
    "a@[IPv6:::192.0.2.1]",
    "a@[x-400:c=us;a=x]",  # General-address-literal
    "a@[tag:!Z^~]",  # dcontent's edges
    "a@[-tag:x]",  # Standardized-tag = Ldh-str = *(ALPHA / DIGIT / "-") Let-dig
    "a@a-b.c",
    "a@a--b.c",
    "a@1.2.3.4",  # a domain may be all digits
    "jörg@example.com",  # RFC 6531
    "用户@例子.广告",
    '"jörg x"@example.com',
    "a@bücher.de",
    "\U0001f600@example.com",
]
INVALID = [
    "",
    "a",
    "@example.com",
    "a@",
    "a@@b",
    "a..b@example.com",  # empty atom
    ".a@example.com",
    "a.@example.com",
    "a b@example.com",
    "a(b)@example.com",
    "a,b@example.com",
    "a[b@example.com",
    "a\\b@example.com",
    'a"b@example.com',
    '"a@example.com',
    '"a"b@example.com',
    '"a\\"@example.com',  # the escape eats the closing quote
    '"\\é"@example.com',  # quoted-pairSMTP is ASCII only
    "a@-b.c",
    "a@b-.c",
    "a@b.-c",
    "a@b..c",
    "a@.b",
    "a@b.",
    "a@b_c",
    "a@b c",
    "<a@example.com>",
    "<a@example.com",
    "a@example.com>",
    "a@[]",
    "a@[127.0.0.1",
    "a@127.0.0.1]",
    "a@[256.0.0.1]",
    "a@[1.2.3]",
    "a@[1.2.3.4.5]",
    "a@[1234.1.1.1]",
    "a@[foo]",
    "a@[IPv6:]",
    "a@[IPv6:1]",
    "a@[IPv6:1:2:3:4:5:6:7]",
    "a@[IPv6:1:2:3:4:5:6:7:8:9]",
    "a@[IPv6:1:2:3:4:5:6:7::]",  # seven beside "::"
    "a@[IPv6:::1:2:3:4:5:6:7]",
    "a@[IPv6:1::2::3]",
    "a@[IPv6:12345::]",
    "a@[IPv6:g::]",
    "a@[IPv6:1:::2]",
    "a@[IPv6::1]",
    "a@[IPv6:1:]",
    "a@[IPv6:1:2:3:4:5::192.0.2.1]",  # five beside "::" and IPv4
    "a@[IPv6:1:2:3:4:5:6:7:192.0.2.1]",
    "a@[IPv6:1:2:3:4:5:192.0.2.1]",
    "a@[IPv6:::256.0.0.1]",
    "a@[IPv6:192.0.2.1::]",
    "a@[IPv6:fe80::1%eth0]",  # no zone index in an address literal
    "a@[tag-:x]",
    "a@[tag:]",
    "a@[:x]",
    "a@[tag:a[b]",
    "a@[tag:a\\b]",
    "a@[tag:a b]",
    "a@[tag:é]",  # dcontent is ASCII
    "a@[127.0.0.1]x",
]

HOSTILE = [chr(c) for c in [*range(0x20), 0x7F, 0x85, 0xA0, 0xAD, 0x200B, 0x200E]] + [
    "\u2028",
    "\u2029",
    "\u202e",
    "\u2060",
    "\ufeff",
    "\ufffd",
    "\udc80",
    "\ue000",
]


@pytest.mark.parametrize("address", VALID)
def test_valid_addresses_are_accepted(address: str) -> None:
    assert oracle(address)
    assert check_address(address, role="recipient") == address


@pytest.mark.parametrize("address", INVALID)
def test_invalid_addresses_are_refused(address: str) -> None:
    assert not oracle(address)
    with pytest.raises(smtpx.InvalidEnvelope):
        check_address(address, role="recipient")


@pytest.mark.parametrize("char", HOSTILE, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(
    "template",
    [
        "a{}b@example.com",
        '"a{}b"@example.com',
        '"a\\{}"@example.com',
        "a@[127.0.0.1{}]",
        "a@[IPv6:::1{}]",
        "a@[tag:x{}y]",
        "a@exa{}mple.com",
    ],
)
def test_control_format_and_separator_characters_are_refused_everywhere(
    template: str, char: str
) -> None:
    address = template.format(char)
    assert not oracle(address)
    with pytest.raises(smtpx.InvalidEnvelope) as raised:
        check_address(address, role="sender")
    assert "sender" in str(raised.value)


@pytest.mark.parametrize(
    "address", ['"grammar\r\nRCPT TO:<x>"@example.com', "grammar@[127.0.0.1\r\n]"]
)
def test_the_grammar_alone_refuses_cr_and_lf(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    # Two guards: with the printable check disabled, the grammar still refuses a line
    # break in a quoted string or an address literal.
    monkeypatch.setattr(smtpx._address, "unprintable", lambda text: None)
    with pytest.raises(smtpx.InvalidEnvelope, match=r"invalid (local part|domain)"):
        check_address(address, role="recipient")


# -- limits (RFC 5321 §4.5.3.1) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "ok"),
    [
        ("a" * 63, True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("é" * 32, True),  # 64 octets in UTF-8
        ("é" * 32 + "a", False),  # 65 octets, 33 characters
        ('"' + "a" * 62 + '"', True),  # the quotes count
        ('"' + "a" * 63 + '"', False),
    ],
)
def test_local_part_limit_is_64_octets(local: str, ok: bool) -> None:
    address = f"{local}@example.com"
    assert oracle(address) is ok
    if ok:
        assert check_address(address, role="recipient") == address
    else:
        with pytest.raises(smtpx.InvalidEnvelope, match="local part is over 64 octets"):
            check_address(address, role="recipient")


def domain_of(octets: int) -> str:
    """A domain of exactly ``octets`` octets, in labels of at most 63."""
    labels, left = [], octets
    while left > 0:
        size = min(63, left if left <= 63 else left - 2)
        labels.append("d" * size)
        left -= size + 1
    domain = ".".join(labels)
    assert len(domain) == octets
    return domain


@pytest.mark.parametrize(("path", "ok"), [(254, True), (255, True), (256, True), (257, False)])
def test_path_limit_is_256_octets_with_the_brackets(path: int, ok: bool) -> None:
    address = "a@" + domain_of(path - 4)
    assert len(f"<{address}>".encode()) == path
    assert oracle(address) is ok
    if ok:
        assert check_address(address, role="recipient") == address
    else:
        with pytest.raises(smtpx.InvalidEnvelope, match="address is over 254 octets"):
            check_address(address, role="recipient")


@pytest.mark.parametrize(("octets", "ok"), [(255, True), (256, False)])
def test_domain_limit_is_255_octets(octets: int, ok: bool) -> None:
    # The path limit refuses both; the message says which rule did.
    with pytest.raises(smtpx.InvalidEnvelope) as raised:
        check_address("a@" + domain_of(octets), role="recipient")
    said_domain = "domain is over 255 octets" in str(raised.value)
    assert said_domain is not ok


def test_a_utf8_path_counts_octets_not_characters() -> None:
    local = "é" * 30  # 60 octets
    domain = domain_of(190) + ".é"  # 193 octets, 192 characters
    address = f"{local}@{domain}"
    assert len(address.encode()) == 254
    assert check_address(address, role="recipient") == address
    with pytest.raises(smtpx.InvalidEnvelope, match="over 254 octets"):
        check_address("a" + address, role="recipient")


# -- properties against the oracle ------------------------------------------------------

ATEXT = st.sampled_from(sorted(ATEXT_ASCII))
UTF8_CHAR = st.characters(min_codepoint=0x80).filter(non_ascii_text)
ATOM = st.text(st.one_of(ATEXT, UTF8_CHAR), min_size=1, max_size=8)
ASCII_ATOM = st.text(ATEXT, min_size=1, max_size=8)
DOT_STRING = st.lists(ASCII_ATOM, min_size=1, max_size=4).map(".".join)
UTF8_LOCAL = st.lists(ATOM, min_size=1, max_size=4).map(".".join)
QCONTENT = st.one_of(
    st.characters(min_codepoint=32, max_codepoint=126).filter(lambda c: c not in '"\\'),
    UTF8_CHAR,
    st.characters(min_codepoint=32, max_codepoint=126).map(lambda c: "\\" + c),
)
QUOTED = st.lists(QCONTENT, max_size=10).map(lambda parts: '"' + "".join(parts) + '"')
LABEL = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", fullmatch=True)
DOMAIN = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
OCTET = st.integers(0, 255).map(str)
IPV4_LITERAL = st.lists(OCTET, min_size=4, max_size=4).map(".".join)
HEX_GROUP = st.integers(0, 0xFFFF).map(lambda n: f"{n:x}")


@st.composite
def ipv6_literal(draw: st.DrawFn) -> str:
    with_v4 = draw(st.booleans())
    width = 6 if with_v4 else 8
    groups = draw(st.lists(HEX_GROUP, min_size=width, max_size=width))
    if draw(st.booleans()):  # compress a run of at least two groups (RFC 5321's "::")
        start = draw(st.integers(0, width - 2))
        stop = draw(st.integers(start + 2, width))
        text = ":".join(groups[:start]) + "::" + ":".join(groups[stop:])
    else:
        text = ":".join(groups)
    if with_v4:
        text += ("" if text.endswith("::") else ":") + draw(IPV4_LITERAL)
    return "IPv6:" + text


GENERAL_LITERAL = st.builds(
    lambda tag, content: f"{tag}:{content}",
    st.from_regex(r"[a-zA-Z0-9-]{0,5}[a-zA-Z0-9]", fullmatch=True).filter(
        lambda tag: tag.lower() != "ipv6"
    ),
    st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="[\\]"),
        min_size=1,
        max_size=10,
    ),
)
LITERAL = st.one_of(IPV4_LITERAL, ipv6_literal(), GENERAL_LITERAL).map(lambda c: f"[{c}]")
VALID_ADDRESS = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.one_of(DOT_STRING, QUOTED, UTF8_LOCAL),
    st.one_of(DOMAIN, LITERAL),
)


@given(VALID_ADDRESS)
@example('"\\\\"@[IPv6:::]')
def test_generated_valid_addresses_are_accepted(address: str) -> None:
    assert oracle(address)
    assert check_address(address, role="recipient") == address
    assert needs_smtputf8(address) is not address.isascii()


@given(VALID_ADDRESS, st.data())
def test_one_character_changed_the_code_agrees_with_the_oracle(
    address: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, len(address)))
    char = data.draw(
        st.one_of(
            st.sampled_from(HOSTILE),
            st.sampled_from('@.-"\\[]:<> ()'),
            st.characters(codec="utf-8"),
        )
    )
    how = data.draw(st.sampled_from(["insert", "replace", "delete"]))
    if how == "insert":
        changed = address[:at] + char + address[at:]
    elif how == "replace":
        changed = address[:at] + char + address[at + 1 :]
    else:
        changed = address[:at] + address[at + 1 :]
    assert accepted(changed) is oracle(changed)


@given(st.text(st.sampled_from('ab."\\@[]:-1 é\r\n\x00'), max_size=20))
def test_near_miss_noise_agrees_with_the_oracle(text: str) -> None:
    assert accepted(text) is oracle(text)


# -- ESMTP parameters (RFC 5321 §4.1.2 esmtp-param) --------------------------------------


@pytest.mark.parametrize(
    "parameter",
    ["SIZE=1000", "BODY=8BITMIME", "SMTPUTF8", "X-A", "9", "A=!", "A=~", "A=<>", "A=a"],
)
def test_well_formed_parameters_pass(parameter: str) -> None:
    assert check_parameter(parameter) == parameter


@pytest.mark.parametrize(
    "parameter",
    ["", "SIZE=", "-X", "=1", "SIZE =1", "SIZE=1 2", "A==", "A=a=b", "A=é", "A=\x7f", "É"],
)
def test_malformed_parameters_are_refused(parameter: str) -> None:
    with pytest.raises(smtpx.InvalidEnvelope, match="invalid ESMTP parameter"):
        check_parameter(parameter)


def test_text_arguments_must_be_str() -> None:
    with pytest.raises(smtpx.InvalidEnvelope, match="the argument must be a str, not int"):
        text_arg(5)  # type: ignore[arg-type]
    assert text_arg("ü") == "ü".encode()
