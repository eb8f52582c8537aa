// parse_delivery_status: the RFC 3464 examples, reports shaped as Exim and Postfix write them,
// transfer encodings, nesting, and malformed and oversized reports (each with its typed error
// and the data read before and after the problem).

#include <mailroom/mime/delivery_status.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace mailroom;
using mime::dsn_action;

namespace {

std::string crlf(std::string_view lf)
{
    std::string out;
    for (const char c : lf) {
        if (c == '\n')
            out += '\r';
        out += c;
    }
    return out;
}

struct parsed {
    error_code ec;
    mime::delivery_status r;
    diagnostics diag;
};

parsed parse(std::string_view bytes, const mime::delivery_status_options& opts = {})
{
    parsed p;
    p.ec = mime::parse_delivery_status(bytes, p.r, p.diag, opts);
    return p;
}

// RFC 3464 Appendix: "Simple DSN" (a sendmail report of a delay that became a failure).
const std::string simple_dsn = R"(Date: Thu, 7 Jul 1994 17:16:05 -0400
From: Mail Delivery Subsystem <MAILER-DAEMON@CS.UTK.EDU>
Message-Id: <199407072116.RAA14128@CS.UTK.EDU>
Subject: Returned mail: Cannot send message for 5 days
To: <owner-info-mime@cs.utk.edu>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
     boundary="RAA14128.773615765/CS.UTK.EDU"

--RAA14128.773615765/CS.UTK.EDU

   The original message was received at Sat, 2 Jul 1994 17:10:28 -0400
   from root@localhost

      ----- The following addresses had delivery problems -----
<louisl@larry.slip.umd.edu>  (unrecoverable error)

      ----- Transcript of session follows -----
<louisl@larry.slip.umd.edu>... Deferred: Connection timed out
         with larry.slip.umd.edu.
Message could not be delivered for 5 days
Message will be deleted from queue

--RAA14128.773615765/CS.UTK.EDU
content-type: message/delivery-status

Reporting-MTA: dns; cs.utk.edu

Original-Recipient: rfc822;louisl@larry.slip.umd.edu
Final-Recipient: rfc822;louisl@larry.slip.umd.edu
Action: failed
Status: 4.0.0
Diagnostic-Code: smtp; 426 connection timed out
Last-Attempt-Date: Thu, 7 Jul 1994 17:15:49 -0400

--RAA14128.773615765/CS.UTK.EDU
content-type: message/rfc822

[original message goes here]

--RAA14128.773615765/CS.UTK.EDU--
)";

// RFC 3464 Appendix: "Multi-Recipient DSN".
const std::string multi_dsn = R"(Date: Fri, 8 Jul 1994 09:21:47 -0400
From: Mail Delivery Subsystem <MAILER-DAEMON@CS.UTK.EDU>
Subject: Returned mail: User unknown
To: <owner-ups-mib@CS.UTK.EDU>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
     boundary="JAA13167.773673707/CS.UTK.EDU"

--JAA13167.773673707/CS.UTK.EDU
content-type: text/plain; charset=us-ascii

      ----- The following addresses had delivery problems -----
<arathib@vnet.IBM.COM>  (unrecoverable error)
<wsnell@sdcc13.ucsd.edu>  (unrecoverable error)

--JAA13167.773673707/CS.UTK.EDU
content-type: message/delivery-status

Reporting-MTA: dns; cs.utk.edu

Original-Recipient: rfc822;arathib@vnet.IBM.COM
Final-Recipient: rfc822;arathib@vnet.ibm.com
Action: failed
Status: 5.0.0 (permanent failure)
Diagnostic-Code: smtp; 550 'arathib@vnet.IBM.COM' is not a
    registered gateway user
Remote-MTA: dns; vnet.ibm.com

Original-Recipient: rfc822;johnh@hpnjld.njd.hp.com
Final-Recipient: rfc822;johnh@hpnjld.njd.hp.com
Action: delayed
Status: 4.0.0 (hpnjld.njd.jp.com: host name lookup failure)

Original-Recipient: rfc822;wsnell@sdcc13.ucsd.edu
Final-Recipient: rfc822;wsnell@sdcc13.ucsd.edu
Action: failed
Status: 5.0.0
Diagnostic-Code: smtp; 550 user unknown
Remote-MTA: dns; sdcc13.ucsd.edu

--JAA13167.773673707/CS.UTK.EDU
content-type: message/rfc822

[original message goes here]

--JAA13167.773673707/CS.UTK.EDU--
)";

