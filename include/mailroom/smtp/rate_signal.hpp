// mailroom::smtp::rate_signal: what a server reply says about the rate we send at.
#pragma once

#include <mailroom/config.hpp>
#include <mailroom/limit/signal.hpp>

namespace mailroom::smtp {

struct reply;

/// Classifies a server reply for a rate limiter (limit::limiter::on_signal). Pure: the reply
/// code, its RFC 3463 enhanced status and its text (all lines, case-insensitive), nothing else.
///
/// - quota_exhausted: text that says a sending quota or a daily limit is exceeded (SES's
///   "454 Throttling failure: Daily message quota exceeded", Google's "550 5.4.5 Daily user
///   sending quota exceeded", Exchange Online's "554 5.2.0 ...SubmissionQuotaExceededException"),
///   and the enhanced status 5.4.5, which Google uses for its daily limits. A recipient's full
///   mailbox ("552 5.2.2 Mailbox quota exceeded") is not a sending quota: none.
/// - slow_down: text about rates, throttling and connection or thread limits ("454 Throttling
///   failure: Maximum sending rate exceeded", "432 4.3.2 STOREDRV.ClientSubmit; sender thread
///   limit exceeded", Postfix's "450 4.7.1 Error: too much mail from ..."); every 421 except
///   those about timeouts, TLS or errors; the enhanced statuses 4.3.2 (system not accepting
///   network messages) and 4.4.5 (mail system congestion); 451 with a 4.7.x status.
/// - none: everything else, including 2xx/3xx, a per-message recipient limit (X.5.3),
///   greylisting, and a recipient's own mailbox receiving too fast (that is about one
///   recipient, not our rate).
///
/// Thread safety: safe to call from any thread.
MAILROOM_API limit::signal rate_signal(const reply& r);

} // namespace mailroom::smtp
