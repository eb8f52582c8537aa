// mailroom::send_report: what happened to a message sent through a mailer.
#pragma once

#include <mailroom/smtp/delivery_report.hpp>

#include <chrono>
#include <string>

namespace mailroom {

/// The smtp report of the last attempt, plus where the message went, how many attempts it
/// took and where the time went.
struct send_report {
    /// The last attempt's report: per-recipient replies, final reply, queue id, outcome.
    smtp::delivery_report delivery;
    /// The provider it was routed to.
    std::string provider;
    /// Attempts made (1 when the first worked or failed for good); 0 if none could start.
    unsigned attempts = 0;

    /// Where the time went, summed over attempts.
    struct timings {
        /// Steady-clock durations.
        using duration = std::chrono::steady_clock::duration;
        duration limiter{};  ///< waiting for the rate limiter
        duration checkout{}; ///< waiting for a connection (connecting included)
        duration smtp{};     ///< the SMTP transaction(s)
        duration backoff{};  ///< waiting between attempts
        duration total{};    ///< from the call to the report
    } time;                  ///< where the time went
};

} // namespace mailroom