// RFC 3464 Appendix: "DSN from a Gateway" (the boundary parameter before report-type).
const std::string gateway_dsn = R"(Date: Thu, 7 Jul 1994 17:16:05 -0400
From: Message Router Submission Agent <AMMGR@corp.timeplex.com>
Subject: Status of: Re: Battery current sense
To: owner-ups-mib@CS.UTK.EDU
Message-id: <01HEGJ0WNBY28Y95LN@mr.timeplex.com>
MIME-version: 1.0
content-type: multipart/report;
     boundary="A41C7.1.16.19940708151624.2D4C4.2C";
     report-type=delivery-status

--A41C7.1.16.19940708151624.2D4C4.2C
content-type: text/plain; charset=us-ascii

----- Mail was not delivered -----

--A41C7.1.16.19940708151624.2D4C4.2C
content-type: message/delivery-status

Reporting-MTA: mailbus; SYS30

Final-Recipient: unknown; nair_s
Status: 5.0.0 (unknown permanent failure)
Action: failed

--A41C7.1.16.19940708151624.2D4C4.2C--
)";

// RFC 3464 Appendix: "Delayed DSN".
const std::string delayed_dsn = R"(Date: Fri, 8 Jul 1994 09:21:47 -0400
From: Mail Delivery Subsystem <MAILER-DAEMON@sun2.nsfnet-relay.ac.uk>
Subject: WARNING: message delayed at "sun2.nsfnet-relay.ac.uk"
To: <owner-ups-mib@CS.UTK.EDU>
MIME-Version: 1.0
content-type: multipart/report; report-type=delivery-status;
     boundary="foobar@sun2.nsfnet-relay.ac.uk"

--foobar@sun2.nsfnet-relay.ac.uk
content-type: text/plain

The following message is delayed.

--foobar@sun2.nsfnet-relay.ac.uk
content-type: message/delivery-status

Reporting-MTA: dns; sun2.nsfnet-relay.ac.uk

Final-Recipient: rfc822;thomas@de-montfort.ac.uk
Status: 4.0.0 (unknown temporary failure)
Action: delayed

--foobar@sun2.nsfnet-relay.ac.uk--
)";

// As Exim 4.96 delivers a bounce to a file: an mbox "From " line, fields in its own order, the
// whole message returned.
const std::string exim_bounce = R"(From MAILER-DAEMON Tue Dec 08 03:18:51 2026
Return-path: <>
X-Failed-Recipients: nosuch@mailroom.test
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@mailroom.test>
To: sender@mailroom.test
Content-Type: multipart/report; report-type=delivery-status; boundary=1796699931-eximdsn-811998993
MIME-Version: 1.0
Subject: Mail delivery failed: returning message to sender

--1796699931-eximdsn-811998993
Content-type: text/plain; charset=us-ascii

A message that you sent could not be delivered.

--1796699931-eximdsn-811998993
Content-type: message/delivery-status

Reporting-MTA: dns; exim.mailroom.test

Action: failed
Final-Recipient: rfc822;nosuch@mailroom.test
Status: 5.0.0

--1796699931-eximdsn-811998993
Content-type: message/rfc822

Return-path: <sender@mailroom.test>
From: sender@mailroom.test
To: nosuch@mailroom.test
Subject: hi
Message-ID: <abc@x>
Date: Tue, 08 Dec 2026 03:18:51 +0000

body

--1796699931-eximdsn-811998993--
)";

// A Postfix-style report, with what RFC 3464 allows and readers trip over: comments, an
// address in angle brackets, an xtext envelope id, extension fields, a folded diagnostic, an
// 8-bit-free text/rfc822-headers part and an epilogue.
const std::string postfix_bounce = R"(From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: sender@example.com
MIME-Version: 1.0
Content-Type: multipart/report; report-type="delivery-status";
	boundary="8F1F4C0A2B.1733628000/mx.example.net"

This is a MIME-encapsulated message.

--8F1F4C0A2B.1733628000/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you...

--8F1F4C0A2B.1733628000/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net (Postfix)
X-Postfix-Queue-ID: 8F1F4C0A2B
X-Postfix-Sender: rfc822; sender@example.com
Original-Envelope-Id: batch+2B7+3Dx
Arrival-Date: Tue,  8 Dec 2026 03:20:00 +0000 (UTC)
Received-From-MTA: dns; client.example.com ([192.0.2.7])

Final-Recipient: rfc822; <nosuch@example.net>
Original-Recipient: rfc822;NoSuch@example.net
Action: FAILED
Status: 5.1.1 (bad destination mailbox address)
Remote-MTA: dns; mx2.example.net
Diagnostic-Code: smtp; 550 5.1.1 <nosuch@example.net>: Recipient address
    rejected: User unknown (in reply to RCPT TO command)
