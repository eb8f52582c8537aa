// mailroom::mailer_snapshot: a mailer's metrics at one instant, per provider.
#pragma once

#include <mailroom/limit/limiter_snapshot.hpp>
#include <mailroom/mailer/latency_histogram.hpp>
#include <mailroom/pool/pool_snapshot.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mailroom {

/// Counters, gauges and latency histograms, copied out for a service to export.
struct mailer_snapshot {
    /// One provider's figures.
    struct provider {
        std::string name; ///< provider_options::name

        // Counters of finished sends (one per async_send call).
        std::uint64_t delivered = 0; ///< every recipient accepted
        std::uint64_t partial = 0;   ///< some recipients refused
        std::uint64_t failed = 0;    ///< not delivered
        std::uint64_t unknown = 0;   ///< reply to the final dot lost: maybe delivered
        /// Attempts after the first, over all sends.
        std::uint64_t retries = 0;
        /// Decisive replies of finished attempts by class: 2xx, 4xx, 5xx (index 2, 4, 5).
        std::uint64_t replies[6] = {};

        // Gauges.
        std::uint64_t in_progress = 0; ///< sends begun and not finished
        /// The provider's connection pool.
        pool::pool_snapshot pool{};
        std::optional<limit::limiter_snapshot> limiter{}; ///< when the provider has limits

        /// Call to report, for sends that finished (any outcome).
        latency_histogram latency{};
        /// Time spent waiting for the limiter, per attempt that waited for it.
        latency_histogram limiter_wait{};
    };
    /// In the order of mailer_options::providers.
    std::vector<provider> providers;

    /// Sends delivered to every recipient or some (delivered + partial), over all providers.
    std::uint64_t sent() const noexcept
    {
        std::uint64_t n = 0;
        for (auto& p : providers)
            n += p.delivered + p.partial;
        return n;
    }
};

} // namespace mailroom
