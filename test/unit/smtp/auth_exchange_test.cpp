#include "smtp/auth_exchange.hpp"

#include "detail/base64.hpp"

#include <mailroom/smtp/reply_error.hpp>

#include <doctest/doctest.h>

using mailroom::error;
using mailroom::error_code;
using mailroom::smtp::auth_mechanism;
using mailroom::smtp::reply;
using mailroom::smtp::reply_code;
using namespace mailroom::smtp::detail;
using step = auth_exchange::step;

namespace {

reply r(int code, std::string text = {})
{
    reply x;
    x.code = code;
    x.lines = {std::move(text)};
    return x;
}

std::string b64(std::string_view raw)
{
    std::string out;
    mailroom::detail::base64_append(out, raw);
    return out;
}

sasl_credentials password(std::string user, std::string pass)
{
    sasl_credentials c;
    c.username = std::move(user);
    c.password = std::move(pass);
    return c;
}

struct session {
    auth_exchange ex;
    std::string sent; // every line the client wrote, in order

    // Feeds a reply; returns what the client sent in answer (empty when done).
    std::string feed(const reply& rep, step want, error_code& ec)
    {
        std::string out;
        const step s = ex.on_reply(rep, out, ec);
        CHECK(s == want);
        if (s == step::done)
            CHECK(out.empty());
        sent += out;
        return out;
    }
    std::string send(const reply& rep)
    {
        error_code ec;
        std::string out = feed(rep, step::send, ec);
        CHECK_FALSE(ec);
        return out;
    }
    error_code done(const reply& rep)
    {
        error_code ec;
        feed(rep, step::done, ec);
        return ec;
    }
};

session start(auth_mechanism m, const sasl_credentials& c, const sasl_options& o = {})
{
    std::string out;
    auto ex = auth_exchange::start(m, c, out, o);
    REQUIRE_MESSAGE(ex.has_value(), ex.error().message());
    return session{std::move(*ex), out};
}

} // namespace