Last-Attempt-Date: Tue,  8 Dec 2026 03:20:01 +0000 (UTC)

--8F1F4C0A2B.1733628000/mx.example.net
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: sender@example.com
To: nosuch@example.net
Subject: =?UTF-8?Q?caf=C3=A9?=
Message-ID:
 <20261208.1@example.com>

--8F1F4C0A2B.1733628000/mx.example.net--

Epilogue: --8F1F4C0A2B.1733628000/mx.example.net text after the end.
)";

// A report around `status` (the status part's headers and body) and `returned`.
std::string report_with(
    std::string_view status, std::string_view returned = "",
    std::string_view top_type = "multipart/report; report-type=delivery-status; boundary=\"b1\"")
{
    std::string m = "From: postmaster@example.net\nContent-Type: " + std::string(top_type) +
                    "\n\npreamble\n--b1\nContent-Type: text/plain\n\nbounced\n--b1\n";
    m += status;
    m += "\n--b1\n";
    if (!returned.empty()) {
        m += returned;
        m += "\n--b1--\n";
    } else {
        m.replace(m.size() - 1, 1, "--\n");
    }
    return m;
}

const std::string one_rcpt = "Reporting-MTA: dns; mx.example.net\n\n"
                             "Final-Recipient: rfc822;bob@example.org\n"
                             "Action: failed\nStatus: 5.1.1\n";

} // namespace

TEST_CASE("delivery_status: RFC 3464 simple DSN")
{
    for (const std::string& text : {simple_dsn, crlf(simple_dsn)}) {
        const parsed p = parse(text);
        CHECK_FALSE(p.ec);
        CHECK(p.r.complete);
        REQUIRE(p.r.reporting_mta);
        CHECK(*p.r.reporting_mta == mime::typed_value{"dns", "cs.utk.edu"});
        CHECK_FALSE(p.r.arrival_date);
        CHECK_FALSE(p.r.global);
        REQUIRE(p.r.recipients.size() == 1);
        const auto& r = p.r.recipients[0];
        CHECK(*r.original_recipient == mime::typed_value{"rfc822", "louisl@larry.slip.umd.edu"});
        CHECK(*r.final_recipient == mime::typed_value{"rfc822", "louisl@larry.slip.umd.edu"});
        CHECK(*r.action == dsn_action::failed);
        CHECK(r.status->code == "4.0.0");
        CHECK(r.status->klass == 4);
        CHECK(r.status->transient());
        CHECK(r.status->text.empty());
        CHECK(*r.diagnostic_code == mime::typed_value{"smtp", "426 connection timed out"});
        CHECK(*r.last_attempt_date == "Thu, 7 Jul 1994 17:15:49 -0400");
        CHECK_FALSE(r.remote_mta);
        CHECK_FALSE(r.will_retry_until);
        // The returned part has no header section: there is one, without a Message-ID.
        REQUIRE(p.r.original);
        CHECK_FALSE(p.r.original->message_id);
        CHECK_FALSE(p.r.original->headers_only);
    }
}

TEST_CASE("delivery_status: RFC 3464 multi-recipient DSN")
{
    const parsed p = parse(multi_dsn);
    CHECK_FALSE(p.ec);
    CHECK(p.r.complete);
    REQUIRE(p.r.recipients.size() == 3);
    const auto& a = p.r.recipients[0];
    CHECK(a.original_recipient->value == "arathib@vnet.IBM.COM");
    CHECK(a.final_recipient->value == "arathib@vnet.ibm.com");
    CHECK(*a.action == dsn_action::failed);
    CHECK(a.status->code == "5.0.0");
    CHECK(a.status->permanent());
    CHECK(a.status->text == "permanent failure");
    CHECK(a.diagnostic_code->type == "smtp");
    CHECK(a.diagnostic_code->value ==
          "550 'arathib@vnet.IBM.COM' is not a registered gateway user");
    CHECK(*a.remote_mta == mime::typed_value{"dns", "vnet.ibm.com"});
    const auto& j = p.r.recipients[1];
    CHECK(j.final_recipient->value == "johnh@hpnjld.njd.hp.com");
    CHECK(*j.action == dsn_action::delayed);
    CHECK(j.status->code == "4.0.0");
    CHECK(j.status->text == "hpnjld.njd.jp.com: host name lookup failure");
    CHECK_FALSE(j.diagnostic_code);
    const auto& w = p.r.recipients[2];
    CHECK(w.final_recipient->value == "wsnell@sdcc13.ucsd.edu");
    CHECK(w.diagnostic_code->value == "550 user unknown");
    CHECK(w.remote_mta->value == "sdcc13.ucsd.edu");
}

