// Private: the vocabulary shared by the SMTP session algos (connect_algo, send_algo) and the
// I/O driver in client.cpp. The algos are sans-I/O: they take what happened (a write done, a
// reply read, a handshake finished, an error) and return the next action. The driver does the
// I/O, with the deadline of the action's phase, and maps transport errors before resuming.
// (The shape of Boost.MySQL's sansio algos and Boost.Redis's connect_fsm.)
#pragma once

#include <mailroom/error.hpp>
#include <mailroom/logger.hpp>
#include <mailroom/smtp/auth_mechanism.hpp>
#include <mailroom/smtp/capabilities.hpp>
#include <mailroom/smtp/reply.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace mailroom::smtp::detail {

/// Which deadline (and which timeout error) covers an action: RFC 5321 §4.5.3.2 names the
/// SMTP ones; TLS has its own.
enum class phase : unsigned char {
    tls_handshake, ///< timeouts.tls_handshake, error::tls_handshake_timeout
    greeting,      ///< timeouts.greeting, error::greeting_timeout
    command,       ///< timeouts.command, error::command_timeout (EHLO, STARTTLS, AUTH, RSET)
    mail,          ///< timeouts.mail, error::mail_timeout
    rcpt,          ///< timeouts.rcpt, error::rcpt_timeout
    data,          ///< timeouts.data, error::data_timeout
    data_block,    ///< timeouts.data_block, error::data_block_timeout
    data_end,      ///< timeouts.data_end, error::data_end_timeout
};

/// "greeting", "mail", ...
const char* to_string(phase p) noexcept;

/// What an algo asks of the driver next.
struct action {
    enum class kind : unsigned char {
        write,     ///< write `bytes` in full, then resume with the error (if any)
        read,      ///< read one reply into `*into`, then resume with the error (if any)
        handshake, ///< TLS client handshake, then resume with the error (if any)
        token,     ///< get an access token from credentials::tokens into io_result::token
        done,      ///< finished: `ec` is the result; close the connection if `close` is set
    };
    kind k = kind::done;
    phase ph = phase::command;
    std::string_view bytes{};
    reply* into = nullptr;
    error_code ec{};
    /// done: why the connection can no longer be used (empty: it can). Logged by the driver.
    std::string_view close{};

    static action write(std::string_view b, phase p)
    {
        return {kind::write, p, b, nullptr, {}, {}};
    }
    static action read(reply& r, phase p) { return {kind::read, p, {}, &r, {}, {}}; }
    static action handshake()
    {
        return {kind::handshake, phase::tls_handshake, {}, nullptr, {}, {}};
    }
    static action get_token() { return {kind::token, phase::command, {}, nullptr, {}, {}}; }
    static action finish(error_code e, std::string_view close_reason = {})
    {
        return {kind::done, phase::command, {}, nullptr, e, close_reason};
    }
};

/// What the algo learns from the driver after each action.
struct io_result {
    /// The action's error, already mapped by the driver: a deadline is the phase's timeout
    /// error, a peer that went away error::connection_lost, a cancellation operation_aborted.
    error_code ec{};
    /// After a read: bytes (or part of a reply) were received beyond the reply just read.
    bool more_buffered = false;
    /// After get_token: the access token (never logged), or why there is none.
    std::string token{};
    /// After a failed get_token: the token source's diagnostics.
    std::string token_detail{};
};

/// What a connection knows about its session, shared by the algos and the client.
struct session_state {
    capabilities caps{};
    bool tls = false;
    std::optional<auth_mechanism> auth_used{};
    /// The server refused an access token and then closed the connection while the client
    /// retried with a refreshed one: the driver retries AUTH once on a new connection.
    bool token_retry_needs_reconnect = false;
};

/// Log lines of one connection, each prefixed "smtp[host#n]". Transcript lines are at trace;
/// client lines pass through redact_client_line (never AUTH payloads).
struct session_log {
    const logger* log = nullptr;
    std::string prefix{};

    bool enabled(log_level l) const noexcept { return log && log->enabled(l); }
    void operator()(log_level l, std::string_view what) const;
    /// "C: ..." for each CRLF-ended line of `data`.
    void client_lines(std::string_view data, bool sasl_response = false) const;
    /// "S: ..." for each line of `r`.
    void server_reply(const reply& r) const;
};

/// The error for a reply its command didn't expect, judged by its first digit (RFC 5321
/// §4.2.1, §4.3.2): a 4yz is a transient failure of the command and a 5yz a permanent one (the
/// reply's own code, in reply_category(), whatever the code: 471 is as good as 451); a 2yz or 3yz
/// is the wrong kind of positive answer (a 3yz to a command that wants 2yz, a 2yz where the
/// server should ask for more), which leaves the client and server out of step:
/// error::protocol_error.
error_code unexpected_reply(const reply& r) noexcept;

/// Records a failed step in `d` (`detail` or, if empty, the error's message) and logs it as a
/// warning: "<step> failed: <detail>". Returns `ec`.
error_code record_failure(diagnostics& d, const session_log& log, std::string_view step,
                          error_code ec, std::string detail = {});

} // namespace mailroom::smtp::detail
