// mailroom::smtp::delivery_report: what happened to one message.
#pragma once

#include <mailroom/address.hpp>
#include <mailroom/error.hpp>
#include <mailroom/smtp/reply.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::smtp {

/// The server's answer for one recipient.
struct recipient_status {
    address recipient; ///< as in the envelope
    reply response;    ///< the reply to RCPT TO (code 0 when the command was never answered)
    /// True when the server accepted the recipient (a 2xx reply to RCPT TO).
    bool accepted() const noexcept { return response.code / 100 == 2; }
};

/// What happened to one message, as a whole.
enum class outcome {
    delivered, ///< the server took responsibility for every recipient
    partial,   ///< accepted for some recipients; `recipients` says which were refused
    failed,    ///< not accepted for anyone; safe to retry where the error is transient
    unknown,   ///< the connection failed after the final dot: it may have been delivered.
               ///< Never retried automatically (RFC 5321 §4.5.3.2, §6.1).
};

/// The outcome's name: "delivered", "partial", "failed" or "unknown" (as `mailroom send
/// --json` prints it).
MAILROOM_API std::string_view to_string(outcome o) noexcept;

/// What happened to one message sent by smtp::client::async_send: the reply for each recipient,
/// the final reply, the outcome, and why it failed. Filled in as far as the send got.
struct delivery_report {
    /// The message's Message-ID (mime::message::message_id()).
    std::string message_id;
    std::vector<recipient_status> recipients; ///< in envelope order
    /// The reply after the message data: the one that decides delivery.
    std::optional<reply> final_reply;
    /// For a failed outcome the server decided: the reply that refused the message (to MAIL,
    /// the worst RCPT refusal, DATA, the final reply, or a 421 to any of them).
    std::optional<reply> refusal;
    /// The server's queue id, where its final reply names one ("queued as 4Q1x2...").
    std::string queue_id;
    /// `failed` until the server has accepted the message.
    smtp::outcome outcome = smtp::outcome::failed;
    /// For a failed or unknown outcome: which step failed and why.
    diagnostics diag;

    /// How many recipients the server accepted.
    std::size_t accepted_count() const noexcept
    {
        std::size_t n = 0;
        for (const auto& r : recipients)
            n += r.accepted();
        return n;
    }
};

/// The queue id in a final reply's text, or empty: "queued as X" (Postfix, Sendmail, most
/// others), "id=X" (Exim), "OK id=X", "<X> Queued" forms.
MAILROOM_API std::string find_queue_id(const reply& r);

} // namespace mailroom::smtp
