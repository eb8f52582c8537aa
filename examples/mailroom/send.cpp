// mailroom send: submit one message to an SMTP server.

#include "cli.hpp"

#include <mailroom/smtp/client.hpp>
#include <mailroom/smtp/reply_error.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace mailroom::cli {

namespace {

namespace asio = boost::asio;

// sysexits.h, as the send contract uses them.
constexpr int ex_unavailable = 69; // permanent failure
constexpr int ex_tempfail = 75;    // temporary failure or unknown outcome
constexpr int ex_protocol = 76;    // protocol violation or TLS security failure
constexpr int ex_noperm = 77;      // authentication failed

struct server_url {
    std::string host;
    std::uint16_t port = 0;
    bool implicit_tls = false;
};

server_url parse_url(const std::string& url)
{
    server_url u;
    std::string_view rest = url;
    if (rest.starts_with("smtp://"))
        rest.remove_prefix(7);
    else if (rest.starts_with("smtps://"))
        rest.remove_prefix(8), u.implicit_tls = true;
    else
        throw failure(ex_usage, "--server: expected smtp://host[:port] or smtps://host[:port]");
    if (!rest.empty() && rest.back() == '/')
        rest.remove_suffix(1);
    std::string_view port;
    if (rest.starts_with("[")) { // [IPv6]:port
        const auto close = rest.find(']');
        if (close == std::string_view::npos)
            throw failure(ex_usage, "--server: unterminated '[' in the host");
        u.host = std::string(rest.substr(1, close - 1));
        rest.remove_prefix(close + 1);
        if (rest.starts_with(":"))
            port = rest.substr(1);
        else if (!rest.empty())
            throw failure(ex_usage, "--server: unexpected text after the host");
    } else {
        const auto colon = rest.rfind(':');
        u.host = std::string(rest.substr(0, colon));
        if (colon != std::string_view::npos)
            port = rest.substr(colon + 1);
    }
    if (u.host.empty() || u.host.find_first_of("/@?#") != std::string::npos)
        throw failure(ex_usage, "--server: no host name in '" + url + "'");
    if (!port.empty()) {
        unsigned long p = 0;
        for (char c : port) {
            if (c < '0' || c > '9' || (p = p * 10 + static_cast<unsigned>(c - '0')) > 65535)
                throw failure(ex_usage, "--server: bad port in '" + url + "'");
        }
        if (p == 0)
            throw failure(ex_usage, "--server: bad port in '" + url + "'");
        u.port = static_cast<std::uint16_t>(p);
    }
    return u;
}

std::string secret_from_env(const std::string& flag, const std::string& var)
{
    const char* v = std::getenv(var.c_str());
    if (!v || !*v)
        throw failure(ex_usage, flag + ": the environment variable " + var + " is not set");
    return v;
}

std::string json_string(std::string_view s)
{
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20 || c == 0x7F) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += static_cast<char>(c);
            }
        }
    }
    return out + "\"";
}

const char* outcome_name(smtp::outcome o)
{
    switch (o) {
    case smtp::outcome::delivered: return "delivered";
    case smtp::outcome::partial: return "partial";
    case smtp::outcome::failed: return "failed";
    case smtp::outcome::unknown: return "unknown";
    }
    return "failed";
}

std::string reply_text(const smtp::reply& r)
{
    std::string t;
    for (const auto& l : r.lines) {
        if (!t.empty())
            t += ' ';
        t += l;
    }
    return t;
}

std::string report_json(const smtp::delivery_report& rep, error_code ec)
{
    std::string j = "{\"message_id\":" + json_string(rep.message_id) + ",\"accepted\":[";
    bool first = true;
    for (const auto& r : rep.recipients)
        if (r.accepted()) {
            j += (first ? "" : ",") + json_string(r.recipient.str());
            first = false;
        }
    j += "],\"rejected\":[";
    first = true;
    for (const auto& r : rep.recipients) {
        if (r.accepted())
            continue;
        j += first ? "{" : ",{";
        first = false;
        j += "\"address\":" + json_string(r.recipient.str());
        j += ",\"code\":" + (r.response.code ? std::to_string(r.response.code) : "null");
        j += ",\"enhanced\":" +
             (r.response.status ? json_string(r.response.status->to_string()) : "null");
        j += ",\"text\":" + json_string(reply_text(r.response)) + "}";
    }
    j += "],\"queue_id\":" + (rep.queue_id.empty() ? "null" : json_string(rep.queue_id));
    j += ",\"outcome\":" + json_string(outcome_name(rep.outcome));
    if (ec) {
        j += ",\"error\":" + json_string(ec.message());
        if (!rep.diag.field.empty() || !rep.diag.detail.empty())
            j += ",\"detail\":" + json_string(rep.diag.to_string());
    }
    return j + "}";
}

