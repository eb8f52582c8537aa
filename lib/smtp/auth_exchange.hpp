// Private: one SMTP AUTH exchange (RFC 4954 §4) driven by replies. Pure, no I/O: the caller
// sends what it is given and feeds back each reply.
#pragma once

#include "sasl.hpp"

#include <mailroom/smtp/reply.hpp>

#include <memory>
#include <string>

namespace mailroom::smtp::detail {

/// Drives a sasl_client over SMTP: base64, the 334 challenges, the "=" empty initial response,
/// the 512-octet AUTH line (an initial response that doesn't fit waits for the server's empty
/// challenge instead), "*" to cancel after a challenge the client can't accept.
///
///     auto ex = auth_exchange::start(mech, creds, out);   // out: "AUTH ...\r\n"
///     loop: send out; read a reply r;
///           switch (ex->on_reply(r, out, ec)) { send: continue; done: ec says how it ended }
///
/// Logging: while awaiting_response_line() is true the next client line is a SASL response;
/// pass it to redact_client_line(line, true).
class auth_exchange {
public:
    enum class step {
        send, ///< a line was appended to `out`: send it, then feed the next reply
        done, ///< finished: `ec` empty for success, else why it failed
    };

    /// Creates the mechanism and appends the AUTH command to `out`. Errors as for
    /// make_sasl_client.
    static result<auth_exchange> start(auth_mechanism m, const sasl_credentials& c,
                                       std::string& out, const sasl_options& o = {});

    /// Feeds the server's reply to the AUTH command or to the last line sent.
    ///
    /// On done, `ec` is empty after 235 and a mechanism that agrees it finished; a reply-
    /// category code (e.g. 535, 454) when the server refused; error::sasl_bad_challenge,
    /// sasl_server_error, scram_server_signature_mismatch when the client cancelled (the
    /// server's 501 to the "*" is consumed here, not reported); sasl_incomplete when the
    /// server accepted too early; error::protocol_error for a reply that doesn't belong in
    /// an AUTH exchange (2xx other than 235, 3xx other than 334, a 334 of several lines).
    step on_reply(const reply& r, std::string& out, error_code& ec);

    /// True until the exchange ends: any client line sent meanwhile answers a challenge, and
    /// is redacted in transcripts.
    bool awaiting_response_line() const noexcept { return state_ == state::waiting; }

    const sasl_client& mechanism() const noexcept { return *client_; }

private:
    enum class state { waiting, cancelled, finished };

    explicit auth_exchange(std::unique_ptr<sasl_client> c) noexcept
        : client_(std::move(c))
    {
    }
    step cancel(error e, std::string& out);

    std::unique_ptr<sasl_client> client_;
    std::optional<std::string> pending_initial_; // initial response that didn't fit on AUTH
    state state_ = state::waiting;
    error_code cancel_reason_;
    int challenges_ = 0;
};

} // namespace mailroom::smtp::detail
