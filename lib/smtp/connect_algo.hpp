// Private: the SMTP session set-up after the TCP connection is made, without I/O: implicit TLS,
// the greeting, EHLO (HELO where refused), STARTTLS and EHLO again, AUTH with one token refresh.
#pragma once

#include "auth_exchange.hpp"
#include "session.hpp"

#include <mailroom/smtp/client_options.hpp>

#include <boost/asio/coroutine.hpp>

namespace mailroom::smtp::detail {

/// Drives the set-up of one connection (RFC 5321 §3.1-3.2, RFC 3207, RFC 4954).
///
///     connect_algo a(opts, session, diag, log);
///     for (io_result r;;) { action x = a.resume(r); if done: x.ec; else do x and fill r }
///
/// `session` receives the capabilities, the TLS state and the mechanism used; `diag` the step
/// that failed. Before a read the driver sets its reply parser's enhanced-status mode from
/// session.caps; after a handshake it starts the parser afresh. Errors as client::async_connect
/// documents them.
class connect_algo {
public:
    /// `token_retry`: a refused access token may be refreshed and AUTH tried once more (off
    /// on the new connection made after the server closed the first during that retry).
    connect_algo(const client_options& opts, session_state& session, diagnostics& diag,
                 const session_log& log, bool token_retry = true);

    action resume(const io_result& r);

private:
    // Steps that end in "write, then read the reply" with the same error handling.
    action fail(std::string_view step, error_code ec, std::string detail = {});
    action fail_reply(std::string_view step, const reply& r);
    bool may_helo() const noexcept;
    error_code start_auth_exchange();
    void note_lost_retry(error_code ec);
    bool bearer_mechanism() const noexcept;

    const client_options& opts_;
    session_state& session_;
    diagnostics& diag_;
    const session_log& log_;
    boost::asio::coroutine coro_;
    boost::asio::coroutine hello_coro_;
    std::string out_;
    reply r_;
    const char* hello_step_ = "EHLO";
    // AUTH
    sasl_credentials creds_;
    std::optional<auth_mechanism> mech_;
    std::optional<auth_exchange> exchange_;
    bool response_line_ = false;
    int attempt_ = 0;
    error_code auth_ec_;
    bool token_retry_ = true;
    std::string token_; // from credentials::tokens
};

} // namespace mailroom::smtp::detail
