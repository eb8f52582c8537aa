// mailroom::smtp::reply_category: server replies as error codes.
#pragma once

#include <mailroom/error.hpp>
#include <mailroom/smtp/reply.hpp>

#include <type_traits>

namespace mailroom::smtp {

/// SMTP reply codes (RFC 5321 §4.2.2, §4.2.3; RFC 4954 §6 for AUTH; RFC 3207 §4 for
/// STARTTLS; RFC 7504 for 521/556). An error_code in reply_category() holds the server's
/// reply code as its value, so any code works, named or not:
///
///     error_code ec = smtp::make_error_code(reply);         // value 550
///     ec == smtp::reply_code::mailbox_unavailable           // true
///     ec == mailroom::condition::permanent                  // true for every 5xx
///
/// The value holds only the basic code. Keep the `reply` beside it (in the diagnostics of the
/// operation that failed): it holds the enhanced status (`reply::status`) and the text.
enum class reply_code : int {
    service_not_available = 421, ///< closing the transmission channel
    password_transition = 432,   ///< RFC 4954: a password transition is needed
    mailbox_busy = 450,          ///< mailbox unavailable (busy, greylisted, ...)
    local_error = 451,           ///< aborted: local error in processing
    insufficient_storage = 452,  ///< also "too many recipients" (§4.5.3.1.10)
    temporary_failure = 454,     ///< RFC 3207: TLS not available now; RFC 4954: AUTH failed now
    cannot_accommodate_params = 455,
    syntax_error = 500, ///< command unrecognised, or line too long
    syntax_error_in_parameters = 501,
    command_not_implemented = 502,
    bad_sequence = 503,
    parameter_not_implemented = 504,
    does_not_accept_mail = 521, ///< RFC 7504
    auth_required = 530,        ///< RFC 4954
    auth_too_weak = 534,        ///< RFC 4954
    auth_failed = 535,          ///< RFC 4954: invalid credentials
    encryption_required = 538,  ///< RFC 4954
    mailbox_unavailable = 550,
    user_not_local = 551,
    exceeded_storage = 552,
    mailbox_name_not_allowed = 553,
    transaction_failed = 554,
    parameters_not_recognized = 555,
    domain_does_not_accept_mail = 556, ///< RFC 7504
};

/// The category of server replies: value() is the reply code. Conditions: 4xx is
/// condition::transient, 5xx condition::permanent; 2xx and 3xx map to no condition (they are
/// errors only where the client expected something else, and it says so with its own code).
MAILROOM_API const boost::system::error_category& reply_category() noexcept;

/// The error_code for a reply code, in reply_category(); makes `ec == reply_code::...` work.
inline error_code make_error_code(reply_code c) noexcept
{
    return {static_cast<int>(c), reply_category()};
}

/// The error_code for a reply: its code in reply_category().
inline error_code make_error_code(const reply& r) noexcept
{
    return {r.code, reply_category()};
}

} // namespace mailroom::smtp

/// @cond
// Boost.System opt-in, not part of the API reference.
template <> struct boost::system::is_error_code_enum<mailroom::smtp::reply_code> : std::true_type {
};
/// @endcond
