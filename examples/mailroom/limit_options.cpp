// The rate-limit options shared by send and bulk: the buckets (--rate, --burst, --charge) and
// where their state lives (--limit-store and its companions).

#include "cli.hpp"

#include <cerrno>
#include <cstdlib>

namespace mailroom::cli {

std::uint64_t parse_count(const std::string& flag, const std::string& v, std::uint64_t min,
                          std::uint64_t max)
{
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || v[0] == '-' || n < min || n > max)
        throw failure(ex_usage, flag + ": expected a whole number from " + std::to_string(min) +
                                    " to " + std::to_string(max));
    return n;
}

namespace {

// "R/s", "R/m", "R/h", "R/d".
limit::bucket_options parse_rate(const std::string& v)
{
    const auto slash = v.find('/');
    if (slash == std::string::npos || slash + 2 != v.size())
        throw failure(ex_usage, "--rate: expected R/s, R/m, R/h or R/d, got '" + v + "'");
    limit::bucket_options b;
    b.rate = parse_count("--rate", v.substr(0, slash), 1, 1'000'000'000);
    switch (v[slash + 1]) {
    case 's': b.per = std::chrono::seconds(1); break;
    case 'm': b.per = std::chrono::minutes(1); break;
    case 'h': b.per = std::chrono::hours(1); break;
    case 'd': b.per = std::chrono::hours(24); break;
    default: throw failure(ex_usage, "--rate: the unit is s, m, h or d, got '" + v + "'");
    }
    return b;
}

} // namespace

bool limit_options::take(std::string_view flag, arg_reader& args)
{
    const std::string f(flag);
    if (flag == "--rate")
        rates_.push_back(parse_rate(args.value()));
    else if (flag == "--burst")
        burst_ = parse_count(f, args.value(), 1, 1'000'000'000);
    else if (flag == "--charge") {
        const std::string v = args.value();
        if (v == "message")
            charge_ = limit::charge::per_message;
        else if (v == "recipient")
            charge_ = limit::charge::per_recipient;
        else
            throw failure(ex_usage, "--charge: expected message or recipient");
    } else if (flag == "--limit-store") {
        const std::string v = args.value();
        diagnostics d;
        auto o = redis::options::from_url(v, d);
        if (!o)
            throw failure(ex_usage, "--limit-store: " + error_text(o.error(), d.to_string()));
        // Secrets never on the command line, where other users can read them (ps).
        if (!o->password.empty())
            throw failure(ex_usage, "--limit-store: no password in the URL; use "
                                    "--limit-store-password-env VAR or "
                                    "--limit-store-password-file FILE");
        store_.kind = limit::store_kind::redis;
        store_.redis = std::move(*o);
    } else if (flag == "--limit-key")
        store_.key = args.value();
    else if (flag == "--limit-store-password-env") {
        const std::string var = args.value();
        const char* v = std::getenv(var.c_str());
        if (!v || !*v)
            throw failure(ex_usage, "--limit-store-password-env: the environment variable " + var +
                                        " is not set");
        password_ = v;
    } else if (flag == "--limit-store-password-file") {
        std::string p = read_file_or_fail("--limit-store-password-file", args.value());
        while (!p.empty() && (p.back() == '\n' || p.back() == '\r'))
            p.pop_back();
        password_ = std::move(p);
    } else if (flag == "--limit-store-fallback") {
        const std::string v = args.value();
        if (v == "wait")
            store_.when_unavailable = limit::unavailable_policy::wait;
        else if (v == "local")
            store_.when_unavailable = limit::unavailable_policy::local_fallback;
        else
            throw failure(ex_usage, "--limit-store-fallback: expected wait or local");
    } else if (flag == "--limit-processes")
        store_.expected_processes =
            static_cast<unsigned>(parse_count(f, args.value(), 1, 1'000'000));
    else
        return false;
    return true;
}

limit::rate_limiter_options limit_options::limits() const
{
    if (burst_ && rates_.empty())
        throw failure(ex_usage, "--burst needs --rate");
    limit::rate_limiter_options o;
    o.buckets = rates_;
    for (auto& b : o.buckets)
        b.burst = burst_.value_or(b.rate);
    o.charge_by = charge_;
    return o;
}

limit::store_options limit_options::store() const
{
    limit::store_options s = store_;
    if (s.kind == limit::store_kind::local) {
        if (!s.key.empty() || password_ || s.when_unavailable != limit::unavailable_policy::wait ||
            s.expected_processes != 1)
            throw failure(ex_usage, "--limit-key, --limit-store-password-*, "
                                    "--limit-store-fallback and --limit-processes need "
                                    "--limit-store");
        return s;
    }
    if (rates_.empty())
        throw failure(ex_usage, "--limit-store needs --rate");
    if (password_)
        s.redis.password = *password_;
    return s;
}

const char* limit_options::usage()
{
    return "  --charge WHAT          what one message costs: message (default) or recipient\n"
           "                         (one token per envelope recipient)\n"
           "  --limit-store URL      keep the --rate buckets in Redis, shared by every process\n"
           "                         with the same URL and --limit-key:\n"
           "                         redis://[user@]host[:port][/db] or rediss://... (TLS)\n"
           "  --limit-key KEY        names the shared buckets (default: the provider's name)\n"
           "  --limit-store-password-env VAR, --limit-store-password-file FILE\n"
           "                         the Redis password (never in the URL)\n"
           "  --limit-store-fallback wait|local\n"
           "                         while Redis is unreachable: sends wait for it (default),\n"
           "                         or use local buckets at R / --limit-processes\n"
           "  --limit-processes N    processes sharing the quota, for the local fallback\n"
           "                         (default 1)\n";
}

} // namespace mailroom::cli
