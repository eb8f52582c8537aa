// Private: the script's arithmetic in C++ (see gcra.hpp and redis_script.cpp).
#include "gcra.hpp"

#include <algorithm>
#include <cmath>

namespace mailroom::limit::detail {

gcra_model::gcra_model(std::vector<gcra_bucket> buckets)
    : buckets_(std::move(buckets))
    , state_(buckets_.size())
{
}

double gcra_model::factor(double now) const
{
    if (!f_)
        return 1000;
    double f = *f_;
    if (now > *t_)
        f = f + std::floor((now - *t_) / *i_) * *s_;
    if (f > 1000)
        f = 1000;
    return f;
}

std::vector<gcra_model::live> gcra_model::load(double now, double f) const
{
    std::vector<live> bs;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
        live b;
        b.per = buckets_[i].per_us;
        b.rate = buckets_[i].rate * f / 1000;
        b.cap = buckets_[i].burst * b.per;
        double d = 0;
        if (state_[i].present) {
            d = state_[i].d;
            if (now > state_[i].t) {
                d = d - (now - state_[i].t) * b.rate;
                if (d < 0)
                    d = 0;
            }
        }
        b.d = d;
        bs.push_back(b);
    }
    return bs;
}

void gcra_model::store(std::size_t i, const live& b, double now)
{
    if (b.d <= 0) {
        state_[i] = {};
        return;
    }
    state_[i] = {true, b.d, now};
}

gcra_grant gcra_model::acquire(double now, double min, double need, double extra, double lease_us)
{
    const double f = factor(now);
    if (pause_until_ > now)
        return {0, 0, static_cast<std::uint64_t>(std::ceil((pause_until_ - now) / 1000)) * 1000,
                static_cast<unsigned>(f)};
    auto bs = load(now, f);
    double g = need, wait = 0;
    for (const live& b : bs) {
        const double a = std::floor((b.cap - b.d) / b.per);
        if (a < g)
            g = a;
        const double over = b.d + min * b.per - b.cap;
        if (over > 0) {
            const double w = std::ceil(over / b.rate);
            if (w > wait)
                wait = w;
        }
    }
    if (g < min) {
        if (wait < 1)
            wait = 1;
        return {0, 0, static_cast<std::uint64_t>(wait), static_cast<unsigned>(f)};
    }
    double e = extra;
    for (live& b : bs) {
        b.d = b.d + g * b.per;
        const double a = std::floor((b.cap - std::max(b.d, lease_us * b.rate)) / b.per);
        if (a < e)
            e = a;
    }
    if (e < 0)
        e = 0;
    for (std::size_t i = 0; i < bs.size(); ++i) {
        live& b = bs[i];
        if (e > 0)
            b.d = std::max(b.d, lease_us * b.rate) + e * b.per;
        if (g + e > 0)
            store(i, b, now);
    }
    return {static_cast<std::uint64_t>(g), static_cast<std::uint64_t>(e), 0,
            static_cast<unsigned>(f)};
}

void gcra_model::refund(double now, double n)
{
    auto bs = load(now, factor(now));
    for (std::size_t i = 0; i < bs.size(); ++i) {
        bs[i].d = bs[i].d - n * bs[i].per;
        if (bs[i].d < 0)
            bs[i].d = 0;
        store(i, bs[i], now);
    }
}

std::pair<unsigned, bool> gcra_model::slow_down(double now, double cut, double floor, double step,
                                                double interval_us, double cooldown_us)
{
    double f = factor(now);
    auto bs = load(now, f);
    for (std::size_t i = 0; i < bs.size(); ++i)
        store(i, bs[i], now);
    bool did = false;
    if (!c_ || now - *c_ >= cooldown_us) {
        double c = std::floor(f * cut / 1000);
        if (c < floor)
            c = floor;
        did = c < f;
        f = c;
        c_ = now;
    }
    f_ = f;
    t_ = now;
    s_ = step;
    i_ = interval_us;
    return {static_cast<unsigned>(f), did};
}

void gcra_model::quota(double now, double pause_us, std::size_t longest)
{
    auto bs = load(now, factor(now));
    for (std::size_t i = 0; i < bs.size(); ++i)
        store(i, bs[i], now);
    const double until = now + std::ceil(pause_us / 1000) * 1000;
    if (until > pause_until_)
        pause_until_ = until;
    if (longest > 0) {
        bs[longest - 1].d = bs[longest - 1].cap;
        store(longest - 1, bs[longest - 1], now);
    }
}

} // namespace mailroom::limit::detail
