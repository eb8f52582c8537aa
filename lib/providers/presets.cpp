// The provider presets: data, not code. Each entry says where its limits come from; where a
// provider publishes no figure, the comment says so and which conservative default is used
// instead. Figures as read in December 2026; providers change them without notice.
//
// A bucket per published limit: "per day" limits are 24-hour buckets (most providers count a
// rolling 24 hours; a bucket refills continuously, which is never faster than a rolling
// window allows once the first day is over). Bursts are left at the rate (0): a daily bucket
// may be used at once, as the provider allows.

#include <mailroom/providers/preset.hpp>

#include <algorithm>
#include <chrono>
#include <vector>

namespace mailroom::providers {

namespace {

using limit::charge;
using smtp::auth_mechanism;
using smtp::tls_mode;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr auto day = hours(24);

// Google: OAuth2 for Gmail's SMTP (XOAUTH2). Delegated: a user's refresh token; app-only: a
// service account with domain-wide delegation (JWT bearer grant) at the same endpoint, with
// the same scope.
constexpr std::string_view google_token_url = "https://oauth2.googleapis.com/token";
constexpr std::string_view google_scope = "https://mail.google.com/";

// Microsoft identity platform. Delegated (refresh token): "common" serves both work or school
// and personal (Outlook.com) accounts. App-only (client credentials): the tenant must be
// named; {tenant} is left for the user (providers::with_tenant). Scopes from
// https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
constexpr std::string_view microsoft_token_url =
    "https://login.microsoftonline.com/common/oauth2/v2.0/token";
constexpr std::string_view microsoft_scope = "https://outlook.office.com/SMTP.Send offline_access";
constexpr std::string_view microsoft_app_token_url =
    "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
constexpr std::string_view microsoft_app_scope = "https://outlook.office365.com/.default";

limit::bucket_options per(std::uint64_t rate, limit::duration period)
{
    return {.rate = rate, .per = period};
}

// Amazon SES, one preset per region (quotas and sandbox status are per region).
//
// Source: https://docs.aws.amazon.com/ses/latest/dg/request-production-access.html and
// https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas.html: an account starts in
// the sandbox in each region, where it "can send a maximum of 200 messages per 24-hour period"
// and SES "can accept a maximum of one message from your account per second". Quotas count
// recipients, not messages ("the number of recipients ... counts against your sending
// quota"), so the charge is per recipient. These are the SANDBOX defaults: an account out of
// the sandbox has its own quota, shown in the SES console (Account dashboard) or by
// GetSendQuota / GetAccount; set the buckets to it.
preset ses(std::string_view name, std::string_view display, std::string_view host)
{
    return {
        .name = name,
        .display_name = display,
        .host = host,
        .port = 587,
        .tls = tls_mode::required,
        .mechanism = auth_mechanism::plain,
        .limits = {.buckets = {per(1, seconds(1)), per(200, day)},
                   .charge_by = charge::per_recipient},
        .notes = "sandbox defaults (1 message/s, 200 per 24 hours, counted in recipients); an "
                 "account's real quota is in its SES console. User and password are SMTP "
                 "credentials made from IAM keys, not the keys themselves.",
        .source = "https://docs.aws.amazon.com/ses/latest/dg/request-production-access.html "
                  "https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas.html",
    };
}

std::vector<preset> make_table()
{
    std::vector<preset> t;

    // Gmail (consumer accounts). Source: https://support.google.com/mail/answer/22839 ("You
    // have reached a limit for sending mail"): an account may be blocked for up to 24 hours
    // after sending more than 500 messages (or to more than 500 recipients) in a day; Google
    // publishes no per-second figure. One bucket: 500 per 24 hours, per message. SMTP access
    // needs OAuth2 (XOAUTH2) or, with 2-step verification, an app password (then PLAIN).
    t.push_back({
        .name = "gmail",
        .display_name = "Gmail",
        .host = "smtp.gmail.com",
        .mechanism = auth_mechanism::xoauth2,
        .token_url = google_token_url,
        .scope = google_scope,
        .limits = {.buckets = {per(500, day)}},
        .notes = "500 messages per 24 hours; at most 100 recipients per message over SMTP. "
                 "XOAUTH2, or PLAIN with an app password.",
        .source = "https://support.google.com/mail/answer/22839",
    });

    // Google Workspace. Source: https://support.google.com/a/answer/166852 ("Gmail sending
    // limits in Google Workspace"): "Messages per day: 2,000 (500 for trial accounts)";
    // "Total recipients per day: 10,000"; "Recipients per message sent via SMTP ... 100";
    // limits apply over a rolling 24-hour period. Buckets: 2 000 per 24 hours (messages).
    // App-only: a service account with domain-wide delegation (JWT bearer) at the same
    // endpoint and scope. smtp-relay.gmail.com (the SMTP relay service) has other limits.
    t.push_back({
        .name = "google-workspace",
        .display_name = "Google Workspace",
        .host = "smtp.gmail.com",
        .mechanism = auth_mechanism::xoauth2,
        .token_url = google_token_url,
        .scope = google_scope,
        .app_token_url = google_token_url,
        .app_scope = google_scope,
        .limits = {.buckets = {per(2'000, day)}},
        .notes = "2 000 messages per 24 hours (500 on trial accounts), 10 000 recipients per "
                 "day, 100 recipients per message over SMTP. App-only: a service account with "
                 "domain-wide delegation (sub = the mailbox).",
        .source = "https://support.google.com/a/answer/166852",
    });

    // Outlook.com (personal Microsoft accounts). Source:
    // https://support.microsoft.com/en-us/office/sending-limits-in-outlook-com-279ee200-594c-40f0-9ec8-bb6af7735c2e
    // gives only the Microsoft 365 subscribers' figures ("Daily recipients: 5,000", "Maximum
    // recipients per message: 500", "Daily non-relationship recipients: 1,000") and says
    // limits "will be lower for non-subscribers" without a figure. Not published for free
    // accounts: mailroom's conservative default is 300 recipients per 24 hours, the figure
    // Microsoft's community answers give for free accounts
    // (https://learn.microsoft.com/en-us/answers/questions/5844111/maximum-emails-sent), not
    // an official one. Subscribers can raise the bucket to 5 000.
    t.push_back({
        .name = "outlook",
        .display_name = "Outlook.com",
        .host = "smtp-mail.outlook.com",
        .mechanism = auth_mechanism::xoauth2,
        .token_url = microsoft_token_url,
        .scope = microsoft_scope,
        .limits = {.buckets = {per(300, day)}, .charge_by = charge::per_recipient},
        .notes = "free accounts: no published figure, 300 recipients per 24 hours is "
                 "mailroom's conservative default; Microsoft 365 subscribers: 5 000 "
                 "recipients per day. New accounts start lower.",
        .source = "https://support.microsoft.com/en-us/office/"
                  "sending-limits-in-outlook-com-279ee200-594c-40f0-9ec8-bb6af7735c2e",
    });

    // Microsoft 365 / Exchange Online, SMTP AUTH client submission. Source:
    // https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/smtp-submission-improvements
    // "30 messages per minute", "Recipient rate limit of 10,000 recipients per day", and "Up
    // to three concurrent connections are allowed to send email messages at the same time"
    // (432 4.3.2 beyond). Also in
    // https://learn.microsoft.com/en-us/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits
    // Buckets: 30 per minute and 10 000 per 24 hours, charged per message (the per-minute
    // limit, the tighter one, counts messages; the daily one counts recipients, so messages
    // with several recipients may reach it sooner: lower the bucket for those). At most 3 in
    // flight. Basic authentication for SMTP AUTH is being turned off: use OAuth2 (delegated
    // with "common", or app-only with the tenant filled in).
    t.push_back({
        .name = "microsoft365",
        .display_name = "Microsoft 365 (Exchange Online)",
        .host = "smtp.office365.com",
        .mechanism = auth_mechanism::xoauth2,
        .token_url = microsoft_token_url,
        .scope = microsoft_scope,
        .app_token_url = microsoft_app_token_url,
        .app_scope = microsoft_app_scope,
        .limits = {.buckets = {per(30, minutes(1)), per(10'000, day)}, .max_in_flight = 3},
        .notes = "30 messages per minute, 10 000 recipients per day, 3 concurrent "
                 "connections per mailbox. App-only token URL: replace {tenant} with the "
                 "tenant ID or domain.",
        .source = "https://learn.microsoft.com/en-us/exchange/troubleshoot/send-emails/"
                  "smtp-submission-improvements",
    });

    // Amazon SES: the regions with an SMTP endpoint most accounts use; each is
    // email-smtp.REGION.amazonaws.com (https://docs.aws.amazon.com/general/latest/gr/ses.html).
    t.push_back(
        ses("ses-us-east-1", "Amazon SES (us-east-1)", "email-smtp.us-east-1.amazonaws.com"));
    t.push_back(
        ses("ses-us-east-2", "Amazon SES (us-east-2)", "email-smtp.us-east-2.amazonaws.com"));
    t.push_back(
        ses("ses-us-west-2", "Amazon SES (us-west-2)", "email-smtp.us-west-2.amazonaws.com"));
    t.push_back(ses("ses-ca-central-1", "Amazon SES (ca-central-1)",
                    "email-smtp.ca-central-1.amazonaws.com"));
    t.push_back(
        ses("ses-eu-west-1", "Amazon SES (eu-west-1)", "email-smtp.eu-west-1.amazonaws.com"));
    t.push_back(
        ses("ses-eu-west-2", "Amazon SES (eu-west-2)", "email-smtp.eu-west-2.amazonaws.com"));
    t.push_back(
        ses("ses-eu-west-3", "Amazon SES (eu-west-3)", "email-smtp.eu-west-3.amazonaws.com"));
    t.push_back(ses("ses-eu-central-1", "Amazon SES (eu-central-1)",
                    "email-smtp.eu-central-1.amazonaws.com"));
    t.push_back(
        ses("ses-eu-north-1", "Amazon SES (eu-north-1)", "email-smtp.eu-north-1.amazonaws.com"));
    t.push_back(
        ses("ses-ap-south-1", "Amazon SES (ap-south-1)", "email-smtp.ap-south-1.amazonaws.com"));
    t.push_back(ses("ses-ap-northeast-1", "Amazon SES (ap-northeast-1)",
                    "email-smtp.ap-northeast-1.amazonaws.com"));
    t.push_back(ses("ses-ap-southeast-1", "Amazon SES (ap-southeast-1)",
                    "email-smtp.ap-southeast-1.amazonaws.com"));
    t.push_back(ses("ses-ap-southeast-2", "Amazon SES (ap-southeast-2)",
                    "email-smtp.ap-southeast-2.amazonaws.com"));
    t.push_back(
        ses("ses-sa-east-1", "Amazon SES (sa-east-1)", "email-smtp.sa-east-1.amazonaws.com"));

    // SendGrid (Twilio). Source: https://sendgrid.com/en-us/pricing: the Free plan sends
    // "100 emails/day"; paid plans have monthly volumes and no published per-second SMTP rate.
    // SendGrid counts an email per recipient. Bucket: 100 per 24 hours, per recipient (the
    // free plan's figure; raise it for a paid plan). User name: the literal "apikey",
    // password: an API key.
    t.push_back({
        .name = "sendgrid",
        .display_name = "SendGrid",
        .host = "smtp.sendgrid.net",
        .limits = {.buckets = {per(100, day)}, .charge_by = charge::per_recipient},
        .notes = "Free plan: 100 emails per day (counted per recipient); paid plans: their "
                 "monthly volume. User 'apikey', password an API key.",
        .source = "https://sendgrid.com/en-us/pricing",
    });

    // Mailgun (US and EU regions). Source:
    // https://help.mailgun.com/hc/en-us/articles/115001124753-Account-Sending-Limitation: new
    // accounts may be on probation, which "limits the number of messages you can send per
    // hour", without a figure; https://www.mailgun.com/pricing/: the Free plan includes 100
    // emails per day. No per-second SMTP rate is published. Bucket: 100 per 24 hours, per
    // recipient (the free plan's figure: mailroom's conservative default; raise it for a paid
    // plan).
    t.push_back({
        .name = "mailgun",
        .display_name = "Mailgun (US)",
        .host = "smtp.mailgun.org",
        .limits = {.buckets = {per(100, day)}, .charge_by = charge::per_recipient},
        .notes = "Free plan: 100 emails per day; no published rate for paid plans; new "
                 "accounts may be limited per hour until verified. SMTP credentials per "
                 "sending domain.",
        .source = "https://www.mailgun.com/pricing/ "
                  "https://help.mailgun.com/hc/en-us/articles/"
                  "115001124753-Account-Sending-Limitation",
    });
    t.push_back({
        .name = "mailgun-eu",
        .display_name = "Mailgun (EU)",
        .host = "smtp.eu.mailgun.org",
        .limits = {.buckets = {per(100, day)}, .charge_by = charge::per_recipient},
        .notes = "as mailgun, for domains in Mailgun's EU region.",
        .source = "https://www.mailgun.com/pricing/ "
                  "https://help.mailgun.com/hc/en-us/articles/"
                  "115001124753-Account-Sending-Limitation",
    });

    // Postmark. Source: https://postmarkapp.com/developer/user-guide/send-email-with-smtp
    // (smtp.postmarkapp.com, ports 25, 2525 or 587, STARTTLS; user and password both the
    // Server API token). Postmark publishes no sending-rate limit for SMTP (the API answers
    // 429 when throttled). Not published: mailroom's conservative default is 10 messages per
    // second, no daily bucket.
    t.push_back({
        .name = "postmark",
        .display_name = "Postmark",
        .host = "smtp.postmarkapp.com",
        .limits = {.buckets = {per(10, seconds(1))}},
        .notes = "no published rate: 10 messages/s is mailroom's conservative default. User "
                 "and password: the Server API token.",
        .source = "https://postmarkapp.com/developer/user-guide/send-email-with-smtp",
    });

    // Brevo (formerly Sendinblue). Sources: https://developers.brevo.com/docs/smtp-integration
    // (smtp-relay.brevo.com, port 587); https://help.brevo.com/hc/en-us/articles/8292912279954:
    // the free plan can't send "more than 300 emails per day". Brevo counts an email per
    // recipient. Bucket: 300 per 24 hours, per recipient (free plan; paid plans have no daily
    // limit, only their monthly volume).
    t.push_back({
        .name = "brevo",
        .display_name = "Brevo",
        .host = "smtp-relay.brevo.com",
        .limits = {.buckets = {per(300, day)}, .charge_by = charge::per_recipient},
        .notes = "free plan: 300 emails per day (per recipient); paid plans: no daily limit. "
                 "Password: an SMTP key, not an API key.",
        .source = "https://help.brevo.com/hc/en-us/articles/8292912279954 "
                  "https://developers.brevo.com/docs/smtp-integration",
    });

    // Fastmail. Source: https://www.fastmail.com/help/account/limits.html ("Account
    // limits") lists per-plan sending limits; the figures could not be confirmed when this
    // table was written (the copy read showed only storage limits). Not confirmed: mailroom's
    // conservative default is 1 000 recipients per 24 hours. Password: an app password.
    t.push_back({
        .name = "fastmail",
        .display_name = "Fastmail",
        .host = "smtp.fastmail.com",
        .limits = {.buckets = {per(1'000, day)}, .charge_by = charge::per_recipient},
        .notes = "limits per plan on Fastmail's page, not confirmed here: 1 000 recipients "
                 "per 24 hours is mailroom's conservative default. Password: an app password.",
        .source = "https://www.fastmail.com/help/account/limits.html",
    });

    // Zoho Mail. Source: https://www.zoho.com/mail/help/adminconsole/rates-and-limits.html:
    // "Outgoing emails (External): 50-500 emails/hour", a dynamic limit based on sender
    // reputation, over a rolling hour; 100 external recipients per message (free), 150
    // (paid). Bucket: the low end, 50 per hour, per recipient. smtp.zoho.eu, .in, ... serve
    // accounts in other data centres (override host).
    t.push_back({
        .name = "zoho",
        .display_name = "Zoho Mail",
        .host = "smtp.zoho.com",
        .limits = {.buckets = {per(50, hours(1))}, .charge_by = charge::per_recipient},
        .notes = "50-500 external emails per hour depending on reputation: the low end here. "
                 "Accounts in other data centres use smtp.zoho.eu, smtp.zoho.in, ...",
        .source = "https://www.zoho.com/mail/help/adminconsole/rates-and-limits.html",
    });

    // iCloud Mail. Source: https://support.apple.com/en-us/102198 ("Mailbox size and message
    // sending limits in iCloud"): "The total number of messages you can send each day (1000
    // messages)", "The number of recipients you can message each day (1000 recipients)",
    // "The maximum number of recipients per message (500 recipients)". Bucket: 1 000 per
    // 24 hours, per recipient (the recipient limit is the one a message can't exceed without
    // the message one too). Password: an app-specific password.
    t.push_back({
        .name = "icloud",
        .display_name = "iCloud Mail",
        .host = "smtp.mail.me.com",
        .limits = {.buckets = {per(1'000, day)}, .charge_by = charge::per_recipient},
        .notes = "1 000 messages and 1 000 recipients per day, 500 recipients per message. "
                 "Password: an app-specific password.",
        .source = "https://support.apple.com/en-us/102198",
    });

    // Yahoo Mail. Source: https://help.yahoo.com/kb/SLN17518.html (Yahoo Small Business
    // mail, "SMTP sending limits"): "Outbound email messages are limited to 500 per day",
    // "Each recipient of a message counts as one email towards the 500 daily limit". Yahoo
    // publishes no figure for consumer accounts: the same 500 recipients per 24 hours is
    // used. Password: an app password.
    t.push_back({
        .name = "yahoo",
        .display_name = "Yahoo Mail",
        .host = "smtp.mail.yahoo.com",
        .limits = {.buckets = {per(500, day)}, .charge_by = charge::per_recipient},
        .notes = "500 per day, each recipient counting as one (published for Yahoo's business "
                 "mail; no figure for consumer accounts). Password: an app password.",
        .source = "https://help.yahoo.com/kb/SLN17518.html",
    });

    std::sort(t.begin(), t.end(), [](const preset& a, const preset& b) { return a.name < b.name; });
    return t;
}

char lower(char c) noexcept
{
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

} // namespace

std::span<const preset> presets()
{
    static const std::vector<preset> table = make_table();
    return table;
}

const preset* find(std::string_view name)
{
    for (const preset& p : presets())
        if (p.name.size() == name.size() &&
            std::equal(name.begin(), name.end(), p.name.begin(),
                       [](char a, char b) { return lower(a) == lower(b); }))
            return &p;
    return nullptr;
}

smtp::client_options client_options_for(const preset& p)
{
    smtp::client_options o;
    o.host = std::string(p.host);
    o.port = p.port;
    o.tls.mode = p.tls;
    smtp::credentials c;
    c.mechanism = p.mechanism;
    o.auth = std::move(c);
    return o;
}

limit::rate_limiter_options limits_for(const preset& p)
{
    return p.limits;
}

std::string with_tenant(std::string_view url, std::string_view tenant)
{
    std::string out;
    for (;;) {
        const auto at = url.find(tenant_placeholder);
        out += url.substr(0, at);
        if (at == std::string_view::npos)
            return out;
        out += tenant;
        url.remove_prefix(at + tenant_placeholder.size());
    }
}

} // namespace mailroom::providers