bool is_one_of(error_code ec, std::initializer_list<error> list)
{
    for (error e : list)
        if (ec == e)
            return true;
    return false;
}

// The exit status for an error, given whether it came from the AUTH step.
int exit_for(error_code ec, bool during_auth)
{
    if (!ec)
        return ex_ok;
    if (ec.category() == smtp::reply_category()) {
        if (during_auth)
            return ex_noperm;
        return ec.value() / 100 == 5 ? ex_unavailable : ex_tempfail;
    }
    if (is_one_of(ec, {error::plaintext_auth_refused, error::auth_mechanism_unavailable,
                       error::sasl_bad_challenge, error::sasl_server_error, error::sasl_incomplete,
                       error::scram_server_signature_mismatch, error::invalid_credentials,
                       error::saslprep_unsupported}))
        return ex_noperm;
    if (is_one_of(
            ec, {error::size_exceeded, error::smtputf8_unavailable, error::eight_bit_unavailable}))
        return ex_unavailable;
    if (is_one_of(ec, {error::protocol_error, error::bad_reply_code, error::reply_code_mismatch,
                       error::reply_line_too_long, error::reply_too_long,
                       error::starttls_unavailable, error::starttls_injection,
                       error::tls_handshake_failed, error::certificate_rejected}))
        return ex_protocol;
    if (ec == condition::invalid_input)
        return ex_dataerr;
    return ex_tempfail; // timeouts, lost connections, unknown outcome, network errors
}

// Where some recipients were refused, the status of the worst refusal.
int exit_for_report(const smtp::delivery_report& rep)
{
    int worst = ex_ok;
    for (const auto& r : rep.recipients) {
        if (r.accepted())
            continue;
        const int s = r.response.code / 100 == 5 ? ex_unavailable : ex_tempfail;
        if (worst == ex_ok || s == ex_unavailable)
            worst = s;
    }
    return worst;
}

} // namespace

