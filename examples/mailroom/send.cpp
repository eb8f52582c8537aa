// mailroom send: submit one message to an SMTP server.

#include "cli.hpp"

#include <mailroom/auth/token_source.hpp>
#include <mailroom/limit/limiter.hpp>
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

// Refused by a reply to its RCPT. A recipient neither accepted nor refused got no reply: the
// transaction failed first (a timeout, a lost connection, a reply to MAIL), and the
// recipient shares the message's error.
bool rejected(const smtp::recipient_status& r)
{
    return !r.accepted() && r.response.code != 0;
}

std::string report_json(const smtp::delivery_report& rep, error_code ec)
{
    std::string j = "{\"message_id\":" + json_string(rep.message_id) + ",\"accepted\":[";
    bool first = true;
    for (const auto& r : rep.recipients)
        if (r.accepted()) {
            if (!first)
                j += ',';
            j += json_string(r.recipient.str());
            first = false;
        }
    j += "],\"rejected\":[";
    first = true;
    for (const auto& r : rep.recipients) {
        if (!rejected(r))
            continue;
        j += first ? "{" : ",{";
        first = false;
        j += "\"address\":" + json_string(r.recipient.str());
        j += ",\"code\":" + (r.response.code ? std::to_string(r.response.code) : "null");
        j += ",\"enhanced\":" +
             (r.response.status ? json_string(r.response.status->to_string()) : "null");
        j += ",\"text\":" + json_string(reply_text(r.response)) + "}";
    }
    // Added after "rejected" so that no recipient is called rejected that nothing rejected.
    j += "],\"unanswered\":[";
    first = true;
    for (const auto& r : rep.recipients)
        if (!r.accepted() && !rejected(r)) {
            if (!first)
                j += ',';
            j += json_string(r.recipient.str());
            first = false;
        }
    j += "],\"queue_id\":" + (rep.queue_id.empty() ? "null" : json_string(rep.queue_id));
    j += ",\"outcome\":" + json_string(smtp::to_string(rep.outcome));
    if (ec) {
        j += ",\"error\":" + json_string(ec.message());
        if (!rep.diag.field.empty() || !rep.diag.detail.empty())
            j += ",\"detail\":" + json_string(rep.diag.to_string());
    }
    return j + "}";
}

// Where some recipients were refused, the status of the worst refusal.
int exit_for_report(const smtp::delivery_report& rep)
{
    int worst = ex_ok;
    for (const auto& r : rep.recipients) {
        if (!rejected(r))
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
    server_options server;
    limit_options limits;
    dkim_options dkim;
    std::optional<std::string> eml;
    bool json = false;
    for (std::string_view flag = args.next_flag(); !flag.empty(); flag = args.next_flag()) {
        if (flag == "--help" || flag == "-h") {
            std::printf("%s%ssigning (DKIM; --eml messages too):\n%s", send_usage(),
                        message_options::usage(), dkim_options::usage());
            return ex_ok;
        }
        if (flag == "--version") {
            print_version();
            return ex_ok;
        }
        if (msg.take(flag, args) || server.take(flag, args) || limits.take(flag, args) ||
            dkim.take(flag, args))
            continue;
        if (flag == "--json") {
            json = true;
        } else if (flag == "--eml") {
            eml = args.value();
            if (*eml == "-")
                claim_stdin("--eml");
        } else {
            throw failure(ex_usage, "send: unknown option " + std::string(flag));
        }
    }
    // First, so it outlives everything made on it (the token source in `opts` among them).
    asio::io_context io;
    smtp::client_options opts = server.finish();
    const limit::rate_limiter_options rate_limits = limits.limits();
    limit::store_options store = limits.store();
    store.redis.log.level = log_level::warning;
    store.redis.log.sink = [](log_level, std::string_view line) {
        std::fprintf(stderr, "mailroom: %.*s\n", static_cast<int>(line.size()), line.data());
    };

    // The keys are read and parsed once, before the message.
    const std::vector<mime::dkim_signer> signers = dkim.signers();
    const mime::message m =
        eml ? dkim_options::sign(msg.build_from_eml(*eml), signers) : msg.build(signers);

    server.attach_tokens(opts, io.get_executor());
    smtp::client c(io.get_executor(), opts);
    error_code result;
    bool during_auth = false;
    smtp::delivery_report report;
    report.message_id = m.message_id();
    // With --rate, the message takes its tokens first (from Redis with --limit-store, shared
    // with every process using the same key).
    std::optional<limit::limiter> lim;
    if (limits.has_rates())
        lim.emplace(io.get_executor(), rate_limits, store, nullptr, "send");
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            // The limiter closes when this ends (its Redis connection would keep io running).
            struct closer {
                std::optional<limit::limiter>& l;
                ~closer()
                {
                    if (l)
                        l->close();
                    if (tokens)
                        tokens->close(); // a refresh ahead of expiry would hold io.run()
                }
                std::shared_ptr<auth::token_source> tokens;
            } close_limiter{lim, opts.auth ? opts.auth->tokens : nullptr};
            limit::permit permit;
            if (lim) {
                auto [lec, p] =
                    co_await lim->async_acquire(lim->cost_for(m.envelope().recipients.size()),
                                                asio::as_tuple(asio::use_awaitable));
                if (lec) {
                    result = lec;
                    report.diag = {"rate limiter", lec.message()};
                    co_return;
                }
                permit = std::move(p);
            }
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
        throw failure(exit_for(result, during_auth),
                      "send: " + why + hint_for(result, opts.tls.mode));
    }
    const int status = exit_for_report(report);
    if (status != ex_ok && !json) {
        for (const auto& r : report.recipients)
            if (rejected(r))
                std::fprintf(stderr, "mailroom: send: %s refused: %s\n", r.recipient.str().c_str(),
                             r.response.to_string().c_str());
    }
    return status;
}

const char* send_usage()
{
    static const std::string text =
        std::string(
            "usage: mailroom send --server URL [options] [message options | --eml FILE]\n") +
        server_options::usage() +
        "  --json                 the delivery report as JSON on stdout: recipients\n"
        "                         accepted, rejected (refused by a reply: code, enhanced,\n"
        "                         text), unanswered (no reply came: they share the error)\n"
        "  --eml FILE             send this message file ('-': standard input); the envelope\n"
        "                         comes from its From/To/Cc/Bcc headers unless --from/--to/...\n"
        "                         are given\n"
        "  --rate R/s|R/m|R/h|R/d take a token from these buckets before sending (with\n"
        "                         --limit-store: shared with every process using them)\n"
        "  --burst B              depth of each rate bucket (default: its R)\n" +
        std::string(limit_options::usage()) + "message options (as for compose):\n";
    return text.c_str();
}

} // namespace mailroom::cli
