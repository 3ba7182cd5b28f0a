# Long on purpose (~700 lines): one data table of rules, read top to bottom; order matters.
"""The rules behind ``explain``: what real servers' replies say, and where that is documented.

Read top to bottom; the first rule that matches decides.  Order matters where
phrases overlap: the most specific statements come first (a DMARC failure, a
DNS blocklist, a full mailbox), then what the enhanced code says, then what
the command implies, then weak generic phrases, then the bare code.

Phrases are our own regular expressions over the reply text in lower case with
runs of white space collapsed; they name the words providers document in their
reply texts, never one server's exact sentence.
"""

from __future__ import annotations

import re

from smtpx._commands import Command
from smtpx._reasons import Reason, ReasonRule

__all__ = ["RULES"]

R = Reason
ANY = range(400, 600)
TEMP = range(400, 500)
PERM = range(500, 600)

_BEFORE_MAIL = frozenset({Command.CONNECT, Command.EHLO, Command.HELO})


def said(
    reason: Reason,
    source: str,
    *phrases: str,
    codes: range = ANY,
    commands: frozenset[Command] | None = None,
    unless: frozenset[Command] = frozenset(),
) -> ReasonRule:
    """The reply's text contains one of ``phrases`` (regular expressions)."""
    text = re.compile("|".join(phrases))
    return ReasonRule(reason, source, text=text, codes=codes, commands=commands, unless=unless)


def coded(
    reason: Reason,
    source: str,
    subject: int,
    first: int,
    last: int | None = None,
    codes: range = ANY,
    refines: bool = True,
) -> ReasonRule:
    """The enhanced code is ``X.subject.first`` (to ``X.subject.last``)."""
    enhanced = (subject, first, first if last is None else last)
    return ReasonRule(reason, source, enhanced=enhanced, codes=codes, refines=refines)


def implied(
    reason: Reason, source: str, *, codes: range = ANY, commands: frozenset[Command] | None = None
) -> ReasonRule:
    """Nothing in the reply says why; the command or the code makes ``reason`` likely."""
    return ReasonRule(reason, source, codes=codes, commands=commands, refines=False)


def code(reason: Reason, source: str, *numbers: int) -> ReasonRule:
    """The basic code alone (RFC 5321 §4.2.3 and the registries), as a last resort."""
    first, last = min(numbers), max(numbers)
    assert last - first + 1 == len(numbers), numbers  # a contiguous run
    return ReasonRule(reason, source, codes=range(first, last + 1), refines=False)


# Words for "does not exist" / "is disabled" near the thing it is said of: within one
# clause (a "." only inside a token such as an address or a host name).
_NOT_EXIST = r"(?:does not|doesn't|did not|do not|not) exists?"
_ADDRESS = r"(?:user|mailbox|recipient|account|address|addressee|local[- ]part|e-?mail)"
_CLAUSE = r"(?:[^.;:]|\.(?=\S)){0,60}?"
_MAIL = frozenset({Command.MAIL})

# Said of a domain or host: at MAIL FROM that is the sender's, elsewhere the recipient's.
_NO_SUCH_DOMAIN = (
    r"host (?:or domain name )?(?:unknown|not found)",
    r"unknown (?:host|domain)",
    r"domain (?:name )?(?:is )?(?:not found|unknown|not reachable|could not be found|invalid"
    r"|does not exist|doesn't exist|not exist)",
    r"no such (?:domain|host)",
    rf"(?:domain|host)\b{_CLAUSE}\b(?:does not|doesn't) exist",
    r"(?<![@\w.-])[a-z0-9-]+(?:\.[a-z0-9-]+)+ (?:does not|doesn't) exist",
    r"invalid (?:recipient )?domain",
    r"unroute?able domain",
    r"no (?:mx|mail exchanger)",
    r"mx (?:record )?(?:not found|lookup failed)",
    r"not reachable",
    r"unable to route",
)
# Said of a mailbox: at MAIL FROM that is the sender's, elsewhere the recipient's.
_NO_SUCH_USER = (
    r"user unknown",
    r"unknown (?:user|recipient|mail ?box|address|local[- ]part|account|alias)",
    rf"{_ADDRESS} (?:is )?unknown",
    r"no such (?:user|recipient|mail ?box|account|address|local user|person|alias)",
    rf"{_ADDRESS}\b{_CLAUSE}\b{_NOT_EXIST}",
    rf"{_ADDRESS} (?:was )?not found",
    r"not found in (?:the )?(?:directory|ldap|recipient|address|user)",
    r"recip(?:ient)?notfound",
    r"invalid (?:recipient|mail ?box|user|address|destination)",
    r"illegal (?:user|alias|recipient|address)",
    r"unknown or illegal",
    r"bad destination (?:mail ?box|address)",
    r"no mail ?box here",
    r"not a valid (?:user|mail ?box|recipient|address)",
    r"unroute?able address",
    r"(?:does not|doesn't) have an? (?:\S+ )?account",
)

