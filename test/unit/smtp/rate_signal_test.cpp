#include <mailroom/limit/signal.hpp>
#include <mailroom/smtp/rate_signal.hpp>
#include <mailroom/smtp/reply.hpp>

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

using mailroom::limit::signal;
using mailroom::smtp::enhanced_status;
using mailroom::smtp::rate_signal;
using mailroom::smtp::reply;

namespace {

// A reply as the client's parser leaves it for a server with ENHANCEDSTATUSCODES: the status
// parsed from the first line when its class agrees with the code. Lines are split on '\n'.
reply make(int code, std::string_view text)
{
    reply r;
    r.code = code;
    std::size_t start = 0;
    while (true) {
        const std::size_t nl = text.find('\n', start);
        r.lines.emplace_back(text.substr(start, nl - start));
        if (nl == std::string_view::npos)
            break;
        start = nl + 1;
    }
    if (auto st = enhanced_status::parse_prefix(r.lines.front()); st && st->cls == code / 100)
        r.status = st;
    return r;
}

struct sample {
    int code;
    std::string_view text;
};

void check_all(std::initializer_list<sample> samples, signal expected)
{
    for (const sample& s : samples) {
        CAPTURE(s.code);
        CAPTURE(s.text);
        CHECK(rate_signal(make(s.code, s.text)) == expected);
    }
}

} // namespace