TEST_SUITE("smtp.auth")
{
    TEST_CASE("PLAIN with an initial response")
    {
        auto s = start(auth_mechanism::plain, password("test", "1234"));
        CHECK(s.sent == "AUTH PLAIN " +
                            b64(std::string("\0test\0"
                                            "1234",
                                            10)) +
                            "\r\n");
        // Any line the client sends before the exchange ends answers a challenge.
        CHECK(s.ex.awaiting_response_line());
        CHECK(s.done(r(235, "2.7.0 Authentication successful")) == error_code());
        // Anything after the end is out of place.
        CHECK(s.done(r(235)) == error::protocol_error);
    }

    TEST_CASE("a refusal is a reply error")
    {
        auto s = start(auth_mechanism::plain, password("test", "wrong"));
        const error_code ec = s.done(r(535, "5.7.8 Authentication credentials invalid"));
        CHECK(ec == reply_code::auth_failed);
        CHECK(ec == mailroom::condition::permanent);
        auto t = start(auth_mechanism::plain, password("test", "1234"));
        CHECK(t.done(r(454, "4.7.0 Temporary authentication failure")) ==
              mailroom::condition::transient);
        auto u = start(auth_mechanism::plain, password("test", "1234"));
        CHECK(u.done(r(504, "5.5.4 Unrecognized authentication type")) ==
              reply_code::parameter_not_implemented);
    }

    TEST_CASE("LOGIN")
    {
        auto s = start(auth_mechanism::login, password("alice", "secret"));
        CHECK(s.sent == "AUTH LOGIN\r\n");
        CHECK(s.ex.awaiting_response_line());
        CHECK(s.send(r(334, "VXNlcm5hbWU6")) == b64("alice") + "\r\n");
        CHECK(s.send(r(334, "UGFzc3dvcmQ6")) == b64("secret") + "\r\n");
        CHECK(s.done(r(235, "2.7.0 ok")) == error_code());
    }

    TEST_CASE("CRAM-MD5")
    {
        auto s = start(auth_mechanism::cram_md5, password("tim", "tanstaaftanstaaf"));
        CHECK(s.sent == "AUTH CRAM-MD5\r\n");
        CHECK(s.send(r(334, b64("<1896.697170952@postoffice.reston.mci.net>"))) ==
              "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n");
        CHECK(s.done(r(235)) == error_code());

        // Success before the response: the server skipped the exchange.
        auto early = start(auth_mechanism::cram_md5, password("tim", "x"));
        CHECK(early.done(r(235)) == error::sasl_incomplete);
    }

    TEST_CASE("SCRAM-SHA-256 over SMTP, RFC 7677 vector")
    {
        sasl_options o;
        o.scram_client_nonce = "rOprNGfwEbeRWgbNEkqO";
        auto s = start(auth_mechanism::scram_sha_256, password("user", "pencil"), o);
        CHECK(s.sent == "AUTH SCRAM-SHA-256 " + b64("n,,n=user,r=rOprNGfwEbeRWgbNEkqO") + "\r\n");
        CHECK(s.send(r(334, b64("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))) ==
              b64("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                  "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=") +
                  "\r\n");
        // The server-final message comes as a challenge; the answer is an empty line.
        CHECK(s.send(r(334, b64("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))) == "\r\n");
        CHECK(s.done(r(235, "2.7.0 Authentication successful")) == error_code());
    }

    TEST_CASE("SCRAM-SHA-256: accepted without the server's proof")
    {
        sasl_options o;
        o.scram_client_nonce = "rOprNGfwEbeRWgbNEkqO";
        auto s = start(auth_mechanism::scram_sha_256, password("user", "pencil"), o);
        s.send(r(334, b64("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                          "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")));
        CHECK(s.done(r(235)) == error::sasl_incomplete);
    }

    TEST_CASE("SCRAM-SHA-256: a bad server signature cancels")
    {
        sasl_options o;
        o.scram_client_nonce = "rOprNGfwEbeRWgbNEkqO";
        auto s = start(auth_mechanism::scram_sha_256, password("user", "pencil"), o);
        s.send(r(334, b64("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                          "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")));
        CHECK(s.send(r(334, b64("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))) == "*\r\n");
        CHECK_FALSE(s.ex.awaiting_response_line());
        // The server's 501 to "*" ends it; the reason is ours.
        CHECK(s.done(r(501, "5.7.0 Authentication aborted")) ==
              error::scram_server_signature_mismatch);
    }

    TEST_CASE("undecodable challenges are cancelled (RFC 4954 §4)")
    {
        for (std::string_view bad : {"not base64!", "VXNlcm5hbWU", "VXNl cm5hbWU6", "=AAA"}) {
            CAPTURE(bad);
            auto s = start(auth_mechanism::login, password("alice", "secret"));
            CHECK(s.send(r(334, std::string(bad))) == "*\r\n");
            CHECK(s.done(r(501)) == error::sasl_bad_challenge);
        }
        // A mechanism that can't take another challenge cancels too.
        auto s = start(auth_mechanism::login, password("alice", "secret"));
        s.send(r(334, "VXNlcm5hbWU6"));
        s.send(r(334, "UGFzc3dvcmQ6"));
        CHECK(s.send(r(334, "UGFzc3dvcmQ6")) == "*\r\n");
        CHECK(s.done(r(501)) == error::sasl_bad_challenge);
        // PLAIN after its initial response.
        auto p = start(auth_mechanism::plain, password("a", "b"));
        CHECK(p.send(r(334, "")) == "*\r\n");
        CHECK(p.done(r(501)) == error::sasl_bad_challenge);
    }

    TEST_CASE("replies that don't belong in an AUTH exchange")
    {
        auto a = start(auth_mechanism::login, password("a", "b"));
        CHECK(a.done(r(250, "ok")) == error::protocol_error);
        auto b = start(auth_mechanism::login, password("a", "b"));
        CHECK(b.done(r(354, "go")) == error::protocol_error);
        auto c = start(auth_mechanism::login, password("a", "b"));
        reply multi;
        multi.code = 334;
        multi.lines = {"VXNlcm5hbWU6", "VXNlcm5hbWU6"};
        CHECK(c.done(multi) == error::protocol_error);
    }

    TEST_CASE("an initial response too long for the AUTH line waits for the empty challenge")
    {
        sasl_credentials c;
        c.username = "someone@example.com";
        c.bearer_token = std::string(2000, 'a'); // like a real access token: too long for 512
        auto s = start(auth_mechanism::xoauth2, c);
        CHECK(s.sent == "AUTH XOAUTH2\r\n");
        CHECK(s.ex.awaiting_response_line());
        const std::string line = s.send(r(334, ""));
        CHECK(line == b64("user=someone@example.com\x01"
                          "auth=Bearer " +
                          c.bearer_token + "\x01\x01") +
                          "\r\n");
        CHECK(s.done(r(235, "2.7.0 Accepted")) == error_code());

        // A short token goes on the AUTH line.
        c.bearer_token = "ya29.short";
        auto t = start(auth_mechanism::xoauth2, c);
        CHECK(t.sent.substr(0, 13) == "AUTH XOAUTH2 ");

        // A server that says yes before it got the response is wrong.
        c.bearer_token = std::string(2000, 'a');
        auto u = start(auth_mechanism::xoauth2, c);
        CHECK(u.done(r(235)) == error::sasl_incomplete);
        // A non-empty first challenge when we owe the initial response: cancel.
        auto v = start(auth_mechanism::xoauth2, c);
        CHECK(v.send(r(334, "Zm9v")) == "*\r\n");
        CHECK(v.done(r(501)) == error::sasl_bad_challenge);
    }

    TEST_CASE("XOAUTH2 and OAUTHBEARER error challenges")
    {
        sasl_credentials c;
        c.username = "someuser@example.com";
        c.bearer_token = "ya29.expired";
        const std::string json =
            R"({"status":"401","schemes":"bearer","scope":"https://mail.google.com/"})";

        auto x = start(auth_mechanism::xoauth2, c);
        CHECK(x.send(r(334, b64(json))) == "\r\n");
        CHECK(x.done(r(535, "5.7.8 Username and Password not accepted")) ==
              reply_code::auth_failed);
        CHECK(x.ex.mechanism().server_error() == json);

        auto o = start(auth_mechanism::oauthbearer, c);
        CHECK(o.send(r(334, b64(json))) == b64("\x01") + "\r\n");
        CHECK(o.done(r(535)) == reply_code::auth_failed);
        CHECK(o.ex.mechanism().server_error() == json);
    }

    TEST_CASE("start() fails before anything is written")
    {
        std::string out = "kept";
        auto ex = auth_exchange::start(auth_mechanism::plain, password("", "x"), out);
        CHECK(ex.error() == error::invalid_credentials);
        CHECK(out == "kept");
    }

    TEST_CASE("transcript redaction follows the exchange")
    {
        auto s = start(auth_mechanism::login, password("alice", "secret"));
        std::vector<std::string> log;
        log.push_back(redact_client_line(s.sent, false));
        for (const char* ch : {"VXNlcm5hbWU6", "UGFzc3dvcmQ6"}) {
            const bool secret = s.ex.awaiting_response_line();
            log.push_back(redact_client_line(s.send(r(334, ch)), secret));
        }
        CHECK(log == std::vector<std::string>{"AUTH LOGIN", "[redacted]", "[redacted]"});
        for (const auto& line : log) {
            CHECK(line.find(b64("alice")) == std::string::npos);
            CHECK(line.find(b64("secret")) == std::string::npos);
        }
    }
}
