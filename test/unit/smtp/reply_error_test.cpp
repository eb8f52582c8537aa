#include <mailroom/smtp/reply.hpp>
#include <mailroom/smtp/reply_error.hpp>

#include <boost/asio/error.hpp>

#include <doctest/doctest.h>

using mailroom::condition;
using mailroom::error;
using mailroom::error_code;
using mailroom::smtp::enhanced_status;
using mailroom::smtp::reply;
using mailroom::smtp::reply_code;

TEST_SUITE("smtp.reply_error")
{
    TEST_CASE("the value is the reply code")
    {
        reply r;
        r.code = 550;
        r.status = enhanced_status{5, 1, 1};
        r.lines = {"5.1.1 <nobody@example.com>: Recipient address rejected"};
        const error_code ec = mailroom::smtp::make_error_code(r);
        CHECK(ec.value() == 550);
        CHECK(ec.category() == mailroom::smtp::reply_category());
        CHECK(std::string(ec.category().name()) == "mailroom.smtp.reply");
        CHECK(ec == reply_code::mailbox_unavailable);
        CHECK(ec != reply_code::user_not_local);
        CHECK(ec.message() == "550 mailbox unavailable");
        // The enhanced status and text stay in the reply, beside the code.
        CHECK(r.status->to_string() == "5.1.1");

        const error_code named = reply_code::auth_failed;
        CHECK(named.value() == 535);
        CHECK(named.message() == "535 authentication credentials invalid");
        // Codes without a name still work.
        reply odd;
        odd.code = 559;
        CHECK(mailroom::smtp::make_error_code(odd).message() ==
              "559 permanent negative completion reply");
    }

    TEST_CASE("4xx is transient, 5xx permanent")
    {
        for (int code : {421, 450, 451, 452, 454, 499}) {
            CAPTURE(code);
            const error_code ec(code, mailroom::smtp::reply_category());
            CHECK(ec == condition::transient);
            CHECK(ec != condition::permanent);
            CHECK(ec != condition::invalid_input);
        }
        for (int code : {500, 530, 535, 550, 554, 556}) {
            CAPTURE(code);
            const error_code ec(code, mailroom::smtp::reply_category());
            CHECK(ec == condition::permanent);
            CHECK(ec != condition::transient);
        }
        for (int code : {220, 250, 334, 354}) {
            CAPTURE(code);
            const error_code ec(code, mailroom::smtp::reply_category());
            CHECK(ec != condition::permanent);
            CHECK(ec != condition::transient);
        }
        // Distinct from the library's own codes with the same number.
        CHECK(error_code(reply_code::syntax_error) !=
              error_code(500, mailroom::library_category()));
    }

    TEST_CASE("reply helpers")
    {
        reply r;
        r.code = 250;
        r.lines = {"mx.example.com", "PIPELINING", "8BITMIME"};
        CHECK(r.positive_completion());
        CHECK_FALSE(r.positive_intermediate());
        CHECK(r.to_string() == "250-mx.example.com\n250-PIPELINING\n250 8BITMIME");
        r.code = 354;
        r.lines = {"go ahead"};
        CHECK(r.positive_intermediate());
        CHECK(r.to_string() == "354 go ahead");
        r.code = 421;
        CHECK(r.transient_negative());
        r.code = 554;
        CHECK(r.permanent_negative());
        r.lines.clear();
        CHECK(r.to_string() == "554");
    }

    TEST_CASE("enhanced_status")
    {
        CHECK(enhanced_status::parse_prefix("2.0.0") == enhanced_status{2, 0, 0});
        CHECK(enhanced_status::parse_prefix("4.7.1 try later") == enhanced_status{4, 7, 1});
        CHECK(enhanced_status::parse_prefix("5.123.456 x") == enhanced_status{5, 123, 456});
        CHECK_FALSE(enhanced_status::parse_prefix(""));
        CHECK_FALSE(enhanced_status::parse_prefix("3.0.0"));
        CHECK_FALSE(enhanced_status::parse_prefix("5.0"));
        CHECK_FALSE(enhanced_status::parse_prefix("5.0."));
        CHECK_FALSE(enhanced_status::parse_prefix("5.00.0"));
        CHECK_FALSE(enhanced_status::parse_prefix("5.0.1234"));
        CHECK_FALSE(enhanced_status::parse_prefix("5.0.0,"));
        CHECK_FALSE(enhanced_status::parse_prefix("5.0.0\t"));
        CHECK_FALSE(enhanced_status::parse_prefix("55.0.0"));
        CHECK((enhanced_status{5, 7, 26}.to_string()) == "5.7.26");
    }

    TEST_CASE("library codes for SMTP: messages and conditions")
    {
        for (error e : {error::protocol_error, error::bad_reply_code, error::reply_code_mismatch,
                        error::reply_line_too_long, error::reply_too_long,
                        error::sasl_bad_challenge, error::sasl_server_error, error::sasl_incomplete,
                        error::scram_server_signature_mismatch}) {
            const error_code ec = e;
            CAPTURE(ec.message());
            CHECK(ec == condition::transient);
            CHECK(ec.message() != "unknown mailroom error");
        }
        for (error e : {error::invalid_smtp_argument, error::invalid_credentials,
                        error::saslprep_unsupported}) {
            const error_code ec = e;
            CHECK(ec == condition::invalid_input);
            CHECK(ec.message() != "unknown mailroom error");
        }
        CHECK(error_code(error::auth_mechanism_unavailable) == condition::permanent);
        CHECK(error_code(error::tls_configuration_invalid) == condition::permanent);
        CHECK(error_code(error::tls_configuration_invalid) != condition::transient);
        // Reliability codes: a bad list is the caller's, an open breaker closes again, a
        // deadline that passed is a timeout (so transient too).
        CHECK(error_code(error::too_many_recipients) == condition::invalid_input);
        CHECK(error_code(error::circuit_open) == condition::transient);
        CHECK(error_code(error::circuit_open) != condition::permanent);
        CHECK(error_code(error::send_deadline_exceeded) == condition::timeout);
        CHECK(error_code(error::send_deadline_exceeded) == condition::transient);
        for (error e :
             {error::too_many_recipients, error::circuit_open, error::send_deadline_exceeded})
            CHECK(error_code(e).message() != "unknown mailroom error");
        // The resolver's answers: one retry classifier for pool and mailer.
        CHECK(error_code(boost::asio::error::host_not_found) == condition::transient);
        CHECK(error_code(boost::asio::error::host_not_found_try_again) == condition::transient);
        CHECK(error_code(boost::asio::error::no_data) != condition::transient);
        // A lost reply to the final dot is its own condition, never one that invites a retry.
        const error_code unknown = error::delivery_status_unknown;
        CHECK(unknown == condition::unknown);
        CHECK(unknown != condition::transient);
        CHECK(unknown != condition::permanent);
        CHECK(error_code(error::connection_lost) != condition::unknown);
        CHECK(error_code(error::data_end_timeout) == condition::timeout);
        // Existing values keep their numbers.
        CHECK(static_cast<int>(error::invalid_address) == 1);
        CHECK(static_cast<int>(error::line_too_long) == 17);
        CHECK(static_cast<int>(error::protocol_error) == 18);
    }
}