TEST_CASE("delivery_status: RFC 3464 gateway and delayed DSNs")
{
    const parsed g = parse(gateway_dsn);
    CHECK_FALSE(g.ec);
    CHECK(*g.r.reporting_mta == mime::typed_value{"mailbus", "SYS30"});
    REQUIRE(g.r.recipients.size() == 1);
    CHECK(*g.r.recipients[0].final_recipient == mime::typed_value{"unknown", "nair_s"});
    CHECK(g.r.recipients[0].status->text == "unknown permanent failure");
    CHECK_FALSE(g.r.original); // this report returns nothing

    const parsed d = parse(crlf(delayed_dsn));
    CHECK_FALSE(d.ec);
    CHECK(d.r.reporting_mta->value == "sun2.nsfnet-relay.ac.uk");
    REQUIRE(d.r.recipients.size() == 1);
    CHECK(*d.r.recipients[0].action == dsn_action::delayed);
    CHECK(d.r.recipients[0].status->code == "4.0.0");
    CHECK(d.r.recipients[0].final_recipient->value == "thomas@de-montfort.ac.uk");
}

TEST_CASE("delivery_status: Exim's bounce, mbox line and returned message")
{
    const parsed p = parse(exim_bounce);
    CHECK_FALSE(p.ec);
    CHECK(p.r.reporting_mta->value == "exim.mailroom.test");
    REQUIRE(p.r.recipients.size() == 1);
    CHECK(p.r.recipients[0].final_recipient->value == "nosuch@mailroom.test");
    CHECK(*p.r.recipients[0].action == dsn_action::failed);
    REQUIRE(p.r.original);
    CHECK(*p.r.original->message_id == "<abc@x>");
    CHECK(*p.r.original->subject == "hi");
    CHECK(*p.r.original->from == "sender@mailroom.test");
    CHECK(*p.r.original->to == "nosuch@mailroom.test");
    CHECK(*p.r.original->date == "Tue, 08 Dec 2026 03:18:51 +0000");
}

TEST_CASE("delivery_status: comments, brackets, xtext, extensions, folded fields")
{
    const parsed p = parse(crlf(postfix_bounce));
    CHECK_FALSE(p.ec);
    CHECK(p.diag.to_string().empty());
    CHECK(*p.r.reporting_mta == mime::typed_value{"dns", "mx.example.net"});
    CHECK(*p.r.received_from_mta == mime::typed_value{"dns", "client.example.com"});
    CHECK(*p.r.original_envelope_id == "batch+7=x");
    CHECK(*p.r.arrival_date == "Tue,  8 Dec 2026 03:20:00 +0000 (UTC)");
    REQUIRE(p.r.other_fields.size() == 2);
    CHECK(p.r.other_fields[0].first == "X-Postfix-Queue-ID");
    CHECK(p.r.other_fields[0].second == "8F1F4C0A2B");
    CHECK(p.r.other_fields[1].second == "rfc822; sender@example.com");
    REQUIRE(p.r.recipients.size() == 1);
    const auto& r = p.r.recipients[0];
    CHECK(*r.final_recipient == mime::typed_value{"rfc822", "nosuch@example.net"});
    CHECK(r.original_recipient->value == "NoSuch@example.net");
    CHECK(*r.action == dsn_action::failed); // "FAILED": values are case-insensitive
    CHECK(r.status->klass == 5);
    CHECK(r.status->subject == 1);
    CHECK(r.status->detail == 1);
    CHECK(r.status->text == "bad destination mailbox address");
    CHECK(r.diagnostic_code->value == "550 5.1.1 <nosuch@example.net>: Recipient address "
                                      "rejected: User unknown (in reply to RCPT TO command)");
    CHECK(r.other_fields.empty());
    REQUIRE(p.r.original);
    CHECK(p.r.original->headers_only);
    CHECK(*p.r.original->message_id == "<20261208.1@example.com>");
    CHECK(*p.r.original->subject == "=?UTF-8?Q?caf=C3=A9?=");
}