TEST_SUITE("smtp.rate_signal")
{
    TEST_CASE("daily quotas and sending quotas")
    {
        check_all(
            {
                // Amazon SES's SMTP interface (documented by AWS).
                {454, "Throttling failure: Daily message quota exceeded."},
                // Gmail, as reported by its users; a multi-line form too.
                {550, "5.4.5 Daily user sending quota exceeded. - gsmtp"},
                {550, "5.4.5 Daily user sending limit exceeded.\n"
                      "5.4.5 https://support.google.com/mail/?p=DailyLimitExceeded - gsmtp"},
                {550, "5.4.5 Daily SMTP relay limit exceeded for user. - gsmtp"},
                // Exchange Online, SMTP AUTH recipients per day (Microsoft's documentation).
                {554, "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; "
                      "Failed to process message due to a permanent exception with message "
                      "Cannot submit message."},
                // A hosting provider's Postfix policy service (pattern: sending quota).
                {550, "5.4.5 <someone@example.org>: Recipient address rejected: Domain Sending "
                      "Quota Exceeded"},
                // Daily limits in other words, even with a per-message status.
                {452, "4.5.3 Daily message limit exceeded"},
                {421, "4.7.0 You have reached your daily sending limit, try again tomorrow"},
                {451, "Sending quota exhausted for this account"},
                {550, "Message rejected: 24-hour sending limit exceeded"},
                // Google's 5.4.5 alone, whatever the words.
                {550, "5.4.5 Please try again tomorrow"},
            },
            signal::quota_exhausted);
    }

    TEST_CASE("slow down: rates, throttling, connection and thread limits")
    {
        check_all(
            {
                // Amazon SES (documented by AWS).
                {454, "Throttling failure: Maximum sending rate exceeded."},
                // Exchange Online: more than 3 concurrent SMTP AUTH connections to a mailbox.
                {432, "4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded "
                      "[Hostname=DM5SPR00MB2471.namprd08.prod.outlook.com]"},
                // Exchange receive connector message rate limit.
                {421, "4.4.2 Message submission rate for this client has exceeded the configured "
                      "limit"},
                // Postfix smtpd anvil limits (Debian 12's binary).
                {450, "4.7.1 Error: too much mail from 192.0.2.1"},
                {450, "4.7.1 Error: too many recipients from 192.0.2.1"},
                {421, "4.7.0 mx.example.net Error: too many connections from 192.0.2.1"},
                {450, "4.7.1 Error: too many AUTH commands from 192.0.2.1"},
                {421, "4.7.0 mx.example.net Error: too many new TLS sessions from 192.0.2.1"},
                {454, "4.7.0 Error: too many new TLS sessions from 192.0.2.1"},
                // Google's list of Gmail SMTP errors.
                {421, "4.4.5 Server busy, try again later. - gsmtp"},
                {421, "4.7.0 Try again later, closing connection. (EHLO) - gsmtp"},
                {421, "4.7.0 Our system has detected an unusual rate of unsolicited mail "
                      "originating from your IP address. To protect our users from spam, mail "
                      "sent from your IP address has been temporarily blocked. - gsmtp"},
                {450, "4.2.1 Peak SMTP relay limit exceeded for customer. - gsmtp"},
                // Patterns: generic rate-limit words, any class, any case.
                {451, "4.7.1 Rate limited, try again later"},
                {550, "5.7.1 RATE LIMIT EXCEEDED"},
                {450, "Too many messages in this session, slow down"},
                {421, "Too many concurrent SMTP connections from this IP address; please try "
                      "again later."},
                {454, "4.7.0 Too many login attempts, please try again later."},
                {451, "4.3.2 Please try again later"},
                // RFC 3463 statuses: X.3.2 system not accepting messages, X.4.5 congestion.
                {452, "4.3.2 System not accepting network messages"},
                {451, "4.4.5 Mail system congestion"},
                // 451 with a 4.7.x status: a provider deferring a sender.
                {451, "4.7.500 Server busy. Please try again later from [192.0.2.1]."},
                // A bare 421: the server closes the channel.
                {421, "Service not available, closing transmission channel"},
                {421, "4.3.2 Service not available"},
            },
            signal::slow_down);
    }

    TEST_CASE("none: success, other causes, one recipient's trouble")
    {
        check_all(
            {
                {250, "2.0.0 Ok: queued as 4ZxY1c0Hq9z"},
                {250, "Throttling is a word that may appear in a greeting"},
                {354, "End data with <CR><LF>.<CR><LF>"},
                {220, "mx.example.net ESMTP"},
                // A recipient's full mailbox is not our sending quota.
                {552, "5.2.2 Mailbox quota exceeded"},
                {452, "4.2.2 The email account that you tried to reach is over quota."},
                {552, "<jdoe@example.com>... Mail quota exceeded"},
                {552, "5.2.2 Daily receiving quota exceeded for this mailbox"},
                // Too many recipients for one message (Postfix and RFC 5321 §4.5.3.1.10).
                {452, "4.5.3 Error: too many recipients"},
                {452, "Too many recipients"},
                // Greylisting, timeouts, TLS, configuration, our own errors.
                {451, "4.7.1 Greylisting in action, please come back later"},
                {450, "4.7.1 <a@example.org>: Recipient address rejected: Greylisted"},
                {421, "4.4.2 mx.example.net Error: timeout exceeded"},
                {421, "4.7.0 TLS required for RCPT domain, closing connection. - gsmtp"},
                {454, "4.7.0 TLS not available due to local problem"},
                {421, "4.3.5 Server configuration error"},
                {421, "4.7.0 mx.example.net Error: too many errors"},
                // One recipient receiving too fast (Gmail) is about that recipient.
                {450, "4.2.1 The user you are trying to contact is receiving mail too quickly. "
                      "Please resend your message at a later time."},
                // Ordinary failures.
                {550, "5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"},
                {535, "5.7.8 Error: authentication failed: authentication failure"},
                {454, "4.7.0 Temporary authentication failure"},
                {451, "4.3.0 Mail server temporarily rejected message."},
                {554, "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
                      "zen.spamhaus.org"},
                {432, "A password transition is needed"}, // RFC 4954
                {450, "4.2.0 Mailbox temporarily unavailable"},
            },
            signal::none);
    }

    TEST_CASE("odd replies")
    {
        reply empty;
        CHECK(rate_signal(empty) == signal::none); // code 0, no lines
        reply no_lines;
        no_lines.code = 421;
        CHECK(rate_signal(no_lines) == signal::slow_down);
        // A status whose class disagrees with the code is not kept by the parser; the text is
        // still read.
        auto r = make(421, "5.4.5 text");
        CHECK_FALSE(r.status.has_value());
        CHECK(rate_signal(r) == signal::slow_down);
        CHECK(std::string(mailroom::limit::to_string(signal::none)) == "none");
        CHECK(std::string(mailroom::limit::to_string(signal::slow_down)) == "slow_down");
        CHECK(std::string(mailroom::limit::to_string(signal::quota_exhausted)) ==
              "quota_exhausted");
    }
}
