// Private: the shared limiter's arithmetic in C++, the same operations in the same order as
// the Lua code in redis_script.cpp, on an injected clock. The tests check it against the local
// token_bucket (same grants for the same arrivals) and the script, run by a real Redis with
// the time passed in, against it (same answers); nothing else uses it.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace mailroom::limit::detail {

/// One bucket as the script gets it: rate, period in microseconds, burst.
struct gcra_bucket {
    double rate = 0;
    double per_us = 0;
    double burst = 0;
};

/// What acquire answers: tokens to use now, tokens leased, and when to ask again.
struct gcra_grant {
    std::uint64_t granted = 0;
    std::uint64_t leased = 0;
    std::uint64_t retry_after_us = 0; ///< 0 when granted
    unsigned factor = 1000;           ///< the shared adaptive rate, permille
};

/// One provider's state as Redis holds it: a debt and a time per bucket, the adaptive hash,
/// the pause.
class gcra_model {
public:
    explicit gcra_model(std::vector<gcra_bucket> buckets);

    gcra_grant acquire(double now, double min, double need, double extra, double lease_us);
    void refund(double now, double n);
    /// "slow": returns the factor and whether it was cut.
    std::pair<unsigned, bool> slow_down(double now, double cut, double floor, double step,
                                        double interval_us, double cooldown_us);
    void quota(double now, double pause_us, std::size_t longest_1based);

    /// A bucket's debt at the last write (tests).
    double debt(std::size_t i) const { return state_[i].d; }

private:
    struct state {
        bool present = false;
        double d = 0;
        double t = 0;
    };
    struct live {
        double rate = 0, per = 0, cap = 0, d = 0;
    };
    double factor(double now) const;
    std::vector<live> load(double now, double f) const;
    void store(std::size_t i, const live& b, double now);

    std::vector<gcra_bucket> buckets_;
    std::vector<state> state_;
    std::optional<double> f_, t_, c_, s_, i_;
    double pause_until_ = 0;
};

} // namespace mailroom::limit::detail
