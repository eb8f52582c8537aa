// --provider NAME for send and bulk (the server, TLS mode, AUTH mechanism and, for bulk, the
// rate buckets of a preset, each overridden by its own option wherever it stands on the
// command line), `mailroom providers` (the presets as a table or JSON), and the settings a
// run uses, for bulk's --json summary and --dry-run.

#include "cli.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace mailroom::cli {

namespace {

char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowered(std::string_view s)
{
    std::string out(s);
    for (char& c : out)
        c = lower(c);
    return out;
}

// Levenshtein distance, for "did you mean".
std::size_t distance(std::string_view a, std::string_view b)
{
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

// Presets whose names are near `name`: a small edit away, or starting with it ("ses").
std::vector<std::string_view> close_names(std::string_view name)
{
    const std::string n = lowered(name);
    const std::size_t tolerance = std::max<std::size_t>(2, n.size() / 3);
    std::vector<std::string_view> out;
    for (const auto& p : providers::presets())
        if (distance(n, p.name) <= tolerance || (n.size() >= 2 && p.name.starts_with(n)))
            out.push_back(p.name);
    return out;
}

const char* tls_name(smtp::tls_mode m)
{
    switch (m) {
    case smtp::tls_mode::required: return "required";
    case smtp::tls_mode::opportunistic: return "opportunistic";
    case smtp::tls_mode::none: return "none";
    case smtp::tls_mode::implicit: return "implicit";
    }
    return "required";
}

const char* charge_name(limit::charge c)
{
    return c == limit::charge::per_recipient ? "recipient" : "message";
}

std::string json_or_null(std::string_view s)
{
    return s.empty() ? "null" : json_string(s);
}

std::string buckets_json(const limit::rate_limiter_options& l)
{
    std::string j = "{\"charge\":" + json_string(charge_name(l.charge_by));
    j += ",\"max_in_flight\":" + std::to_string(l.max_in_flight) + ",\"buckets\":[";
    bool first = true;
    for (const auto& b : l.buckets) {
        if (!first)
            j += ',';
        first = false;
        const auto per_ns = std::chrono::nanoseconds(b.per).count();
        char per[64];
        if (per_ns % 1'000'000'000 == 0)
            std::snprintf(per, sizeof per, "%lld", static_cast<long long>(per_ns / 1'000'000'000));
        else
            std::snprintf(per, sizeof per, "%.9f", static_cast<double>(per_ns) / 1e9);
        j += "{\"rate\":" + std::to_string(b.rate) + ",\"per_seconds\":" + per +
             ",\"burst\":" + std::to_string(b.burst ? b.burst : b.rate) +
             ",\"text\":" + json_string(rate_text(b)) + "}";
    }
    return j + "]}";
}

} // namespace

std::string rate_text(const limit::bucket_options& b)
{
    using namespace std::chrono;
    std::string t = std::to_string(b.rate) + "/";
    if (b.per == seconds(1))
        t += "s";
    else if (b.per == minutes(1))
        t += "m";
    else if (b.per == hours(1))
        t += "h";
    else if (b.per == hours(24))
        t += "d";
    else if (b.per % seconds(1) == limit::duration::zero())
        t += std::to_string(duration_cast<seconds>(b.per).count()) + "s";
    else
        t += std::to_string(duration_cast<nanoseconds>(b.per).count()) + "ns";
    if (b.burst != 0 && b.burst != b.rate)
        t += " (burst " + std::to_string(b.burst) + ")";
    return t;
}

std::string limits_text(const limit::rate_limiter_options& l)
{
    if (l.buckets.empty())
        return "none";
    std::string t;
    for (const auto& b : l.buckets)
        t += (t.empty() ? "" : ", ") + rate_text(b);
    if (l.charge_by == limit::charge::per_recipient)
        t += " (recipients)";
    if (l.max_in_flight)
        t += ", " + std::to_string(l.max_in_flight) + " at once";
    return t;
}

const providers::preset& provider_named(const std::string& name)
{
    if (const auto* p = providers::find(name))
        return *p;
    std::string why = "--provider: no provider '" + name + "'";
    const auto near = close_names(name);
    if (!near.empty()) {
        why += "; did you mean ";
        for (std::size_t i = 0; i < near.size(); ++i)
            why +=
                std::string(i ? (i + 1 == near.size() ? " or " : ", ") : "") + std::string(near[i]);
        why += "?";
    }
    why += " ('mailroom providers' lists them)";
    throw failure(ex_usage, why);
}

// What --server, --tls and --auth left unsaid, from the preset. --server names host and port
// (and implicit TLS with smtps://); --tls the STARTTLS policy; --auth the mechanism. The
// preset's mechanism is used only where it suits the credentials given: a bearer mechanism
// (XOAUTH2) when a token is given rather than a password, PLAIN and the like when a password
// is; otherwise the client chooses, as without a preset.
void server_options::apply_provider(smtp::client_options& o) const
{
    if (!provider_)
        return;
    if (!url_) {
        o.host = std::string(provider_->host);
        o.port = provider_->port;
        if (!tls_mode_)
            o.tls.mode = provider_->tls;
    }
    if (!auth_ && o.auth && !o.auth->mechanism) {
        const bool bearer = provider_->mechanism == smtp::auth_mechanism::xoauth2 ||
                            provider_->mechanism == smtp::auth_mechanism::oauthbearer;
        if (bearer == o.auth->password.empty())
            o.auth->mechanism = provider_->mechanism;
    }
}

limit::rate_limiter_options limit_options::limits_for(const providers::preset* p,
                                                      bool charge_given) const
{
    if (!p)
        return limits();
    // The preset's, with what was given in its place: --rate's buckets (with --burst), --charge.
    limit::rate_limiter_options o = p->limits;
    if (!rates_.empty())
        o.buckets = limits().buckets;
    else if (burst_)
        throw failure(ex_usage, "--burst needs --rate (the provider's buckets have their own)");
    if (charge_given)
        o.charge_by = charge_;
    return o;
}

limit::store_options limit_options::store_for(const providers::preset* p) const
{
    if (!p || !rates_.empty())
        return store();
    limit_options with_rates = *this; // --limit-store needs buckets: the provider's count
    with_rates.rates_ = p->limits.buckets;
    return with_rates.store();
}

std::string settings_json(const smtp::client_options& o, const limit::rate_limiter_options& l,
                          const providers::preset* p)
{
    const std::uint16_t port =
        o.port ? o.port : (o.tls.mode == smtp::tls_mode::implicit ? 465 : 587);
    std::string j = "\"provider\":" + (p ? json_string(p->name) : std::string("null"));
    j += ",\"server\":{\"host\":" + json_string(o.host) + ",\"port\":" + std::to_string(port);
    j += ",\"tls\":" + json_string(tls_name(o.tls.mode)) + ",\"auth\":";
    j += o.auth && o.auth->mechanism ? json_string(smtp::to_string(*o.auth->mechanism))
                                     : std::string("null");
    j += "},\"limits\":" + buckets_json(l);
    return j;
}

void print_settings(const smtp::client_options& o, const limit::rate_limiter_options& l,
                    const providers::preset* p, bool json)
{
    if (json) {
        std::printf("{\"dry_run\":true,%s}\n", settings_json(o, l, p).c_str());
        return;
    }
    const std::uint16_t port =
        o.port ? o.port : (o.tls.mode == smtp::tls_mode::implicit ? 465 : 587);
    if (p)
        std::printf("provider %.*s (%.*s)\n", static_cast<int>(p->name.size()), p->name.data(),
                    static_cast<int>(p->display_name.size()), p->display_name.data());
    std::printf("server %s:%u, tls %s, auth %s\n", o.host.c_str(), static_cast<unsigned>(port),
                tls_name(o.tls.mode),
                o.auth ? (o.auth->mechanism ? std::string(smtp::to_string(*o.auth->mechanism))
                                            : std::string("negotiated"))
                             .c_str()
                       : "none");
    std::printf("limits %s, charged per %s\n", limits_text(l).c_str(), charge_name(l.charge_by));
}

int providers_main(std::span<char*> argv)
{
    arg_reader args(argv);
    bool json = false;
    for (std::string_view flag = args.next_flag(); !flag.empty(); flag = args.next_flag()) {
        if (flag == "--help" || flag == "-h") {
            std::printf("%s", providers_usage());
            return ex_ok;
        }
        if (flag == "--version") {
            print_version();
            return ex_ok;
        }
        if (flag == "--json")
            json = true;
        else
            throw failure(ex_usage, "providers: unknown option " + std::string(flag));
    }
    const auto all = providers::presets();
    if (json) {
        std::string j = "{\"providers\":[";
        bool first = true;
        for (const auto& p : all) {
            if (!first)
                j += ',';
            first = false;
            j += "{\"name\":" + json_string(p.name);
            j += ",\"display_name\":" + json_string(p.display_name);
            j += ",\"host\":" + json_string(p.host);
            j += ",\"port\":" + std::to_string(p.port);
            j += ",\"tls\":" + json_string(tls_name(p.tls));
            j += ",\"auth\":" + json_string(smtp::to_string(p.mechanism));
            j += ",\"token_url\":" + json_or_null(p.token_url);
            j += ",\"scope\":" + json_or_null(p.scope);
            j += ",\"app_token_url\":" + json_or_null(p.app_token_url);
            j += ",\"app_scope\":" + json_or_null(p.app_scope);
            j += ",\"limits\":" + buckets_json(p.limits);
            j += ",\"limits_text\":" + json_string(limits_text(p.limits));
            j += ",\"notes\":" + json_string(p.notes);
            j += ",\"source\":" + json_string(p.source) + "}";
        }
        j += "]}";
        std::printf("%s\n", j.c_str());
        return ex_ok;
    }
    std::size_t w_name = 4, w_server = 6;
    for (const auto& p : all) {
        w_name = std::max(w_name, p.name.size());
        w_server = std::max(w_server, p.host.size() + 1 + std::to_string(p.port).size());
    }
    std::printf("%-*s  %-*s  %-8s  %-8s  %s\n", static_cast<int>(w_name), "NAME",
                static_cast<int>(w_server), "SERVER", "TLS", "AUTH", "LIMITS");
    for (const auto& p : all) {
        const std::string server = std::string(p.host) + ":" + std::to_string(p.port);
        std::printf("%-*.*s  %-*s  %-8s  %-8.*s  %s\n", static_cast<int>(w_name),
                    static_cast<int>(p.name.size()), p.name.data(), static_cast<int>(w_server),
                    server.c_str(), tls_name(p.tls),
                    static_cast<int>(smtp::to_string(p.mechanism).size()),
                    smtp::to_string(p.mechanism).data(), limits_text(p.limits).c_str());
    }
    std::fflush(stdout);
    return ex_ok;
}

const char* providers_usage()
{
    return "usage: mailroom providers [--json]\n"
           "lists the provider presets that send and bulk take with --provider NAME: the\n"
           "server (host:port), TLS mode, AUTH mechanism and the provider's published default\n"
           "sending limits (R/s, R/m, R/h, R/d; '(recipients)': counted per recipient).\n"
           "Limits are a new or free account's defaults; an account's own quota may differ.\n"
           "  --json                 the presets as JSON on stdout, with each one's OAuth2\n"
           "                         token URL and scope, notes and the source of its limits\n";
}

} // namespace mailroom::cli
