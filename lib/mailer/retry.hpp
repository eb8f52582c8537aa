// Private: what the mailer does after an attempt. Pure.
#pragma once

#include <mailroom/error.hpp>
#include <mailroom/mailer/mailer_options.hpp>
#include <mailroom/smtp/delivery_report.hpp>

#include <optional>

namespace mailroom::detail {

/// Whether an attempt that ended with `ec` (and, if it reached the server, `report`) may be
/// made again:
/// - never after success, a partial delivery, cancellation, a permanent or invalid-input
///   error, or a closing pool;
/// - an unknown outcome (the final dot was written, its reply lost) only with retry_unknown;
/// - otherwise when the error is transient (4xx replies, lost connections, timeouts,
///   failed connects, protocol errors, TLS failures the server may fix).
bool may_retry(error_code ec, const smtp::delivery_report* report, bool retry_unknown);

/// The reply worth showing the rate limiter after an attempt: the refusal, else the final
/// reply, else the first refused recipient's reply.
const smtp::reply* reply_for_limiter(const smtp::delivery_report& r);

} // namespace mailroom::detail
