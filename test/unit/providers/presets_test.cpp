// providers::presets(), find(), client_options_for(), limits_for(), with_tenant()
// (lib/providers/presets.cpp): every entry is well formed (host a domain name, port set, token
// URLs https, limits that the rate limiter itself accepts), names are unique and lower case,
// lookup ignores case, and a preset's fields can be overridden.

#include <mailroom/limit/rate_limiter.hpp>
#include <mailroom/providers/preset.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <string>

using namespace std::chrono_literals;
using namespace mailroom;

namespace {

bool is_ldh(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

// A host name as RFC 1123 §2.1 has it (lower case here): dot-separated labels of letters,
// digits and hyphens, 1..63 octets, no hyphen at either end, at least two labels, 253 at most.
bool valid_domain(std::string_view h)
{
    if (h.empty() || h.size() > 253)
        return false;
    int labels = 0;
    while (true) {
        const auto dot = h.find('.');
        const std::string_view label = h.substr(0, dot);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
            return false;
        for (char c : label)
            if (!is_ldh(c))
                return false;
        ++labels;
        if (dot == std::string_view::npos)
            break;
        h.remove_prefix(dot + 1);
    }
    return labels >= 2;
}

// "https://host/path...": an https URL with a host name (the {tenant} placeholder filled).
bool valid_https_url(std::string_view url)
{
    const std::string filled = providers::with_tenant(url, "contoso.onmicrosoft.com");
    std::string_view u = filled;
    if (!u.starts_with("https://"))
        return false;
    u.remove_prefix(8);
    const auto slash = u.find('/');
    if (slash == std::string_view::npos || slash + 1 >= u.size())
        return false;
    for (char c : u.substr(slash))
        if (c <= ' ' || c >= 0x7F || c == '{' || c == '}')
            return false;
    return valid_domain(u.substr(0, slash));
}

} // namespace

TEST_CASE("presets: the table holds every provider the issue names")
{
    for (const char* name : {"gmail", "google-workspace", "outlook", "microsoft365",
                             "ses-us-east-1", "ses-eu-west-1", "sendgrid", "mailgun", "mailgun-eu",
                             "postmark", "brevo", "fastmail", "zoho", "icloud", "yahoo"}) {
        INFO(name);
        CHECK(providers::find(name) != nullptr);
    }
    CHECK(providers::presets().size() >= 25);
}

TEST_CASE("presets: every entry is well formed")
{
    std::set<std::string_view> names;
    for (const providers::preset& p : providers::presets()) {
        INFO(p.name);
        // Names: unique, lower case, usable on a command line.
        CHECK(names.insert(p.name).second);
        CHECK(!p.name.empty());
        for (char c : p.name)
            CHECK(is_ldh(c));
        CHECK(!p.display_name.empty());
        CHECK(valid_domain(p.host));
        CHECK(p.port != 0);
        CHECK((p.tls == smtp::tls_mode::required || p.tls == smtp::tls_mode::implicit));
        CHECK((p.tls == smtp::tls_mode::implicit) == (p.port == 465));
        CHECK(!p.source.empty());
        CHECK(p.source.starts_with("https://"));
        CHECK(!p.notes.empty());

        // OAuth2: a token URL and a scope together, both or neither; XOAUTH2 only with them.
        CHECK(p.token_url.empty() == p.scope.empty());
        CHECK(p.app_token_url.empty() == p.app_scope.empty());
        if (!p.token_url.empty())
            CHECK(valid_https_url(p.token_url));
        if (!p.app_token_url.empty())
            CHECK(valid_https_url(p.app_token_url));
        const bool bearer = p.mechanism == smtp::auth_mechanism::xoauth2 ||
                            p.mechanism == smtp::auth_mechanism::oauthbearer;
        CHECK(bearer == !p.token_url.empty());
        // Only the tenant placeholder may be left to fill, and only in the app-only URL.
        CHECK(p.token_url.find('{') == std::string_view::npos);

        // Limits: what the limiter accepts, with at least one bucket.
        CHECK(!p.limits.buckets.empty());
        diagnostics d;
        auto l = limit::rate_limiter::create(p.limits, limit::time_point{}, d);
        INFO(d.to_string());
        CHECK(l.has_value());
        for (const auto& b : p.limits.buckets) {
            CHECK(b.rate > 0);
            CHECK(b.per > limit::duration::zero());
        }
    }
    // Sorted by name.
    CHECK(std::is_sorted(providers::presets().begin(), providers::presets().end(),
                         [](const auto& a, const auto& b) { return a.name < b.name; }));
}

TEST_CASE("presets: the figures the sources give")
{
    const auto* g = providers::find("gmail");
    REQUIRE(g);
    CHECK(g->host == "smtp.gmail.com");
    CHECK(g->port == 587);
    CHECK(g->mechanism == smtp::auth_mechanism::xoauth2);
    CHECK(g->token_url == "https://oauth2.googleapis.com/token");
    CHECK(g->scope == "https://mail.google.com/");
    REQUIRE(g->limits.buckets.size() == 1);
    CHECK(g->limits.buckets[0].rate == 500);
    CHECK(g->limits.buckets[0].per == 24h);

    const auto* w = providers::find("google-workspace");
    REQUIRE(w);
    REQUIRE(w->limits.buckets.size() == 1);
    CHECK(w->limits.buckets[0].rate == 2000);
    CHECK(w->limits.buckets[0].per == 24h);

    const auto* m = providers::find("microsoft365");
    REQUIRE(m);
    CHECK(m->host == "smtp.office365.com");
    CHECK(m->token_url == "https://login.microsoftonline.com/common/oauth2/v2.0/token");
    CHECK(m->scope == "https://outlook.office.com/SMTP.Send offline_access");
    CHECK(m->app_token_url == "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token");
    CHECK(m->app_scope == "https://outlook.office365.com/.default");
    REQUIRE(m->limits.buckets.size() == 2);
    CHECK(m->limits.buckets[0].rate == 30);
    CHECK(m->limits.buckets[0].per == 1min);
    CHECK(m->limits.buckets[1].rate == 10000);
    CHECK(m->limits.buckets[1].per == 24h);
    CHECK(m->limits.max_in_flight == 3);

    const auto* o = providers::find("outlook");
    REQUIRE(o);
    CHECK(o->token_url.find("/common/") != std::string_view::npos);
    CHECK(o->app_token_url.empty());

    for (const auto& p : providers::presets()) {
        if (!p.name.starts_with("ses-"))
            continue;
        INFO(p.name);
        const std::string region(p.name.substr(4));
        CHECK(p.host == "email-smtp." + region + ".amazonaws.com");
        CHECK(p.limits.charge_by == limit::charge::per_recipient);
        REQUIRE(p.limits.buckets.size() == 2);
        CHECK(p.limits.buckets[0].rate == 1);
        CHECK(p.limits.buckets[0].per == 1s);
        CHECK(p.limits.buckets[1].rate == 200);
        CHECK(p.limits.buckets[1].per == 24h);
        CHECK(p.notes.find("sandbox") != std::string_view::npos);
    }
}

TEST_CASE("presets: find ignores case and nothing else")
{
    const auto* g = providers::find("gmail");
    REQUIRE(g);
    CHECK(providers::find("GMAIL") == g);
    CHECK(providers::find("GMail") == g);
    CHECK(providers::find("SES-EU-WEST-1") == providers::find("ses-eu-west-1"));
    CHECK(providers::find("ses-eu-west-1") != nullptr);
    CHECK(providers::find("") == nullptr);
    CHECK(providers::find("gmai") == nullptr);
    CHECK(providers::find("gmail ") == nullptr);
    CHECK(providers::find(" gmail") == nullptr);
    CHECK(providers::find("nosuch") == nullptr);
    CHECK(providers::find(std::string_view("gmail\0", 6)) == nullptr);
}

TEST_CASE("presets: client options and limits, then overrides")
{
    const auto* p = providers::find("microsoft365");
    REQUIRE(p);
    smtp::client_options o = providers::client_options_for(*p);
    CHECK(o.host == "smtp.office365.com");
    CHECK(o.port == 587);
    CHECK(o.tls.mode == smtp::tls_mode::required);
    REQUIRE(o.auth.has_value());
    CHECK(o.auth->mechanism == smtp::auth_mechanism::xoauth2);
    CHECK(o.auth->username.empty());
    CHECK(o.auth->password.empty());
    CHECK(!o.auth->token_provider);
    // The rest stays as client_options has it.
    CHECK(o.helo_name == smtp::client_options{}.helo_name);
    CHECK(o.tls.verify);

    // The user fills the credentials and overrides any field.
    o.auth->username = "alerts@contoso.example";
    o.auth->token_provider = [](bool) {
        return std::string("token");
    };
    o.host = "smtp-relay.example.net";
    o.port = 2525;
    o.auth->mechanism = smtp::auth_mechanism::oauthbearer;
    CHECK(o.host == "smtp-relay.example.net");
    CHECK(o.auth->token_provider(false) == "token");

    limit::rate_limiter_options l = providers::limits_for(*p);
    CHECK(l.buckets.size() == p->limits.buckets.size());
    l.buckets[1].rate = 5000;
    l.charge_by = limit::charge::per_recipient;
    // A copy: the table is unchanged.
    CHECK(p->limits.buckets[1].rate == 10000);
    CHECK(p->limits.charge_by == limit::charge::per_message);
    CHECK(limit::rate_limiter::create(l, limit::time_point{}).has_value());

    // A preset of one's own, from a copy.
    providers::preset mine = *p;
    mine.host = "smtp.example.org";
    mine.port = 465;
    mine.tls = smtp::tls_mode::implicit;
    const auto mo = providers::client_options_for(mine);
    CHECK(mo.host == "smtp.example.org");
    CHECK(mo.port == 465);
    CHECK(mo.tls.mode == smtp::tls_mode::implicit);
    CHECK(providers::find("microsoft365")->host == "smtp.office365.com");

    // A password service: PLAIN, no OAuth2.
    const auto* s = providers::find("ses-eu-west-1");
    REQUIRE(s);
    const auto so = providers::client_options_for(*s);
    REQUIRE(so.auth.has_value());
    CHECK(so.auth->mechanism == smtp::auth_mechanism::plain);
    CHECK(so.host == "email-smtp.eu-west-1.amazonaws.com");
}

TEST_CASE("presets: with_tenant fills the placeholder")
{
    const auto* p = providers::find("microsoft365");
    REQUIRE(p);
    CHECK(providers::with_tenant(p->app_token_url, "contoso.onmicrosoft.com") ==
          "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
    CHECK(providers::with_tenant("no placeholder", "x") == "no placeholder");
    CHECK(providers::with_tenant("{tenant}/{tenant}", "t") == "t/t");
    CHECK(providers::with_tenant("", "t").empty());
    CHECK(providers::with_tenant("{tenant", "t") == "{tenant");
}
