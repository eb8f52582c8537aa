// Private: one message's SMTP transaction without I/O: the envelope (pipelined or lock-step),
// DATA or BDAT, the message data, the final reply, and the outcome in the delivery report.
#pragma once

#include "dot_stuffer.hpp"
#include "session.hpp"

#include <mailroom/mime/message.hpp>
#include <mailroom/smtp/delivery_report.hpp>
#include <mailroom/smtp/send_options.hpp>

#include <boost/asio/coroutine.hpp>

#include <functional>

namespace mailroom::smtp::detail {

/// Message data is written in blocks of about this size: large enough for few system calls,
/// small enough to keep memory per connection low.
inline constexpr std::size_t write_block = 64 * 1024;

/// Checks what can be checked before anything is written (recipients, SIZE, SMTPUTF8,
/// 8BITMIME, the paths) and appends MAIL, RCPT (and DATA unless `bdat`) to `out`, with the
/// DSN parameters where the server offers DSN (RFC 3461). Nothing is appended on an error.
error_code format_envelope(const mime::message& m, const send_options& o, const capabilities& caps,
                           bool bdat, std::string& out);

/// Appends the next queued message's envelope to `out`, to ride behind this message's final
/// dot (RFC 2920 §3.1); returns true when it did.
using next_envelope_fn = std::function<bool(std::string&)>;

/// Drives one send on an open session (RFC 5321 §3.3, RFC 2920, RFC 3030):
///
///     send_algo a(params, report);
///     for (io_result r;;) { action x = a.resume(r); if done: x.ec; else do x and fill r }
///
/// The result is the code client::async_send documents; the report holds the per-recipient
/// replies, the outcome and, on failure, the step that failed. `unknown` (and
/// error::delivery_status_unknown) exactly when the write holding the final dot (or the last
/// BDAT chunk) was started and no final reply was read. The algo never asks for anything after
/// an error; its done action says when the connection must be closed, and why.
class send_algo {
public:
    struct params {
        const mime::message& msg;
        const send_options& options;
        const session_state& session;
        bool pipelining = true; ///< the client allows PIPELINING (used where offered)
        bool chunking = true;   ///< the client allows CHUNKING (BDAT, used where offered)
        /// The envelope was already written, pipelined behind the previous message.
        bool envelope_sent = false;
        const session_log& log;
        /// The write buffer (kept by the connection so its capacity is reused).
        std::string& out;
        /// May be null: nothing rides behind the final dot.
        const next_envelope_fn* next_envelope = nullptr;
    };

    send_algo(const params& p, delivery_report& report);

    action resume(const io_result& r);

    /// Terminal cancellation: the result becomes operation_aborted unless the outcome is
    /// `unknown`. The driver closes the connection, which ends the action under way.
    void cancel() noexcept { cancelled_ = true; }
    bool cancelled() const noexcept { return cancelled_; }
    /// The next message's envelope was written behind this one's final dot.
    bool next_pipelined() const noexcept { return next_pipelined_; }

private:
    action done(error_code ec, std::string_view step, std::string detail = {},
                std::string_view close = {});
    action lost(error_code ec, std::string_view step);
    action lost_after(error_code ec, std::string_view step);
    action unknown(error_code cause, std::string_view step);
    std::string_view next_line();

    params p_;
    delivery_report& rep_;
    bool pipe_;
    bool bdat_;
    boost::asio::coroutine coro_;
    bool cancelled_ = false;
    bool next_pipelined_ = false;
    bool data_sent_ = false;
    bool refused_final_ = false;
    bool flush_ = false;
    std::size_t i_ = 0;
    std::size_t pos_ = 0; // lock-step: the next envelope line in out
    std::string_view line_;
    std::size_t bdat_commands_ = 0;
    std::size_t replies_ = 0;
    reply mail_r_, data_r_, r_, final_r_;
    // A refused envelope, kept while the session is cleaned up.
    error_code refused_ec_;
    const char* refused_step_ = "";
    reply refusal_;
    bool end_empty_data_ = false;
    bool rset_ = false;
    std::string close_why_;
    std::optional<mime::message::reader> reader_;
    std::optional<dot_stuffer> stuffer_;
    std::string pending_; // BDAT: the canonical form of the chunk not yet sent
};

} // namespace mailroom::smtp::detail