TEST_CASE("delivery_status: transfer-encoded status parts")
{
    // "Reporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822;bob@example.org\r\n
    // Action: failed\r\nStatus: 5.1.1\r\n" in base64, in lines of 76 and one shorter.
    const std::string b64 =
        "Content-Type: message/delivery-status\nContent-Transfer-Encoding: BASE64\n\n"
        "UmVwb3J0aW5nLU1UQTogZG5zOyBteC5leGFtcGxlLm5ldA0KDQpGaW5hbC1SZWNpcGllbnQ6IHJm\n"
        "YzgyMjtib2JAZXhhbXBsZS5vcmcNCkFjdGlvbjogZmFpbGVkDQpTdGF0dXM6IDUuMS4xDQo=\n";
    const parsed p = parse(report_with(b64));
    CHECK_FALSE(p.ec);
    REQUIRE(p.r.recipients.size() == 1);
    CHECK(p.r.recipients[0].final_recipient->value == "bob@example.org");
    CHECK(p.r.recipients[0].status->code == "5.1.1");
    CHECK(p.r.reporting_mta->value == "mx.example.net");

    const std::string qp = "Content-Type: message/delivery-status\n"
                           "Content-Transfer-Encoding: quoted-printable\n\n"
                           "Reporting-MTA: dns; mx.exa=\nmple.net\n\n"
                           "Final-Recipient: rfc822;b=6Fb@example.org\nAction: failed\n"
                           "Status: 5.1.1\nDiagnostic-Code: smtp; 550 a=3Db\n";
    const parsed q = parse(report_with(qp));
    CHECK_FALSE(q.ec);
    CHECK(q.r.reporting_mta->value == "mx.example.net");
    REQUIRE(q.r.recipients.size() == 1);
    CHECK(q.r.recipients[0].final_recipient->value == "bob@example.org");
    CHECK(q.r.recipients[0].diagnostic_code->value == "550 a=b");

    const parsed bad = parse(report_with("Content-Type: message/delivery-status\n"
                                         "Content-Transfer-Encoding: base64\n\nUmVw*b3J0a\n"));
    CHECK(bad.ec == error::not_a_delivery_status);
    CHECK(bad.diag.field == "Content-Transfer-Encoding");
    CHECK_FALSE(bad.r.complete);
}

TEST_CASE("delivery_status: RFC 6533 global reports and returned headers")
{
    const parsed p = parse(report_with(
        "Content-Type: message/global-delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.net\n\n"
        "Final-Recipient: utf-8; j\xC3\xB6rg@example.org\nAction: delivered\nStatus: 2.0.0\n",
        "Content-Type: message/global-headers\n\nMessage-ID: <g@example.com>\n"));
    CHECK_FALSE(p.ec);
    CHECK(p.r.global);
    CHECK(*p.r.recipients[0].final_recipient ==
          mime::typed_value{"utf-8", "j\xC3\xB6rg@example.org"});
    CHECK(*p.r.recipients[0].action == dsn_action::delivered);
    CHECK(p.r.original->headers_only);
    CHECK(*p.r.original->message_id == "<g@example.com>");
}

TEST_CASE("delivery_status: every action, case-insensitive names and values")
{
    std::string status = "content-type: Message/Delivery-Status\n\nREPORTING-MTA: DNS; mx\n";
    const char* actions[] = {"failed", "Delayed", "delivered (done)", "RELAYED", "expanded"};
    for (const char* a : actions)
        status += std::string("\nfinal-recipient: RFC822; x@example.org\naction: ") + a +
                  "\nstatus: 2.0.0\nwill-retry-until: Fri, 11 Dec 2026 10:00:00 +0000\n";
    const parsed p = parse(report_with(status, "", "Multipart/Report; Boundary=b1"));
    CHECK_FALSE(p.ec);
    REQUIRE(p.r.recipients.size() == 5);
    CHECK(*p.r.reporting_mta == mime::typed_value{"dns", "mx"});
    CHECK(p.r.recipients[0].final_recipient->type == "rfc822");
    CHECK(*p.r.recipients[1].action == dsn_action::delayed);
    CHECK(*p.r.recipients[1].will_retry_until == "Fri, 11 Dec 2026 10:00:00 +0000");
    CHECK(*p.r.recipients[2].action == dsn_action::delivered);
    CHECK(*p.r.recipients[3].action == dsn_action::relayed);
    CHECK(*p.r.recipients[4].action == dsn_action::expanded);
    CHECK(mime::to_string(dsn_action::expanded) == "expanded");
}

TEST_CASE("delivery_status: boundaries: quoted, padded, in the preamble and epilogue")
{
    std::string m = "Content-Type: multipart/report; report-type=delivery-status;\n"
                    " boundary=\"=_b (x) ?:\"\n\n"
                    "--=_b (x) ?:x is not a delimiter in the preamble\n"
                    "--=_b (x) ?: \t\n" // transport padding
                    "Content-Type: message/delivery-status\n\n" +
                    one_rcpt +
                    "\n--=_b (x) ?:--\n--=_b (x) ?:\nContent-Type: text/plain\n\nepilogue\n";
    const parsed p = parse(m);
    CHECK_FALSE(p.ec);
    REQUIRE(p.r.recipients.size() == 1);
    CHECK(*p.r.recipients[0].action == dsn_action::failed);
}

