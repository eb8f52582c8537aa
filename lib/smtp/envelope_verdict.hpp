// Private: what the replies to one envelope decide (RFC 5321 §4.1.1, RFC 2920 §3). Pure.
#pragma once

#include <mailroom/smtp/delivery_report.hpp>
#include <mailroom/smtp/reply.hpp>

#include <span>

namespace mailroom::smtp::detail {

struct envelope_verdict {
    enum class kind {
        send_data,   ///< at least one recipient accepted and the server wants the data
        out_of_step, ///< a reply that can't answer its command: protocol error, close
        closing,     ///< a 421: the server is closing the connection
        refused,     ///< nothing to deliver; `cause` says why
    };
    kind k = kind::send_data;
    /// The reply that decides a refusal or a 421.
    const reply* cause = nullptr;
    /// The command `cause` answered: "MAIL FROM", "RCPT TO" or "DATA".
    const char* step = "";
    /// DATA was answered 354 (any 3yz) although nothing may be sent: end the data empty (".")
    /// first.
    bool end_empty_data = false;
    /// Reset the session after a refusal (a transaction was opened by MAIL).
    bool rset = false;
};

/// Judges the replies to MAIL, to each RCPT (code 0 when never sent) and to DATA (`data` is
/// null when DATA wasn't sent: BDAT, or no recipient accepted in lock-step).
///
/// - Out of step: a 3xx to MAIL or RCPT, or a 2xx to DATA. Under pipelining that means an
///   extra reply was injected or one is missing, and nothing after it can be trusted.
/// - Closing: a 421 to any of them (RFC 5321 §3.8).
/// - Refused: MAIL refused; else every recipient refused (the worst refusal: permanent over
///   transient); else DATA not answered 3yz (354, or any 3yz: RFC 5321 §4.2.1).
///
/// Every reply is judged by its first digit, so a code the client doesn't know (471, 559) is a
/// refusal like its neighbours (RFC 5321 §4.2.1, §4.3.2).
envelope_verdict judge_envelope(const reply& mail, std::span<const recipient_status> rcpts,
                                const reply* data);

} // namespace mailroom::smtp::detail
