// mailroom::smtp::rate_signal: server replies that speak about our sending rate.
//
// No standard says "slow down" in SMTP: RFC 5321 §4.2.1 gives only the first digit's meaning and
// RFC 3463 a few fitting enhanced statuses (X.3.2 system not accepting network messages, X.4.5
// mail system congestion). Providers say it in words, so this reads the words, with the codes as
// a fallback. Each pattern below says where it comes from. A false "slow down" costs a halved
// rate that recovers within minutes; a missed one costs more rejected sends, so 421 (the server
// closing on us) counts unless its text names another cause.
#include <mailroom/smtp/rate_signal.hpp>
#include <mailroom/smtp/reply.hpp>

#include <initializer_list>
#include <string>
#include <string_view>

namespace mailroom::smtp {

namespace {

std::string lower_text(const reply& r)
{
    std::string out;
    for (const std::string& line : r.lines) {
        if (!out.empty())
            out += ' ';
        for (char c : line)
            out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    return out;
}

bool status_is(const reply& r, int cls, int subject, int detail)
{
    return r.status && r.status->cls == cls && r.status->subject == subject &&
           r.status->detail == detail;
}

// Words that say a sending quota or a daily limit ran out.
//
// - Amazon SES documents "454 Throttling failure: Daily message quota exceeded" for its SMTP
//   interface ("Errors related to the sending quotas for your Amazon SES account").
// - Google, as reported by Gmail users: "550 5.4.5 Daily user sending quota exceeded",
//   "550 5.4.5 Daily user sending limit exceeded"; Google's list of Workspace SMTP relay errors
//   describes a daily SMTP relay limit reached by a user or customer.
// - Exchange Online: "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"
//   when the SMTP AUTH recipients-per-day limit is reached (Microsoft's "SMTP submission
//   improvements" page).
// A recipient's full mailbox also says "quota exceeded" ("552 5.2.2 Mailbox quota exceeded",
// "Mail quota exceeded"): that is the recipient's storage, not our sending, so a quota counts
// only with words about sending or a day, and never with words about mailboxes or storage.
bool says_quota_exhausted(const std::string& t)
{
    auto has = [&](std::string_view w) {
        return t.find(w) != std::string::npos;
    };
    auto any = [&](std::initializer_list<std::string_view> ws) {
        for (std::string_view w : ws)
            if (has(w))
                return true;
        return false;
    };
    if (any({"mailbox", "storage", "disk", "receiving", "inbox"}))
        return false;
    if (!any({"exceed", "exhaust", "reached", "used up"}))
        return false;
    const bool daily = any({"daily", "per day", "24 hour", "24-hour"});
    if (has("quota") && (daily || any({"send", "submission"})))
        return true;
    return daily && has("limit");
}

// Words that say we send too fast or on too many connections.
//
// - Amazon SES: "454 Throttling failure: Maximum sending rate exceeded" (same SES page).
// - Exchange Online: "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded" (more than
//   3 concurrent SMTP AUTH connections to one mailbox); Exchange receive connectors:
//   "4.4.2 Message submission rate for this client has exceeded the configured limit".
// - Postfix smtpd's anvil limits (strings in Debian 12's /usr/lib/postfix/sbin/smtpd):
//   "450 4.7.1 Error: too much mail from %s", "450 4.7.1 Error: too many recipients from %s",
//   "421 4.7.0 %s Error: too many connections from %s", "450 4.7.1 Error: too many AUTH
//   commands from %s", "421 4.7.0 %s Error: too many new TLS sessions from %s". Its
//   "452 4.5.3 Error: too many recipients" (no "from") is a per-message limit, not a rate.
// - Google's "Gmail SMTP errors and codes" list: "421 4.4.5 Server busy, try again later.",
//   "450 4.2.1 Peak SMTP relay limit exceeded for customer". (Its 421 4.7.0 "unusual rate of
//   unsolicited mail ... temporarily blocked" counts as a 421, below.)
// - The generic words: rate limit(ed), throttl(ed|ing), congestion, slow down.
bool says_slow_down(const std::string& t)
{
    static constexpr std::string_view words[] = {
        "rate limit",
        "ratelimit",
        "rate-limit",
        "throttl",
        "congest",
        "slow down",
        "too much mail",
        "too many messages",
        "too many connections",
        "too many concurrent",
        "too many recipients from",
        "too many auth",
        "too many login",
        "too many new tls",
        "concurrent connection",
        "thread limit",
        "sending rate",
        "submission rate",
        "message rate",
        "relay limit",
        "server busy",
        "server is busy",
        "too busy",
    };
    for (std::string_view w : words)
        if (t.find(w) != std::string::npos)
            return true;
    return false;
}

// Failures that look like throttling by their code but have another cause.
bool other_cause(const reply& r, const std::string& t)
{
    // RFC 3463 §3.6: X.5.3 too many recipients for one message. Splitting it is the fix.
    if (r.status && r.status->subject == 5 && r.status->detail == 3)
        return true;
    // RFC 3463 §3.4: X.3.5 system incorrectly configured (Postfix: "421 4.3.5 Server
    // configuration error"). Sending slower fixes nothing.
    if (r.status && r.status->subject == 3 && r.status->detail == 5)
        return true;
    // Greylisting (per sender/recipient/IP triple); the server's idle timer (Postfix "421 4.4.2
    // ... Error: timeout exceeded"); TLS policy ("421 4.7.0 TLS required for RCPT domain");
    // our own bad commands (Postfix "421 4.7.0 ... Error: too many errors"); configuration.
    static constexpr std::string_view words[] = {
        "greylist", "graylist", "grey-list", "gray-list",       "timeout",       "timed out",
        "time out", "idle",     "tls",       "too many errors", "configuration",
    };
    for (std::string_view w : words)
        if (t.find(w) != std::string::npos)
            return true;
    return false;
}

} // namespace

limit::signal rate_signal(const reply& r)
{
    using limit::signal;
    if (r.code < 400 || r.code > 599)
        return signal::none;
    const std::string t = lower_text(r);
    if (says_quota_exhausted(t))
        return signal::quota_exhausted;
    // Google answers its daily limits with 5.4.5 (RFC 3463 defines X.4.5 as congestion, which
    // as a permanent failure means nothing else).
    if (status_is(r, 5, 4, 5))
        return signal::quota_exhausted;
    if (says_slow_down(t))
        return signal::slow_down;
    if (other_cause(r, t))
        return signal::none;
    // RFC 5321 §3.8: 421 is the server closing the channel, which a loaded or throttling
    // server does (Gmail "421 4.7.0 Try again later, closing connection.").
    if (r.code == 421)
        return signal::slow_down;
    // RFC 3463 §3.4 X.3.2 "System not accepting network messages ... excessive load"; §3.5
    // X.4.5 "Mail system congestion".
    if (status_is(r, 4, 3, 2) || status_is(r, 4, 4, 5))
        return signal::slow_down;
    // 451 with a security/policy status (4.7.x) is how several providers defer senders they
    // throttle; greylisting, the common exception, was ruled out above.
    if (r.code == 451 && r.status && r.status->cls == 4 && r.status->subject == 7)
        return signal::slow_down;
    return signal::none;
}

} // namespace mailroom::smtp