TEST_CASE("delivery_status: a forwarded bounce, inside multipart/mixed and message/rfc822")
{
    const std::string m = "From: a@example.com\nContent-Type: multipart/mixed; boundary=out\n\n"
                          "--out\nContent-Type: text/plain\n\nsee below\n--out\n"
                          "Content-Type: message/rfc822\n\n" +
                          exim_bounce + "\n--out--\n";
    const parsed p = parse(m);
    CHECK_FALSE(p.ec);
    CHECK(p.r.reporting_mta->value == "exim.mailroom.test");
    CHECK(*p.r.original->message_id == "<abc@x>");
}

TEST_CASE("delivery_status: fields given twice keep the first; typed values without a type")
{
    const parsed p =
        parse(report_with("Content-Type: message/delivery-status\n\n"
                          "Reporting-MTA: mx.example.net\nReporting-MTA: dns; other\n\n"
                          "Final-Recipient: rfc822;bob@example.org\nAction: failed\n"
                          "Action: delivered\nStatus: 5.1.1\n\n\n\n")); // extra empty lines
    CHECK_FALSE(p.ec);
    CHECK(*p.r.reporting_mta == mime::typed_value{"", "mx.example.net"});
    REQUIRE(p.r.recipients.size() == 1);
    CHECK(*p.r.recipients[0].action == dsn_action::failed);
}

// ---- malformed reports: the typed error and what could be read -------------------------------

TEST_CASE("delivery_status: not a report at all")
{
    const parsed p = parse("From: a@example.com\nSubject: hello\n\nJust text.\n");
    CHECK(p.ec == error::not_a_delivery_status);
    CHECK(p.ec == condition::invalid_input);
    CHECK(p.diag.field == "Content-Type");
    CHECK(p.diag.detail == "not a multipart/report: text/plain");
    CHECK_FALSE(p.r.complete);
    CHECK(p.r.recipients.empty());
    CHECK_FALSE(p.r.reporting_mta);

    const parsed empty = parse("");
    CHECK(empty.ec == error::not_a_delivery_status);

    const parsed mdn = parse(
        report_with("Content-Type: message/disposition-notification\n\nFinal-Recipient: "
                    "rfc822;a@example.org\nDisposition: manual-action/MDN-sent-manually; "
                    "displayed\n",
                    "", "multipart/report; report-type=disposition-notification; boundary=b1"));
    CHECK(mdn.ec == error::not_a_delivery_status);
    CHECK(mdn.diag.detail.find("disposition-notification") != std::string::npos);
    CHECK(mdn.r.recipients.empty());
}

TEST_CASE("delivery_status: a report without its status part")
{
    const parsed p = parse(report_with("Content-Type: text/plain\n\nno status here\n"));
    CHECK(p.ec == error::not_a_delivery_status);
    CHECK(p.diag.detail == "no message/delivery-status part");
    CHECK_FALSE(p.r.complete);
}

TEST_CASE("delivery_status: missing required fields: the rest is read")
{
    SUBCASE("no Reporting-MTA")
    {
        const parsed p = parse(report_with("Content-Type: message/delivery-status\n\n"
                                           "Arrival-Date: Tue, 8 Dec 2026 03:20:00 +0000\n\n"
                                           "Final-Recipient: rfc822;bob@example.org\n"
                                           "Action: failed\nStatus: 5.1.1\n"));
        CHECK(p.ec == error::not_a_delivery_status);
        CHECK(p.diag.field == "Reporting-MTA");
        CHECK_FALSE(p.r.complete);
        CHECK(*p.r.arrival_date == "Tue, 8 Dec 2026 03:20:00 +0000");
        REQUIRE(p.r.recipients.size() == 1);
        CHECK(p.r.recipients[0].status->code == "5.1.1");
    }
    SUBCASE("a recipient without Status, the next one whole")
    {
        const parsed p = parse(
            report_with("Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
                        "Final-Recipient: rfc822;a@example.org\nAction: failed\n\n"
                        "Final-Recipient: rfc822;b@example.org\nAction: failed\nStatus: 5.2.2\n",
                        "Content-Type: message/rfc822\n\nMessage-ID: <m1@example.com>\n\nbody\n"));
        CHECK(p.ec == error::not_a_delivery_status);
        CHECK(p.diag.field == "recipient 1 Status");
        REQUIRE(p.r.recipients.size() == 2);
        CHECK(p.r.recipients[0].final_recipient->value == "a@example.org");
        CHECK_FALSE(p.r.recipients[0].status);
        CHECK(p.r.recipients[1].status->code == "5.2.2");
        CHECK(*p.r.original->message_id == "<m1@example.com>");
    }
    SUBCASE("no recipients")
    {
        const parsed p = parse(report_with("Content-Type: message/delivery-status\n\n"
                                           "Reporting-MTA: dns; mx\n"));
        CHECK(p.ec == error::not_a_delivery_status);
        CHECK(p.diag.detail == "no per-recipient fields");
        CHECK(p.r.reporting_mta->value == "mx");
    }
    SUBCASE("missing Final-Recipient and Action")
    {
        const parsed p = parse(report_with("Content-Type: message/delivery-status\n\n"
                                           "Reporting-MTA: dns; mx\n\nStatus: 5.0.0\n"));
        CHECK(p.ec == error::not_a_delivery_status);
        CHECK(p.diag.field == "recipient 1 Final-Recipient");
        REQUIRE(p.r.recipients.size() == 1);
        CHECK(p.r.recipients[0].status->code == "5.0.0");
    }
}