int send_main(std::span<char*> argv)
{
    arg_reader args(argv);
    message_options msg;
    smtp::client_options opts;
    std::optional<server_url> url;
    std::optional<std::string> tls_mode, eml, user, password, token, auth;
    bool allow_plain = false, json = false, verbose = false;
    std::optional<long> timeout;
    for (std::string_view flag = args.next_flag(); !flag.empty(); flag = args.next_flag()) {
        if (flag == "--help" || flag == "-h") {
            std::printf("%s%s", send_usage(), message_options::usage());
            return ex_ok;
        }
        if (msg.take(flag, args))
            continue;
        if (flag == "--server") {
            url = parse_url(args.value());
        } else if (flag == "--tls") {
            tls_mode = args.value();
            if (*tls_mode != "required" && *tls_mode != "opportunistic" && *tls_mode != "none")
                throw failure(ex_usage, "--tls: expected required, opportunistic or none");
        } else if (flag == "--ca-file") {
            opts.tls.ca_file = args.value();
            if (std::FILE* f = std::fopen(opts.tls.ca_file.c_str(), "r"))
                std::fclose(f);
            else
                throw failure(ex_noinput, "--ca-file: cannot read '" + opts.tls.ca_file + "'");
        } else if (flag == "--tls-name") {
            opts.tls.verify_name = args.value();
        } else if (flag == "--user") {
            user = args.value();
        } else if (flag == "--password-env") {
            password = secret_from_env("--password-env", args.value());
        } else if (flag == "--password-file") {
            std::string p = read_file_or_fail("--password-file", args.value());
            while (!p.empty() && (p.back() == '\n' || p.back() == '\r'))
                p.pop_back();
            password = std::move(p);
        } else if (flag == "--oauth-token-env") {
            token = secret_from_env("--oauth-token-env", args.value());
        } else if (flag == "--auth") {
            auth = args.value();
        } else if (flag == "--allow-plaintext-auth") {
            allow_plain = true;
        } else if (flag == "--helo") {
            opts.helo_name = args.value();
        } else if (flag == "--timeout") {
            const std::string v = args.value();
            char* end = nullptr;
            const long s = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end || s <= 0 || s > 86400)
                throw failure(ex_usage, "--timeout: expected whole seconds from 1 to 86400");
            timeout = s;
        } else if (flag == "--json") {
            json = true;
        } else if (flag == "-v") {
            verbose = true;
        } else if (flag == "--eml") {
            eml = args.value();
        } else {
            throw failure(ex_usage, "send: unknown option " + std::string(flag));
        }
    }
    if (!url)
        throw failure(ex_usage, "--server is required");
    opts.host = url->host;
    opts.port = url->port;
    if (url->implicit_tls)
        opts.tls.mode = smtp::tls_mode::implicit;
    else if (tls_mode)
        opts.tls.mode = *tls_mode == "none"            ? smtp::tls_mode::none
                        : *tls_mode == "opportunistic" ? smtp::tls_mode::opportunistic
                                                       : smtp::tls_mode::required;
    if (timeout)
        opts.timeouts.cap(std::chrono::seconds(*timeout));
    if ((password || token) && !user)
        throw failure(ex_usage,
                      "--password-env, --password-file and --oauth-token-env need --user");
    if (user) {
        if (!password && !token)
            throw failure(ex_usage, "--user needs --password-env, --password-file or "
                                    "--oauth-token-env (passwords never go on the command line)");
        smtp::credentials c;
        c.username = *user;
        c.password = password.value_or("");
        if (token)
            c.token_provider = [t = *token](bool) {
                return t;
            };
        c.allow_plaintext = allow_plain;
        if (auth) {
            std::string name = *auth;
            auto m = smtp::auth_mechanism_from_name(name);
            if (!m)
                throw failure(ex_usage, "--auth: expected plain, login, cram-md5, "
                                        "scram-sha-256, xoauth2 or oauthbearer");
            c.mechanism = *m;
        }
        opts.auth = std::move(c);
    } else if (auth) {
        throw failure(ex_usage, "--auth needs --user");
    }
    if (verbose) {
        opts.log.level = log_level::trace;
        opts.log.sink = [](log_level, std::string_view line) {
            std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
        };
    } else {
        opts.log.level = log_level::off;
    }

    const mime::message m = eml ? msg.build_from_eml(*eml) : msg.build();

    asio::io_context io;
    smtp::client c(io.get_executor(), opts);
    error_code result;
    bool during_auth = false;
    smtp::delivery_report report;
    report.message_id = m.message_id();
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto [ec] = co_await c.async_connect(asio::as_tuple(asio::use_awaitable));
            if (ec) {
                result = ec;
                during_auth = c.last_diagnostics().field.starts_with("AUTH");
                report.diag = c.last_diagnostics();
                co_return;
            }
            auto [sec, rep] = co_await c.async_send(m, asio::as_tuple(asio::use_awaitable));
            result = sec;
            report = std::move(rep);
            if (c.is_open())
                co_await c.async_quit(asio::as_tuple(asio::use_awaitable));
        },
        asio::detached);
    io.run();

    if (json)
        std::printf("%s\n", report_json(report, result).c_str());
    if (result) {
        std::string why = report.diag.to_string();
        if (why.empty())
            why = result.message();
        throw failure(exit_for(result, during_auth), "send: " + why);
    }
    const int status = exit_for_report(report);
    if (status != ex_ok && !json) {
        for (const auto& r : report.recipients)
            if (!r.accepted())
                std::fprintf(stderr, "mailroom: send: %s refused: %s\n", r.recipient.str().c_str(),
                             r.response.to_string().c_str());
    }
    return status;
}

const char* send_usage()
{
    return "usage: mailroom send --server URL [options] [message options | --eml FILE]\n"
           "  --server URL           smtp://host[:port] (default 587, STARTTLS per --tls) or\n"
           "                         smtps://host[:port] (default 465)\n"
           "  --tls MODE             required (default) | opportunistic | none\n"
           "  --ca-file FILE         PEM trust anchors instead of the system store\n"
           "  --tls-name NAME        name to verify and send as SNI (default: the URL's host)\n"
           "  --user NAME            with --password-env VAR or --password-file FILE, or\n"
           "                         --oauth-token-env VAR for XOAUTH2/OAUTHBEARER\n"
           "  --auth MECH            plain | login | cram-md5 | scram-sha-256 | xoauth2 | "
           "oauthbearer\n"
           "  --allow-plaintext-auth permit AUTH without TLS\n"
           "  --helo NAME            EHLO name\n"
           "  --timeout SECONDS      upper bound for every per-phase timeout\n"
           "  --json                 the delivery report as JSON on stdout\n"
           "  -v                     transcript on stderr, secrets redacted\n"
           "  --eml FILE             send this message file; the envelope comes from its\n"
           "                         From/To/Cc/Bcc headers unless --from/--to/... are given\n"
           "message options (as for compose):\n";
}

} // namespace mailroom::cli
