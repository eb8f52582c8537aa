#include "mailer/retry.hpp"

#include <mailroom/smtp/reply_error.hpp>

#include <boost/asio/error.hpp>

#include <doctest/doctest.h>

using mailroom::error;
using mailroom::error_code;
using mailroom::make_error_code;
using mailroom::detail::may_retry;
using mailroom::detail::reply_for_limiter;
namespace smtp = mailroom::smtp;

namespace {

smtp::reply reply(int code, std::string text = "x")
{
    smtp::reply r;
    r.code = code;
    r.lines = {std::move(text)};
    return r;
}

smtp::delivery_report report(smtp::outcome o)
{
    smtp::delivery_report r;
    r.outcome = o;
    return r;
}

} // namespace

TEST_CASE("retry: transient failures before the final dot are retried")
{
    const auto failed = report(smtp::outcome::failed);
    for (error_code ec :
         {smtp::make_error_code(reply(421)), smtp::make_error_code(reply(450)),
          smtp::make_error_code(reply(451)), smtp::make_error_code(reply(452)),
          make_error_code(error::connection_lost), make_error_code(error::mail_timeout),
          make_error_code(error::data_timeout), make_error_code(error::connect_timeout),
          make_error_code(error::checkout_timeout), make_error_code(error::protocol_error),
          make_error_code(error::tls_handshake_failed), make_error_code(error::not_connected),
          error_code(boost::asio::error::connection_refused),
          error_code(boost::asio::error::connection_reset)}) {
        CAPTURE(ec.message());
        CHECK(may_retry(ec, &failed, false));
        CHECK(may_retry(ec, nullptr, false)); // never reached the server
    }
}

TEST_CASE("retry: what is never retried")
{
    const auto failed = report(smtp::outcome::failed);
    for (error_code ec :
         {error_code{}, error_code(boost::asio::error::operation_aborted),
          smtp::make_error_code(reply(550)), smtp::make_error_code(reply(554)),
          smtp::make_error_code(reply(535)), make_error_code(error::size_exceeded),
          make_error_code(error::invalid_address), make_error_code(error::pool_closed),
          make_error_code(error::cost_exceeds_burst), make_error_code(error::limit_wait_too_long),
          make_error_code(error::auth_mechanism_unavailable),
          make_error_code(error::smtputf8_unavailable)}) {
        CAPTURE(ec.message());
        CHECK_FALSE(may_retry(ec, &failed, false));
        CHECK_FALSE(may_retry(ec, &failed, true));
    }
}

TEST_CASE("retry: an unknown outcome only when the caller opts in")
{
    const auto unknown = report(smtp::outcome::unknown);
    const auto ec = make_error_code(error::delivery_status_unknown);
    CHECK_FALSE(may_retry(ec, &unknown, false));
    CHECK(may_retry(ec, &unknown, true));
    // Whatever the code says, the report's outcome decides: the dot was written.
    CHECK_FALSE(may_retry(make_error_code(error::data_end_timeout), &unknown, false));
}

TEST_CASE("retry: a partial delivery is never sent again")
{
    const auto partial = report(smtp::outcome::partial);
    CHECK_FALSE(may_retry(smtp::make_error_code(reply(450)), &partial, true));
}

TEST_CASE("retry: the reply the limiter hears")
{
    auto r = report(smtp::outcome::failed);
    CHECK(reply_for_limiter(r) == nullptr);
    r.recipients.push_back({*mailroom::address::parse("a@example.com"), reply(250)});
    r.recipients.push_back({*mailroom::address::parse("b@example.com"), reply(452, "slow")});
    REQUIRE(reply_for_limiter(r) != nullptr);
    CHECK(reply_for_limiter(r)->code == 452);
    r.final_reply = reply(250);
    CHECK(reply_for_limiter(r)->code == 250);
    r.refusal = reply(421, "4.7.0 too many connections");
    CHECK(reply_for_limiter(r)->code == 421);
}
