// auth::token_source against a real OAuth2 server: oauth2-mock-server 8 over HTTPS on
// 127.0.0.1 (test/integration/peers/oauth2_server.mjs, the test PKI), issuing RS256 JWTs.
// Each grant; the cache; one request for 100 concurrent gets and for 100 concurrent SMTP
// connects (the SMTP peer checks every token against the server's JWKS); refresh ahead of
// expiry; invalidation; failure classes with the endpoint's text; retries with backoff; close().
// Skipped (doctest skip) where node or the package is missing.

#include "peers.hpp"

#include <mailroom/auth/token_source.hpp>
#include <mailroom/smtp/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>

using namespace std::chrono_literals;
using namespace mailroom;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

const std::string client_id = "mailroom-test-client";
const std::string client_secret = "cs-secret-4711";
const std::string refresh_token = "rt-valid-0815";
const std::string app_id = "mailroom-app";
const std::string app_secret = "app-secret-42";
const std::string user_mailbox = "me@example.com";

std::string rsa_pem()
{
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(EVP_RSA_gen(2048), &EVP_PKEY_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> b(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_PrivateKey(b.get(), k.get(), nullptr, nullptr, 0, nullptr, nullptr);
    char* p = nullptr;
    const long n = BIO_get_mem_data(b.get(), &p);
    return std::string(p, static_cast<std::size_t>(n));
}

// The token server with a service account, a confidential client, an app and a refresh token.
struct token_server {
    std::filesystem::path dir;
    std::string sa_file;
    std::optional<test::peer_process> proc;

    explicit token_server(int lifetime = 3600)
    {
        char tmpl[] = "/tmp/mailroom-auth-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        sa_file = (dir / "sa.json").string();
        json::object sa{{"type", "service_account"},
                        {"client_email", "mailer@mailroom-test.iam.gserviceaccount.com"},
                        {"client_id", "1234567890"},
                        {"private_key_id", "kid-1"},
                        {"private_key", rsa_pem()},
                        {"token_uri", ""}};
        std::ofstream(sa_file) << json::serialize(sa);
        const std::string pki = test::http_test_pki();
        proc.emplace(std::vector<std::string>{"node",
                                              MAILROOM_SOURCE_DIR
                                              "/test/integration/peers/oauth2_server.mjs",
                                              "--cert",
                                              pki + "/localhost.pem",
                                              "--key",
                                              pki + "/localhost.key",
                                              "--lifetime",
                                              std::to_string(lifetime),
                                              "--client",
                                              client_id + ":" + client_secret,
                                              "--client",
                                              app_id + ":" + app_secret,
                                              "--refresh-token",
                                              refresh_token,
                                              "--subject",
                                              user_mailbox,
                                              "--service-account",
                                              sa_file,
                                              "--max-seconds",
                                              "300"});
    }
    ~token_server()
    {
        proc.reset();
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }

    std::string url() const
    {
        return "https://localhost:" + std::to_string(proc->port()) + "/token";
    }
    json::object counts() const
    {
        return json::parse(test::control(proc->port(), "/__control")).as_object();
    }
    std::int64_t requests(const char* grant) const
    {
        const auto c = counts();
        const auto* g = c.at("requests").as_object().if_contains(grant);
        return g ? g->to_number<std::int64_t>() : 0;
    }
    void inject(const std::string& kind, int count, int delay_ms = 0) const
    {
        json::object rule{{"kind", kind}, {"count", count}};
        if (delay_ms)
            rule["delay_ms"] = delay_ms;
        test::control(proc->port(), "/__control/inject", json::serialize(rule));
    }

    auth::oauth2_options refresh_grant() const
    {
        auth::oauth2_options o;
        o.grant = auth::grant::refresh_token;
        o.token_url = url();
        o.client_id = client_id;
        o.client_secret = client_secret;
        o.refresh_token = refresh_token;
        o.scope = "https://mail.google.com/";
        o.http.tls.ca_file = test::http_test_pki() + "/ca.pem";
        return o;
    }
    auth::oauth2_options app_grant() const
    {
        auth::oauth2_options o = refresh_grant();
        o.grant = auth::grant::client_credentials;
        o.client_id = app_id;
        o.client_secret = app_secret;
        o.refresh_token.clear();
        o.scope = "https://outlook.office365.com/.default";
        return o;
    }
    auth::oauth2_options jwt_grant() const
    {
        auth::oauth2_options o;
        o.grant = auth::grant::jwt_bearer;
        diagnostics diag;
        auto acct = auth::service_account::load(sa_file, diag);
        REQUIRE_MESSAGE(acct.has_value(), diag.to_string());
        o.account = std::move(*acct);
        o.token_url = url();
        o.subject = user_mailbox;
        o.scope = "https://mail.google.com/";
        o.http.tls.ca_file = test::http_test_pki() + "/ca.pem";
        return o;
    }
};

auth::refresh_policy fast_retries()
{
    auth::refresh_policy p;
    p.retry_initial = 20ms;
    p.retry_max = 100ms;
    p.max_attempts = 3;
    p.failure_hold = 0ms;
    return p;
}

struct got {
    error_code ec;
    auth::access_token tok;
};

got get(asio::io_context& io, auth::token_source& s)
{
    std::optional<got> out;
    s.async_get([&](error_code ec, auth::access_token t) { out = got{ec, std::move(t)}; });
    io.restart();
    while (!out && io.run_one_for(30s)) {
    }
    REQUIRE(out);
    return *out;
}

// The claims of a JWT, unverified (the SMTP peer verifies signatures).
json::object claims(const std::string& jwt)
{
    const auto a = jwt.find('.'), b = jwt.find('.', a + 1);
    REQUIRE(b != std::string::npos);
    std::string s = jwt.substr(a + 1, b - a - 1);
    for (char& c : s)
        c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (s.size() % 4)
        s += '=';
    std::string out(s.size(), '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(s.data()),
                                  static_cast<int>(s.size()));
    REQUIRE(n > 0);
    out.resize(static_cast<std::size_t>(n));
    while (!out.empty() && out.back() == '\0')
        out.pop_back();
    return json::parse(out).as_object();
}

#define SKIP_WITHOUT_TOKEN_SERVER()                                                                \
    if (!test::token_server_available()) {                                                         \
        MESSAGE("skipped: node or oauth2-mock-server 8 missing (node_peers.sh installs it)");      \
        return;                                                                                    \
    }

} // namespace

TEST_SUITE("auth.token_source")
{
    TEST_CASE("each grant gets a token the server signed for the right subject")
    {
        SKIP_WITHOUT_TOKEN_SERVER();
        token_server ts;
        asio::io_context io;
        struct row {
            const char* name;
            auth::oauth2_options opts;
            const char* grant;
            std::string sub;
        };
        const std::vector<row> rows{
            {"refresh_token", ts.refresh_grant(), "refresh_token", user_mailbox},
            {"client_credentials", ts.app_grant(), "client_credentials", app_id},
            {"jwt_bearer", ts.jwt_grant(), "jwt-bearer", user_mailbox}};
        for (const row& r : rows) {
            CAPTURE(r.name);
            auto src = auth::token_source::oauth2(io.get_executor(), r.opts);
            const auto before = ts.requests(r.grant);
            const got g = get(io, *src);
            REQUIRE_MESSAGE(!g.ec, g.tok.diag.to_string());
            CHECK(g.tok.diag.detail.empty());
            const auto c = claims(g.tok.value);
            CHECK(c.at("sub").as_string() == r.sub);
            CHECK(g.tok.expires_at > auth::clock::now() + 3500s);
            CHECK(g.tok.expires_at <= auth::clock::now() + 3600s);
            // The second get is the cache's.
            const got again = get(io, *src);
            CHECK(again.tok.value == g.tok.value);
            CHECK(ts.requests(r.grant) == before + 1);
            const auto s = src->snapshot();
            CHECK(s.refreshes == 1);
            CHECK(s.cache_hits == 1);
            CHECK(s.cached);
        }
    }

    TEST_CASE("100 concurrent gets: one request, one token for all")
    {
        SKIP_WITHOUT_TOKEN_SERVER();
        token_server ts;
        ts.inject("delay", 1, 300); // the request stays in flight while the gets arrive
        asio::io_context io;
        auto src = auth::token_source::oauth2(io.get_executor(), ts.refresh_grant());
        std::set<std::string> tokens;
        int done = 0;
        for (int i = 0; i < 100; ++i)
            src->async_get([&](error_code ec, auth::access_token t) {
                CHECK_FALSE(ec);
                tokens.insert(t.value);
                ++done;
            });
        io.run_for(30s);
        CHECK(done == 100);
        CHECK(tokens.size() == 1);
        CHECK(ts.requests("refresh_token") == 1);
        CHECK(ts.counts().at("max_in_flight").to_number<int>() == 1);
        CHECK(src->snapshot().joined == 99);
    }

    TEST_CASE("100 concurrent SMTP connects share one refresh, and every token verifies")
    {
        SKIP_WITHOUT_TOKEN_SERVER();
        token_server ts;
        const std::string pki = test::http_test_pki();
        const std::string base = "https://127.0.0.1:" + std::to_string(ts.proc->port());
        test::peer_process smtp({"/usr/bin/python3",
                                 MAILROOM_SOURCE_DIR "/test/integration/peers/oauth_smtp_server.py",
                                 "--jwks", base + "/jwks", "--issuer", base, "--ca-file",
                                 pki + "/ca.pem", "--implicit-tls", pki + "/localhost.pem",
                                 pki + "/localhost.key", "--max-seconds", "120"});
        ts.inject("delay", 1, 500);
        asio::io_context io;
        auto src = auth::token_source::oauth2(io.get_executor(), ts.refresh_grant());
        smtp::client_options o;
        o.host = "localhost";
        o.port = smtp.port();
        o.tls.mode = smtp::tls_mode::implicit;
        o.tls.ca_file = pki + "/ca.pem";
        o.auth =
            smtp::credentials{.username = user_mailbox, .mechanism = smtp::auth_mechanism::xoauth2};
        o.auth->tokens = src;
        std::vector<std::unique_ptr<smtp::client>> clients;
        int ok = 0, failed = 0;
        for (int i = 0; i < 100; ++i) {
            clients.push_back(std::make_unique<smtp::client>(io.get_executor(), o));
            clients.back()->async_connect([&, c = clients.back().get()](error_code ec) {
                if (ec) {
                    ++failed;
                    MESSAGE(ec.message(), ": ", c->last_diagnostics().to_string());
                } else {
                    ++ok;
                }
            });
        }
        io.run_for(60s);
        CHECK(ok == 100);
        CHECK(failed == 0);
        CHECK(ts.requests("refresh_token") == 1);
        CHECK(src->snapshot().refreshes == 1);
        for (auto& c : clients)
            c->close();
    }

    TEST_CASE("refresh ahead of expiry: the old token serves while one request runs")
    {
        SKIP_WITHOUT_TOKEN_SERVER();
        token_server ts(5); // 5-second tokens: refresh after 4 s (a fifth of the lifetime)
        asio::io_context io;
        auto src = auth::token_source::oauth2(io.get_executor(), ts.refresh_grant());
        const got first = get(io, *src);
        REQUIRE_FALSE(first.ec);
        std::this_thread::sleep_for(4200ms);
        const got second = get(io, *src); // in the margin: the cached token, a refresh starts
        CHECK(second.tok.value == first.tok.value);
        // The background refresh lands; a later get has the new token without waiting.
        for (int i = 0; i < 200 && src->snapshot().refreshes < 2; ++i) {
            io.restart();
            io.run_for(20ms);
        }
        const got third = get(io, *src);
        CHECK(third.tok.value != first.tok.value);
        CHECK(ts.requests("refresh_token") == 2);
        CHECK(src->snapshot().cache_hits == 2);
    }

    TEST_CASE("invalidate: the refused token is dropped; a stale refusal changes nothing")
    {
        SKIP_WITHOUT_TOKEN_SERVER();
        token_server ts;
        asio::io_context io;
        auto src = auth::token_source::oauth2(io.get_executor(), ts.refresh_grant());
        const got a = get(io, *src);
        src->invalidate(a.tok.value);
        const got b = get(io, *src);
        CHECK(b.tok.value != a.tok.value);
        src->invalidate(a.tok.value); // a second connection refused the old one: no new fetch
        const got c = get(io, *src);
        CHECK(c.tok.value == b.tok.value);
        CHECK(ts.requests("refresh_token") == 2);
        CHECK(src->snapshot().invalidations == 1);
    }

    TEST_CASE("invalid_grant and invalid_client: permanent, one request, the endpoint's text")
    {
        SKIP_WITHOUT_TOKEN_SERVER();
        token_server ts;
        asio::io_context io;
        auto revoked = ts.refresh_grant();
        revoked.refresh_token = "rt-revoked";
        auto hold = fast_retries();
        hold.retry_max = 10s; // a permanent failure is held this long
        auto src = auth::token_source::oauth2(io.get_executor(), revoked, hold);
        got g = get(io, *src);
        CHECK(g.ec == error::token_refresh_refused);
        CHECK(g.ec == condition::permanent);
        CHECK(g.tok.diag.detail.find("invalid_grant") != std::string::npos);
        CHECK(g.tok.value.empty());
        CHECK(ts.requests("refresh_token") == 1); // never retried
        // Held: a get right after fails at once, without asking the endpoint again.
        g = get(io, *src);
        CHECK(g.ec == error::token_refresh_refused);
        CHECK(ts.requests("refresh_token") == 1);

        auto wrong = ts.app_grant();
        wrong.client_secret = "not-the-secret";
        auto src2 = auth::token_source::oauth2(io.get_executor(), wrong, fast_retries());
        g = get(io, *src2);
        CHECK(g.ec == error::token_refresh_refused);
        CHECK(g.tok.diag.detail.find("HTTP 401: invalid_client") != std::string::npos);
        CHECK(g.tok.diag.to_string().find("not-the-secret") == std::string::npos);
        CHECK(src2->snapshot().last_error_detail.find("not-the-secret") == std::string::npos);
    }

    TEST_CASE("transient failures are retried with backoff")
    {
        SKIP_WITHOUT_TOKEN_SERVER();
        token_server ts;
        asio::io_context io;
        SUBCASE("500 twice, then a token")
        {
            ts.inject("500", 2);
            auto src =
                auth::token_source::oauth2(io.get_executor(), ts.refresh_grant(), fast_retries());
            const got g = get(io, *src);
            CHECK_FALSE(g.ec);
            CHECK(ts.requests("refresh_token") == 3);
            CHECK(src->snapshot().requests == 3);
        }
        SUBCASE("a dropped connection, then a token")
        {
            ts.inject("reset", 1);
            auto src =
                auth::token_source::oauth2(io.get_executor(), ts.refresh_grant(), fast_retries());
            CHECK_FALSE(get(io, *src).ec);
        }
        for (const char* kind : {"503", "malformed", "no_token"}) {
            CAPTURE(kind);
            ts.inject(kind, 3);
            auto src =
                auth::token_source::oauth2(io.get_executor(), ts.refresh_grant(), fast_retries());
            const got g = get(io, *src);
            CHECK(g.ec == error::token_refresh_failed); // every attempt failed
            CHECK(g.ec == condition::transient);
            CHECK_FALSE(g.tok.diag.detail.empty());
            CHECK(src->snapshot().requests == 3);
            CHECK(src->snapshot().failures == 1);
        }
        SUBCASE("a response slower than the deadline")
        {
            ts.inject("delay", 3, 1500);
            auto o = ts.refresh_grant();
            o.http.response_timeout = 300ms;
            auto src = auth::token_source::oauth2(io.get_executor(), o, fast_retries());
            const got g = get(io, *src);
            CHECK(g.ec == error::token_refresh_failed);
            CHECK(g.tok.diag.to_string().find("time") != std::string::npos);
        }
    }

    TEST_CASE("an endpoint the trust anchors don't vouch for")
    {
        SKIP_WITHOUT_TOKEN_SERVER();
        token_server ts;
        asio::io_context io;
        auto o = ts.refresh_grant();
        o.http.tls.ca_file = test::http_test_pki() + "/self-signed.pem"; // not the server's CA
        auto src = auth::token_source::oauth2(io.get_executor(), o, fast_retries());
        const got g = get(io, *src);
        CHECK(g.ec == error::token_refresh_failed);
        CHECK(g.tok.diag.to_string().find("certificate") != std::string::npos);
        CHECK(ts.requests("refresh_token") == 0); // nothing was sent to it
    }

    TEST_CASE("close() ends a get waiting on a slow endpoint")
    {
        SKIP_WITHOUT_TOKEN_SERVER();
        token_server ts;
        ts.inject("delay", 1, 5000);
        asio::io_context io;
        auto src = auth::token_source::oauth2(io.get_executor(), ts.refresh_grant());
        std::optional<error_code> ec;
        src->async_get([&](error_code e, auth::access_token) { ec = e; });
        asio::steady_timer t(io, 200ms);
        t.async_wait([&](error_code) { src->close(); });
        const auto start = std::chrono::steady_clock::now();
        io.run_for(10s);
        REQUIRE(ec);
        CHECK(*ec == asio::error::operation_aborted);
        CHECK(std::chrono::steady_clock::now() - start < 4s);
    }

    TEST_CASE("a callback source: its token, its refusal flag, its errors")
    {
        asio::io_context io;
        std::vector<bool> asked;
        int n = 0;
        auto src = auth::token_source::from_callback(
            io.get_executor(), [&](bool refresh, auth::token_handler h) {
                asked.push_back(refresh);
                ++n;
                if (n == 3)
                    return std::move(h)(make_error_code(error::token_refresh_refused),
                                        auth::access_token{{}, {}, {"identity", "revoked"}});
                // From another thread, as an identity library might.
                std::thread([h = std::move(h), n]() mutable {
                    std::move(h)(
                        error_code{},
                        auth::access_token{"cb-" + std::to_string(n), auth::clock::now() + 1h, {}});
                }).join();
            });
        got g = get(io, *src);
        CHECK(g.tok.value == "cb-1");
        src->invalidate("cb-1");
        g = get(io, *src);
        CHECK(g.tok.value == "cb-2");
        CHECK(asked == std::vector<bool>{false, true});
        src->invalidate("cb-2");
        g = get(io, *src);
        CHECK(g.ec == error::token_refresh_refused);
        CHECK(g.tok.diag.detail == "revoked");
    }

    TEST_CASE("options that can't work are refused before any request")
    {
        asio::io_context io;
        diagnostics diag;
        auth::oauth2_options o;
        o.grant = auth::grant::refresh_token;
        o.client_id = "x";
        o.token_url = "https://localhost/token";
        CHECK(auth::token_source::make_oauth2(io.get_executor(), o, {}, diag).error() ==
              error::invalid_token_source); // no refresh token
        o.refresh_token = "r";
        o.token_url = "http://example.com/token";
        CHECK(auth::token_source::make_oauth2(io.get_executor(), o, {}, diag).error() ==
              error::invalid_token_source); // plain http off loopback
        CHECK(diag.field == "token URL");
        o.grant = auth::grant::client_credentials;
        o.token_url = "https://localhost/token";
        CHECK(auth::token_source::make_oauth2(io.get_executor(), o, {}, diag).error() ==
              error::invalid_token_source); // no secret
        o.grant = auth::grant::jwt_bearer;
        CHECK(auth::token_source::make_oauth2(io.get_executor(), o, {}, diag).error() ==
              error::invalid_token_source); // no service account
        CHECK_THROWS_AS(auth::token_source::oauth2(io.get_executor(), o),
                        boost::system::system_error);
    }
}
