"""DNS check: a query of one record type, the expected rcode and answers."""

from __future__ import annotations

from typing import Annotated, ClassVar

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import msgspec

from services.probe.monitors.base import CheckConfig, Outcome, ProbeContext, failed


class DnsCheck(CheckConfig, frozen=True, kw_only=True, tag="dns", tag_field="type"):
    query: str  # the name to resolve
    record: str = "A"
    nameserver: str  # an IP address
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 53
    expect_rcode: str = "NOERROR"
    expect: list[str] = []  # each must be among the answers (text form)

    def __post_init__(self) -> None:
        try:
            dns.rdatatype.from_text(self.record)
        except dns.rdatatype.UnknownRdatatype as exc:
            raise ValueError(f"record: unknown record type {self.record!r}") from exc
        try:
            dns.rcode.from_text(self.expect_rcode)
        except dns.rcode.UnknownRcode as exc:
            raise ValueError(f"expect_rcode: unknown rcode {self.expect_rcode!r}") from exc


class DnsMonitor:
    type: ClassVar[str] = "dns"
    description: ClassVar[str] = "DNS query: record type, expected rcode and answers"

    async def run(self, check: DnsCheck, ctx: ProbeContext) -> Outcome:
        request = dns.message.make_query(check.query, dns.rdatatype.from_text(check.record))
        try:
            response = await dns.asyncquery.udp(
                request, check.nameserver, port=check.port, timeout=float(check.timeout)
            )
        except dns.exception.Timeout as exc:
            return failed("unhealthy", exc, "no answer")
        except (OSError, dns.exception.DNSException) as exc:
            return failed("unhealthy", exc, "query failed")
        rcode = dns.rcode.to_text(response.rcode())
        answers = sorted(
            rr.to_text().strip('"').rstrip(".") for rrset in response.answer for rr in rrset
        )
        details: dict[str, object] = {"rcode": rcode, "answers": answers[:20]}
        if rcode != check.expect_rcode.upper():
            return Outcome("unhealthy", details | {"error": f"rcode {rcode}"})
        wanted = [e.rstrip(".") for e in check.expect]
        if missing := [e for e in wanted if e not in answers]:
            return Outcome("unhealthy", details | {"error": f"missing answers {missing}"})
        return Outcome("healthy", details)