TEST_CASE("delivery_status: unreadable Action and Status values")
{
    const parsed p = parse(report_with("Content-Type: message/delivery-status\n\n"
                                       "Reporting-MTA: dns; mx\n\n"
                                       "Final-Recipient: rfc822;a@example.org\n"
                                       "Action: bounced\nStatus: 5.1.1\n\n"
                                       "Final-Recipient: rfc822;b@example.org\n"
                                       "Action: failed\nStatus: 3.1.1\n"));
    CHECK(p.ec == error::not_a_delivery_status);
    CHECK(p.diag.field == "recipient 1 Action");
    CHECK(p.diag.detail == "not an RFC 3464 action: 'bounced'");
    REQUIRE(p.r.recipients.size() == 2);
    CHECK_FALSE(p.r.recipients[0].action);
    CHECK(p.r.recipients[0].status->code == "5.1.1");
    CHECK(*p.r.recipients[1].action == dsn_action::failed);
    CHECK_FALSE(p.r.recipients[1].status);

    for (const char* bad : {"5.1", "5..1", "5.1.1.1", "5.1000.1", "x.1.1", "51.1.1", ""}) {
        const parsed q = parse(report_with(std::string("Content-Type: message/delivery-status\n\n"
                                                       "Reporting-MTA: dns; mx\n\n"
                                                       "Final-Recipient: rfc822;a@example.org\n"
                                                       "Action: failed\nStatus: ") +
                                           bad + "\n"));
        CHECK_MESSAGE(q.ec == error::not_a_delivery_status, bad);
        CHECK_MESSAGE(q.diag.field == "recipient 1 Status", bad);
        CHECK_FALSE(q.r.recipients.at(0).status);
    }
}

TEST_CASE("delivery_status: wrong nesting: a status part outside a multipart/report")
{
    const parsed p = parse(report_with("Content-Type: message/delivery-status\n\n" + one_rcpt, "",
                                       "multipart/mixed; boundary=b1"));
    CHECK(p.ec == error::not_a_delivery_status);
    CHECK(p.diag.detail == "message/delivery-status outside a multipart/report");
    REQUIRE(p.r.recipients.size() == 1);
    CHECK(p.r.recipients[0].final_recipient->value == "bob@example.org");
    CHECK(p.r.reporting_mta->value == "mx.example.net");

    // A multipart without a boundary parameter: nothing inside can be found.
    const parsed nb =
        parse("Content-Type: multipart/report; report-type=delivery-status\n\n--x\n\n--x--\n");
    CHECK(nb.ec == error::not_a_delivery_status);
    CHECK(nb.diag.detail == "multipart/report without a boundary");
}

TEST_CASE("delivery_status: truncated reports keep what came before the cut")
{
    // Cut inside the second recipient group: no closing boundary.
    const std::size_t cut = multi_dsn.find("Action: delayed");
    const parsed p = parse(multi_dsn.substr(0, cut));
    CHECK(p.ec == error::not_a_delivery_status);
    CHECK(p.diag.detail == "multipart/report without its closing boundary");
    CHECK_FALSE(p.r.complete);
    REQUIRE(p.r.recipients.size() == 2);
    CHECK(*p.r.recipients[0].action == dsn_action::failed);
    CHECK(p.r.recipients[1].final_recipient->value == "johnh@hpnjld.njd.hp.com");
    CHECK_FALSE(p.r.recipients[1].action);

    // Cut inside the returned message: the status part is whole, the Message-ID is there.
    const std::string e = exim_bounce.substr(0, exim_bounce.find("Date: Tue, 08 Dec"));
    const parsed q = parse(e);
    CHECK(q.ec == error::not_a_delivery_status);
    CHECK(q.r.recipients.size() == 1);
    CHECK(*q.r.original->message_id == "<abc@x>");

    // Cut in the headers: no boundary line ever comes.
    const parsed h = parse(simple_dsn.substr(0, simple_dsn.find("\n\n")));
    CHECK(h.ec == error::not_a_delivery_status);
    CHECK(h.diag.detail == "multipart/report without any boundary line");
}