RULES: tuple[ReasonRule, ...] = (
    # -- the message itself breaks the format rules --------------------------------------
    said(
        R.NOT_RFC_COMPLIANT,
        "RFC 5322 §3.6 (at most one From/Subject/Date...); Gmail's RfcMessageNonCompliant "
        "replies; Amazon SES 'Duplicate header'",
        r"duplicate (?:\S+ )?header",
        r"multiple (?:\w+ )?headers",
        r"multiple (?:from|sender|subject|date|message-id|to) ",
        r"messages with multiple addresses",
        r"not (?:rfc ?\d* ?)?(?:5322 |2822 )?compliant",
        r"rfc ?(?:5322|2822) compliant",
        r"(?:does not|doesn't) (?:conform|comply) (?:to|with) (?:the )?rfc",
        r"malformed (?:header|message|mime)",
        r"missing (?:required |mandatory )?(?:\w+ )?header",
        r"header (?:field )?(?:is )?missing",
    ),
    # -- greylisting: a first attempt deferred on purpose --------------------------------
    said(
        R.GREYLISTED,
        "postgrey's default reply 'Greylisted'; milter-greylist; Mimecast 451 'Internal "
        "resource temporarily unavailable' (documented as greylisting)",
        r"gr[ae]y-?list",
        r"gr[ae]y list",
        r"internal resources? (?:are |is )?temporarily unavailable",
        codes=TEMP,
    ),
    # -- content --------------------------------------------------------------------------
    said(
        R.VIRUS,
        "antivirus milters and gateways (ClamAV, Mimecast, Proofpoint) name the virus or malware",
        r"virus",
        r"malware",
        r"infected",
        r"trojan",
        r"ransomware",
        r"malicious (?:attachment|content|file|code|payload)",
    ),
    said(
        R.POLICY,
        "Gmail 552 5.7.0 'content presents a potential security issue' (attachment policy)",
        r"security (?:issue|risk|threat)",
    ),
    said(
        R.SPAM_CONTENT,
        "URL blocklists (SURBL, URIBL, Spamhaus DBL) list domains found in the message body; "
        "Apple iCloud's documented 'domain present in the Spamhaus DBL' reply",
        r"uribl",
        r"surbl",
        r"(?:black|block)listed (?:url|link|domain)",
        r"(?:url|link|domain)s? (?:in|of) (?:the |your )?(?:message|body|content)",
        r"(?:url|link|domain)s? (?:present|listed|found) in",
    ),
    # -- the sender's domain fails SPF / DKIM / DMARC -------------------------------------
    said(
        R.SENDER_AUTH_FAILED,
        "RFC 7208 (SPF), RFC 6376 (DKIM), RFC 7489 (DMARC); Gmail 5.7.26, Outlook 5.7.509, "
        "Yahoo and iCloud DMARC replies; Mimecast anti-spoofing",
        r"dmarc",
        r"\bspf\b",
        r"sender policy framework",
        r"\bdkim\b",
        r"domainkeys",
        r"\barc\b (?:validation|check)",
        r"unauthenticated (?:e-?mail|mail|message)",
        r"sender is unauthenticated",
        r"authentication (?:checks|results|level)",
        r"authentication information",
        r"anti-?spoof",
        r"spoof(?:ed|ing)",
        r"designates? .{0,80}permitted sender",
    ),
    # -- the sending host is on a blocklist -----------------------------------------------
    said(
        R.BLOCKLISTED,
        "Postfix reject_rbl_client 'blocked using <list>'; Spamhaus, SpamCop, SORBS, "
        "Barracuda, CBL, UCEPROTECT and Proofpoint's dnsbl-lookup; Outlook 5.7.606-649 "
        "'banned sending IP' and 'network is on our block list'; Gmail's 'use the SMTP relay "
        "at your service provider' (dynamic-IP policy lists such as the Spamhaus PBL)",
        r"blocked using",
        r"(?:black|block) ?list",
        r"\bblack ip\b",
        r"rbl\b",
        r"dnsbl",
        r"spamhaus",
        r"spamcop",
        r"sorbs",
        r"barracuda",
        r"abuseat",
        r"\bcbl\b",
        r"uceprotect",
        r"\bpsbl\b",
        r"spamrats",
        r"mailspike",
        r"invaluement",
        r"\b[spx]bl\b",
        r"\blisted (?:at|on|in|by)\b",
        r"\bis listed\b",
        r"banned (?:sending )?ip",
        r"\bip (?:address )?(?:\[[^\]]*\] )?(?:is |has been )?(?:banned|blocked|blacklisted)",
        r"client (?:host )?(?:\[[^\]]*\] )?(?:is |has been )?blocked",
        r"(?:dynamic|dial-?up|residential) (?:ip|address|host|range)",
        r"(?:smtp|mail) (?:server|relay) (?:of|at|from) your (?:isp|internet service provider"
        r"|service provider|provider)",
        r"not authori[sz]ed to send (?:e-?mail |mail )?directly",
        r"is an open relay",
        r"messages from \S+ (?:weren't|were not|have not been) sent",
    ),
    said(
        R.BLOCKLISTED,
        "Postfix postscreen and smtpd_client_restrictions, RFC 5321 §3.1: a refusal at the "
        "greeting or HELO can only be about the connecting host",
        r"refus",
        r"reject",
        r"denied",
        r"not allowed",
        r"blocked",
        r"banned",
        commands=_BEFORE_MAIL,
    ),
    # -- the sender's reputation (complaints, volume) -------------------------------------
    said(
        R.BAD_REPUTATION,
        "Outlook 4.7.650 'rate limited due to IP reputation'; Yahoo TS/TSS deferrals "
        "'unexpected volume or user complaints'; Gmail 5.7.1 'very low reputation'; Cisco "
        "SenderBase",
        r"reputation",
        r"(?:user|spam) complaints",
        r"complaints from",
        r"unexpected volume",
        r"permanently deferred",
        r"\[tss?\d\d\]",
        r"senderbase",
    ),
    # -- too much, too fast ---------------------------------------------------------------
    said(
        R.RATE_LIMITED,
        "Gmail 4.2.1 'receiving mail too quickly' / 'at a rate', 4.7.28 'rate limited'; "
        "Postfix anvil 'too many connections/messages'; Amazon SES 'Maximum sending rate "
        "exceeded' / 'Daily message quota'; iCloud 'excessive volume'; RFC 3463 X.7.28 mail flood",
        r"rate[- ]?limit",
        r"too many (?:connections|concurrent|sessions|messages|mails|e-?mails|simultaneous)",
        r"too many (?:recipients|messages|mails|e-?mails) (?:this|per|in the last|an|a|every"
        r"|within) ",
        r"receiving mail (?:too quickly|at a rate)",
        r"too (?:quickly|fast)",
        r"sending (?:too )?fast",
        r"slow down",
        r"throttl",
        r"frequency limit",
        r"(?:daily|hourly|sending|relay|message|send|mail|outbound) (?:quota|limit|rate)s? "
        r"(?:has been |have been |was )?(?:exceeded|reached)",
        r"exceeded (?:the |your |its )?(?:daily|hourly|sending|message|relay|maximum) "
        r"(?:quota|limit|rate|sending rate)",
        r"(?:reached|exceeded) your (?:daily|hourly)",
        r"(?:daily|hourly) (?:relay |sending |message )?quota",
        r"sending quota",
        r"excessive (?:volume|traffic|connections)",
        r"maximum (?:sending|send|connection) rate",
        r"connection (?:rate|limit|count)",
        r"(?:has |have )?sent (?:to )?too many",
        r"peak smtp relay limit",
        r"mail flood",
        r"thread limit exceeded",
    ),
    coded(R.RATE_LIMITED, "RFC 3463 registry X.7.28 'Mail flood detected'", 7, 28),
    said(
        R.BAD_REPUTATION,
        "Gmail 421 4.7.0 'unusual rate of unsolicited mail originating from your IP'; "
        "Yahoo 'unusual traffic'",
        r"unsolicited (?:mail|e-?mail|messages?) (?:originating|from your)",
        r"unusual (?:rate|traffic)",
    ),
    # -- the sending host's DNS -----------------------------------------------------------
    said(
        R.REVERSE_DNS,
        "Postfix reject_unknown_client_hostname / reject_unknown_reverse_client_hostname "
        "'cannot find your (reverse) hostname'; Gmail 5.7.25 PTR; Comcast and GMX PTR "
        "requirements; RFC 8601 iprev",
        r"reverse[- ]?dns",
        r"reverse (?:dns )?lookup",
        r"reverse (?:host ?name|mapping|resolution)",
        r"\brdns\b",
        r"\bptr\b",
        r"cannot find your (?:reverse )?host ?name",
        r"can't find your (?:reverse )?host ?name",
        r"(?:ip|client|host) ?name lookup",
        r"host ?name lookup failed",
        r"cannot resolve your",
        r"fcrdns",
        r"\biprev\b",
        r"mismatch(?:es)? (?:the )?(?:client|connecting|sending) ip",
        r"unverif[iy]able (?:sending )?ip",
    ),
    # -- authentication needed / refused (SMTP AUTH) --------------------------------------
    said(
        R.AUTH_FAILED,
        "RFC 4954 §6 535 'Authentication credentials invalid'; Gmail 535 5.7.8 'Username and "
        "Password not accepted'; Outlook 535 5.7.3 'Authentication unsuccessful'",
        r"authentication (?:failed|unsuccessful|rejected|credentials invalid)",
        r"auth(?:entication)? fail",
        r"invalid (?:credentials|login|password|user ?name)",
        r"(?:user ?name|login) (?:and|or) password",
        r"bad (?:user ?name|password|credentials)",
        r"incorrect (?:password|credentials|user ?name|login)",
        r"password (?:incorrect|invalid|not accepted|rejected)",
        r"credentials (?:rejected|invalid|not accepted)",
        r"login (?:failed|incorrect|denied)",
    ),
    said(
        R.AUTH_REQUIRED,
        "RFC 4954 §6 530 'Authentication required'; Outlook 5.7.57 'Client was not "
        "authenticated'; Exchange RESOLVER.RST.AuthRequired; SendGrid 'Unauthenticated "
        "senders not allowed'",
        r"auth(?:entication)? (?:is )?required",
        r"requires? (?:smtp )?auth",
        r"must (?:be )?authenticat",
        r"\bsmtp auth",
        r"without (?:smtp )?authentication",
        r"not authenticated",
        r"unauthenticated (?:senders?|relay|users?|clients?|connections?)",
        r"authenticate first",
        r"please (?:log ?in|authenticate)",
        r"authrequired",
        r"pop before smtp",
        r"login required",
    ),
    # -- TLS -----------------------------------------------------------------------------
    said(
        R.TLS_REQUIRED,
        "RFC 3207 §4 530 'Must issue a STARTTLS command first'; Gmail 421 4.7.0 'TLS required "
        "for RCPT domain'; RFC 3463 X.7.10/X.7.11; RFC 8689 REQUIRETLS",
        r"must issue a starttls",
        r"starttls (?:is )?(?:required|first)",
        r"tls (?:is )?required",
        r"requires? (?:a )?(?:secure|encrypted|tls|starttls)",
        r"must (?:use|negotiate) (?:a )?(?:starttls|tls|encryption)",
        r"encryption (?:is )?(?:required|needed)",
        r"must be encrypted",
        r"(?:does not|doesn't|not) support (?:starttls|tls)",
        r"secure connection required",
        r"requiretls",
    ),
    # -- relaying -------------------------------------------------------------------------
    said(
        R.RELAY_DENIED,
        "Postfix 'Relay access denied'; Exim 'relay not permitted'; qmail 'allowed rcpthosts'; "
        "Gmail 5.7.0 'Mail relay denied'; Amazon SES 'Email address is not verified'",
        r"relay(?:ing)? (?:access )?(?:is )?(?:denied|not permitted|not allowed|prohibited"
        r"|refused)",
        r"(?:not|isn't) (?:permitted|allowed|configured|authori[sz]ed) to relay",
        r"(?:unable|cannot|can't) (?:to )?relay",
        r"(?:we do not|we don't|no) relay",
        r"relaying (?:mail )?(?:is )?not",
        r"insecure (?:mail )?relay",
        r"open relay not allowed",
        r"rcpthosts",
        r"address is not verified",
        r"identities failed the check",
    ),
    # -- the recipient's mailbox --------------------------------------------------------------
    said(
        R.MAILBOX_FULL,
        "RFC 3463 X.2.2; Dovecot 'Quota exceeded (mailbox for user is full)'; Gmail "
        "'OverQuota' / 'out of storage space'; iCloud 'user is over quota'; Exchange "
        "'mailbox full'",
        r"mail ?box (?:is )?full",
        r"over ?quota",
        r"quota (?:exceeded|exceed|full|reached)",
        r"exceed(?:s|ed)? (?:the |its |his |her |their |your )?(?:mailbox |storage |disk "
        r"|user )?quota",
        r"(?:mail ?box|inbox|account|mail ?folder|folder|user) (?:is )?(?:full|out of (?:storage"
        r"|space|disk))",
        r"out of storage space",
        r"storage (?:space )?(?:is )?(?:full|exceeded)",
        r"storage allocation",
        r"mail ?box size limit",
        r"would exceed",
        r"disk quota",
        r"quota",
    ),
    said(
        R.MAILBOX_DISABLED,
        "RFC 3463 X.2.1 'Mailbox disabled' and X.7.13 'User account disabled'; Gmail "
        "'DisabledUser'; Yahoo 'account has been disabled or discontinued'; iCloud inactive "
        "addresses",
        rf"{_ADDRESS}\b{_CLAUSE}\b(?:disabled|deactivated|suspended|inactive|frozen|locked"
        r"|closed|discontinued|expired)",
        r"(?:account|mail ?box) (?:is |has been )?(?:temporarily )?blocked",
        r"disabled ?(?:user|recipient|account|mailbox)",
        r"(?:no longer|not) (?:active|in use)",
    ),
    said(
        R.HAS_MOVED,
        "RFC 3463 X.1.6 'Destination mailbox has moved, no forwarding address'; RFC 5321 551",
        r"has moved",
        r"mail ?box moved",
        r"no forwarding address",
        r"no longer (?:on|at|with|here|valid)",
    ),
    # -- addresses ------------------------------------------------------------------------
    said(
        R.SENDER_REJECTED,
        "RFC 3463 X.1.7/X.1.8 (bad sender); Postfix 'Sender address rejected'; Exim 'Sender "
        "verify failed'",
        r"sender (?:address |domain )?(?:is )?(?:rejected|refused|denied|blocked|not allowed"
        r"|invalid|unknown|banned)",
        r"sender (?:verify|verification|address verification) failed",
        r"verification failed for",
        r"(?:invalid|bad|unknown|illegal|unroutable|unrouteable|banned) sender",
        r"domain of sender",
        r"sender(?:'s)? domain",
        r"sender address (?:must|does not|doesn't|is not)",
        r"could not verify sender",
        r"(?:from|return-?path|envelope sender|reverse-?path) (?:address )?(?:is )?(?:invalid"
        r"|rejected|not allowed|refused)",
        r"mail from (?:address )?(?:rejected|refused|not allowed)",
    ),
    said(
        R.SENDER_REJECTED,
        "RFC 3463 X.1.7/X.1.8 and RFC 5321 §3.3: at MAIL FROM, an unknown domain or "
        "mailbox is the sender's",
        *_NO_SUCH_DOMAIN,
        *_NO_SUCH_USER,
        commands=_MAIL,
    ),
    said(
        R.HOST_UNKNOWN,
        "RFC 3463 X.1.2/X.4.4; Postfix 'Domain not found'; sendmail 'Host unknown'",
        *_NO_SUCH_DOMAIN,
    ),
    said(
        R.USER_UNKNOWN,
        "RFC 3463 X.1.1; Postfix 'User unknown in ... table'; Exim 'Unrouteable address'; "
        "qmail 'no mailbox here by that name'; Gmail 5.1.1 'does not exist'; Exchange "
        "RecipNotFound; Yahoo 'doesn't have a ... account'",
        *_NO_SUCH_USER,
    ),
    # -- size and count -------------------------------------------------------------------
    said(
        R.MESSAGE_TOO_LARGE,
        "RFC 1870 (SIZE); RFC 3463 X.2.3/X.3.4; Postfix 'Message size exceeds fixed limit'; "
        "Gmail 5.2.3 'exceeded Google's message size limits'; Exchange RecipSizeLimit",
        r"(?:message|mail|e-?mail|attachment)s? (?:size |length )?(?:is )?(?:too (?:large|big"
        r"|long)|exceeds?)",
        r"size (?:exceeds|limit|too)",
        r"exceeds? (?:the )?(?:maximum|fixed|permitted|allowed|size|message size)",
        r"too much (?:mail )?data",
        r"message file too big",
        r"too (?:large|big) for (?:this|the) (?:recipient|system|server)",
        r"recipsizelimit",
        r"exceeded .{0,40}message size",
    ),
    said(
        R.TOO_MANY_RECIPIENTS,
        "RFC 5321 §4.5.3.1.10 and RFC 3463 X.5.3; Postfix 'Error: too many recipients'; Gmail "
        "4.5.3 'too many recipients'",
        r"too many (?:recipients|rcpt)",
        r"recipient (?:limit|count)",
        r"maximum (?:number of )?recipients",
        r"number of recipients",
    ),
    said(
        R.SPAM_CONTENT,
        "Postfix header/body_checks REJECT 'Message content rejected'; amavis/SpamAssassin "
        "'SPAM'; Gmail 'unsolicited' and 'spam' replies; RFC 5321 541 (table)",
        r"\bspam",
        r"junk",
        r"\bube\b",
        r"\buce\b",
        r"unsolicited",
        r"content (?:rejected|filter)",
        r"bulk (?:e-?)?mail",
        r"phish",
        r"suspicious (?:message|content|link|url)",
    ),
    # -- the server's own state -----------------------------------------------------------
    said(
        R.NOT_ACCEPTING,
        "RFC 7504 521/556 'does not accept mail'; RFC 7505 null MX; RFC 3463 X.3.2",
        r"(?:does not|doesn't|do not) accept (?:any )?(?:e-?)?mail",
        r"not accepting (?:\w+ )?(?:mail|messages)",
        r"accepts no mail",
        r"null mx",
    ),
    said(
        R.SYSTEM_ERROR,
        "RFC 5321 451 'local error in processing'; Postfix 'queue file write error'; Exim "
        "'Temporary local problem'; sendmail 'mailer error'",
        r"(?:internal|system|server|local|mailer|configuration|operating system|database"
        r"|lookup) (?:server )?error",
        r"error in processing",
        r"transaction failed",
        r"queue file write",
        r"temporary (?:local )?problem",
        r"temporary (?:system )?failure",
        r"insufficient (?:system |disk )?(?:storage|space)",
        r"disk (?:space|full)",
        r"out of memory",
        r"(?:system|mail system) (?:is )?full",
        r"incorrectly configured",
        r"misconfigur",
    ),
    said(
        R.SERVER_BUSY,
        "RFC 5321 421 'Service not available'; Gmail 421 4.4.5 'Server busy'; Mimecast 421 "
        "'Unable to process connection at this time'",
        r"(?:server|system|service|host) (?:is )?(?:too )?busy",
        r"too busy",
        r"overloaded",
        r"(?:under|high|heavy|maximum) load",
        r"unable to process (?:the )?connection",
        r"(?:shutting|closing) down",
    ),
    said(
        R.SYSTEM_ERROR,
        "RFC 5321 §4.2.3 554 'Transaction failed' / 'Service unavailable' as a permanent "
        "answer to a message",
        r"service (?:is )?(?:currently |temporarily )?(?:unavailable|not available)",
        codes=PERM,
    ),
    said(
        R.SERVER_BUSY,
        "RFC 5321 §4.2.3 421 'Service not available'; generic 4xx 'try again later'",
        r"service (?:is )?(?:currently |temporarily )?(?:unavailable|not available)",
        r"try (?:again )?later",
        codes=TEMP,
    ),
    # -- what the enhanced code says (when the text said nothing specific) ---------------
    coded(R.USER_UNKNOWN, "RFC 3463 X.1.1 'Bad destination mailbox address'", 1, 1),
    coded(R.HOST_UNKNOWN, "RFC 3463 X.1.2 'Bad destination system address'", 1, 2),
    coded(R.USER_UNKNOWN, "RFC 3463 X.1.3 'Bad destination mailbox address syntax'", 1, 3),
    coded(R.HAS_MOVED, "RFC 3463 X.1.6 'Destination mailbox has moved'", 1, 6),
    coded(
        R.SENDER_REJECTED, "RFC 3463 X.1.7/X.1.8 bad sender's mailbox or system address", 1, 7, 8
    ),
    coded(R.USER_UNKNOWN, "Exchange Online 5.1.10 'RecipientNotFound'", 1, 10),
    coded(
        R.MAILBOX_DISABLED,
        "RFC 3463 X.2.1 'Mailbox disabled, not accepting messages'",
        2,
        1,
        codes=PERM,
    ),
    coded(R.MAILBOX_FULL, "RFC 3463 X.2.2 'Mailbox full'", 2, 2),
    coded(
        R.MESSAGE_TOO_LARGE, "RFC 3463 X.2.3 'Message length exceeds administrative limit'", 2, 3
    ),
    coded(R.SYSTEM_ERROR, "RFC 3463 X.3.1 'Mail system full'", 3, 1),
    coded(R.NOT_ACCEPTING, "RFC 3463 X.3.2 'System not accepting network messages'", 3, 2),
    coded(R.MESSAGE_TOO_LARGE, "RFC 3463 X.3.4 'Message too big for system'", 3, 4),
    coded(R.SYSTEM_ERROR, "RFC 3463 X.3.0/X.3.5 mail system errors", 3, 5),
    coded(R.HOST_UNKNOWN, "RFC 3463 X.4.4 'Unable to route'", 4, 4),
    coded(R.SYNTAX_ERROR, "RFC 3463 X.5.1/X.5.2/X.5.4/X.5.5 protocol errors", 5, 1, 2),
    coded(R.TOO_MANY_RECIPIENTS, "RFC 3463 X.5.3 'Too many recipients'", 5, 3),
    coded(R.SYNTAX_ERROR, "RFC 3463 X.5.4 'Invalid command arguments'", 5, 4, 5),
    coded(R.AUTH_FAILED, "RFC 4954 X.7.8 'Authentication credentials invalid'", 7, 8),
    coded(R.TLS_REQUIRED, "RFC 3463 X.7.10/X.7.11 encryption needed", 7, 10, 11),
    coded(R.MAILBOX_DISABLED, "RFC 3463 X.7.13 'User account disabled'", 7, 13),
    coded(
        R.MESSAGE_TOO_LARGE,
        "RFC 6710 X.7.16 'Message is too big for the specified priority'",
        7,
        16,
    ),
    coded(R.HAS_MOVED, "RFC 7293 X.7.17/X.7.18 mailbox or domain owner has changed", 7, 17, 18),
    coded(R.SENDER_AUTH_FAILED, "RFC 7372 X.7.20-X.7.24 DKIM and SPF failures", 7, 20, 24),
    coded(R.REVERSE_DNS, "RFC 7372 X.7.25 'Reverse DNS validation failed'", 7, 25),
    coded(R.SENDER_AUTH_FAILED, "RFC 7372 X.7.26 'Multiple authentication checks failed'", 7, 26),
    coded(R.SENDER_REJECTED, "RFC 7505 X.7.27 'Sender address has null MX'", 7, 27),
    coded(R.SENDER_AUTH_FAILED, "RFC 8617 X.7.29 'ARC validation failure'", 7, 29),
    coded(R.TLS_REQUIRED, "RFC 8689 X.7.30 'REQUIRETLS support required'", 7, 30),
    coded(R.AUTH_REQUIRED, "Exchange Online 5.7.57 'Client was not authenticated'", 7, 57),
    coded(
        R.SENDER_AUTH_FAILED, "Exchange Online 5.7.509 DMARC reject, 5.7.515 auth level", 7, 509
    ),
    coded(R.SENDER_AUTH_FAILED, "Exchange Online 5.7.515 'required authentication level'", 7, 515),
    coded(R.BLOCKLISTED, "Exchange Online 5.7.606-649 'banned sending IP'", 7, 606, 649),
    coded(
        R.BAD_REPUTATION,
        "Exchange Online 4.7.650-699 'rate limited due to IP reputation'",
        7,
        650,
        699,
    ),
    coded(
        R.BAD_REPUTATION,
        "Exchange Online 5.7.700-749 tenant sending blocked for spam",
        7,
        700,
        749,
    ),
    coded(
        R.NOT_RFC_COMPLIANT,
        "RFC 6532/6531 X.6.7-X.6.10 internationalised-address errors",
        6,
        7,
        10,
    ),
    # -- what the command implies -----------------------------------------------------------
    implied(
        R.SENDER_REJECTED,
        "RFC 5321 §3.3: a 5xx to MAIL FROM refuses the reverse-path (the sender)",
        codes=PERM,
        commands=frozenset({Command.MAIL}),
    ),
    implied(
        R.BLOCKLISTED,
        "RFC 5321 §3.1 and Postfix postscreen/smtpd_client_restrictions: a 5xx before MAIL "
        "can only be about the connecting host",
        codes=range(550, 555),
        commands=_BEFORE_MAIL,
    ),
    # -- weak, generic phrases --------------------------------------------------------------
    said(
        R.USER_UNKNOWN,
        "Exchange Online Directory-Based Edge Blocking 550 5.4.1 'Recipient address rejected: "
        "Access denied'; RFC 5321 §4.2.3 550 'mailbox unavailable'; Postfix 'Recipient "
        "address rejected'",
        r"(?:recipient|addressee) (?:address )?rejected",
        r"address rejected",
        r"mail ?box unavailable",
        r"mail ?box not available",
    ),
    said(
        R.POLICY,
        "RFC 3463 X.7.1 'Delivery not authorized, message refused'; Yahoo 5.7.9 'policy "
        "reasons'; Exim 'Administrative prohibition'; Mimecast 'Host network not allowed'",
        r"polic(?:y|ies)",
        r"prohibit",
        r"not (?:allowed|permitted|authori[sz]ed|accepted)",
        r"access denied",
        r"denied",
        r"header error",
        r"headers? (?:too|are too)",
        r"protocol violation",
        r"(?:rejected|blocked) by (?:the )?(?:recipient|administrator|rule|filter"
        r"|organi[sz]ation)",
        r"client host rejected",
        r"security (?:issue|reasons)",
    ),
    coded(R.POLICY, "RFC 3463 X.7.0/X.7.1 security or policy status", 7, 0, 1),
    coded(R.POLICY, "RFC 3463 X.7.x security or policy status", 7, 2, 999),
    coded(
        R.POLICY,
        "RFC 3463 X.6.x message content or media status (a guess: policy on content)",
        6,
        0,
        999,
        refines=False,
    ),
    # -- the basic code alone ---------------------------------------------------------------
    implied(R.SERVER_BUSY, "RFC 5321 §3.8: 421 'Service not available'", codes=range(421, 422)),
    code(R.SERVER_BUSY, "command table 431 'server overloaded'", 431),
    code(
        R.SYSTEM_ERROR,
        "RFC 5321 451 'local error in processing', 452 'insufficient system storage'",
        451,
        452,
    ),
    code(R.NOT_ACCEPTING, "RFC 3463 X.3.2 / RFC 1985 453, 458, 459", 453),
    code(R.SYNTAX_ERROR, "RFC 5321 455/555 parameters not accommodated", 455),
    code(R.SPAM_CONTENT, "command table 471 'deferred by the spam filter'", 471),
    code(R.SYNTAX_ERROR, "RFC 5321 500-504 syntax and sequence errors", 500, 501, 502, 503, 504),
    code(R.USER_UNKNOWN, "command table 510 'invalid email address'", 510),
    code(R.HOST_UNKNOWN, "command table 512 'domain not found'", 512),
    code(R.NOT_ACCEPTING, "RFC 7504 521 'does not accept mail'", 521),
    code(R.MESSAGE_TOO_LARGE, "command table 523 'size exceeds the limit'", 523),
    code(R.AUTH_REQUIRED, "RFC 4954 530 'Authentication required'", 530),
    code(R.AUTH_FAILED, "RFC 4954 534/535 mechanism too weak, credentials invalid", 534, 535),
    code(R.TLS_REQUIRED, "RFC 4954 538 'Encryption required'", 538),
    code(R.SPAM_CONTENT, "command table 541 'rejected by the spam filter'", 541),
    code(R.HAS_MOVED, "RFC 5321 551 'User not local'", 551),
    code(R.MAILBOX_FULL, "RFC 5321 552 'exceeded storage allocation'", 552),
    code(R.USER_UNKNOWN, "RFC 5321 553 'mailbox name not allowed'", 553),
    code(R.SYNTAX_ERROR, "RFC 5321 555 'parameters not recognized'", 555),
    code(R.NOT_ACCEPTING, "RFC 7504 556 'domain does not accept mail'", 556),
)