TEST_CASE("delivery_status: bounds: size, nesting depth, parts, recipients, fields")
{
    SUBCASE("larger than max_size: read up to it")
    {
        std::string big = exim_bounce;
        const std::size_t body = big.find("body\n");
        big.insert(body, std::string(11 * 1024 * 1024, 'x') + "\n");
        const parsed p = parse(big);
        CHECK(p.ec == error::delivery_status_too_large);
        CHECK(p.ec == condition::invalid_input);
        CHECK(p.diag.field == "message");
        CHECK_FALSE(p.r.complete);
        // The status part came before the cut.
        REQUIRE(p.r.recipients.size() == 1);
        CHECK(p.r.recipients[0].status->code == "5.0.0");
        CHECK(*p.r.original->message_id == "<abc@x>");

        mime::delivery_status_options small;
        small.max_size = exim_bounce.find("Action: failed");
        const parsed s = parse(exim_bounce, small);
        CHECK(s.ec == error::delivery_status_too_large);
        CHECK(s.r.reporting_mta->value == "exim.mailroom.test");
        CHECK(s.r.recipients.empty());

        small.max_size = exim_bounce.size();
        CHECK_FALSE(parse(exim_bounce, small).ec);
    }
    SUBCASE("nested deeper than max_depth")
    {
        std::string m;
        const int levels = 200;
        for (int i = 0; i < levels; ++i)
            m += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\n\n--b" +
                 std::to_string(i) + "\n";
        m += "Content-Type: text/plain\n\nx\n";
        for (int i = levels - 1; i >= 0; --i)
            m += "--b" + std::to_string(i) + "--\n";
        const parsed p = parse(m);
        CHECK(p.ec == error::delivery_status_too_large);
        CHECK(p.diag.detail == "nested deeper than 8 levels");

        // The report inside 3 levels of multipart/mixed is found; with max_depth 3 it isn't.
        std::string nested = report_with("Content-Type: message/delivery-status\n\n" + one_rcpt);
        for (int i = 0; i < 3; ++i)
            nested = "Content-Type: multipart/mixed; boundary=n" + std::to_string(i) + "\n\n--n" +
                     std::to_string(i) + "\n" + nested + "\n--n" + std::to_string(i) + "--\n";
        CHECK_FALSE(parse(nested).ec);
        mime::delivery_status_options shallow;
        shallow.max_depth = 3;
        CHECK(parse(nested, shallow).ec == error::delivery_status_too_large);
    }
    SUBCASE("more parts than max_parts")
    {
        std::string m = "Content-Type: multipart/report; report-type=delivery-status; "
                        "boundary=b\n\n--b\nContent-Type: message/delivery-status\n\n" +
                        one_rcpt;
        for (int i = 0; i < 150; ++i)
            m += "\n--b\nContent-Type: text/plain\n\npart\n";
        m += "\n--b--\n";
        const parsed p = parse(m);
        CHECK(p.ec == error::delivery_status_too_large);
        CHECK(p.diag.detail == "more than 100 body parts");
        CHECK(p.r.recipients.size() == 1); // the first part was read
    }
    SUBCASE("more recipients than max_recipients")
    {
        std::string status = "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n";
        for (int i = 0; i < 1500; ++i)
            status += "\nFinal-Recipient: rfc822;r" + std::to_string(i) +
                      "@example.org\nAction: failed\nStatus: 5.1.1\n";
        const parsed p = parse(report_with(status));
        CHECK(p.ec == error::delivery_status_too_large);
        CHECK(p.diag.detail == "more than 1000 recipients");
        REQUIRE(p.r.recipients.size() == 1000);
        CHECK(p.r.recipients.back().final_recipient->value == "r999@example.org");

        mime::delivery_status_options more;
        more.max_recipients = 2000;
        const parsed all = parse(report_with(status), more);
        CHECK_FALSE(all.ec);
        CHECK(all.r.recipients.size() == 1500);
    }
    SUBCASE("more fields than max_fields")
    {
        std::string status = "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n";
        for (int i = 0; i < 30000; ++i)
            status += "X-Field: " + std::to_string(i) + "\n";
        const parsed p = parse(report_with(status));
        CHECK(p.ec == error::delivery_status_too_large);
        CHECK(p.r.other_fields.size() == 19999);
    }
}
