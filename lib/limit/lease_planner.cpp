// Private: what a Redis-backed limiter asks for and when (see lease_planner.hpp).
#include "lease_planner.hpp"

#include "wide.hpp"

#include <algorithm>
#include <limits>

namespace mailroom::limit::detail {

using store_state = limiter_snapshot::store_state;

namespace {

error_code invalid(diagnostics& diag, std::string field, const char* detail)
{
    diag.field = std::move(field);
    diag.detail = detail;
    return error::invalid_limit;
}

bool key_ok(const std::string& k)
{
    if (k.empty() || k.size() > 200)
        return false;
    return std::all_of(k.begin(), k.end(),
                       [](char c) { return c > ' ' && c < 127 && c != '{' && c != '}'; });
}

std::int64_t micros(duration d)
{
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

} // namespace

result<lease_planner> lease_planner::create(const rate_limiter_options& limits,
                                            const store_options& store, time_point now,
                                            diagnostics& diag)
{
    lease_planner p;
    if (!store.key.empty() && !key_ok(store.key))
        return invalid(diag, "store.key",
                       "must be 1 to 200 printable ASCII octets, no spaces or braces");
    if (store.expected_processes == 0)
        return invalid(diag, "store.expected_processes", "must be at least 1");
    if (store.lease_ttl < duration::zero())
        return invalid(diag, "store.lease_ttl", "must not be negative");
    if (store.retry_interval <= duration::zero())
        return invalid(diag, "store.retry_interval", "must be longer than zero");
    duration ttl = store.max_lease == 0 ? duration::zero() : store.lease_ttl;
    for (std::size_t i = 0; i < limits.buckets.size(); ++i) {
        bucket_options b = limits.buckets[i];
        if (b.burst == 0)
            b.burst = b.rate;
        const std::string field = "buckets[" + std::to_string(i) + "]";
        // The script's numbers are doubles: burst × period (µs) must be an exact integer.
        const std::int64_t per_us = micros(b.per);
        if (per_us < 1 || micros(b.per) * 1000 != std::chrono::nanoseconds(b.per).count())
            return invalid(diag, field + ".per",
                           "must be a whole number of microseconds with store_kind::redis");
        if (u128(b.burst) * u128(per_us) >= (u128(1) << 53))
            return invalid(diag, field + ".burst",
                           "burst × period (µs) must stay below 2^53 with store_kind::redis");
        // A lease lasts at most half the time this bucket takes to fill.
        const u128 fill_ns =
            u128(b.burst) * u128(nanoseconds_of(b.per)) / u128(b.rate == 0 ? 1 : b.rate);
        const duration half = std::chrono::nanoseconds(static_cast<std::int64_t>(
            std::min<u128>(fill_ns / 2, u128(std::numeric_limits<std::int64_t>::max()))));
        ttl = std::min(ttl, half);
        // While sends queue behind the rate, one call takes what the tightest bucket refills
        // in a batch window, not one token per call.
        const u128 batch =
            u128(b.rate) * u128(nanoseconds_of(batch_window)) / u128(nanoseconds_of(b.per));
        p.batch_ = std::min<std::uint64_t>(
            p.batch_ == 0 ? std::numeric_limits<std::uint64_t>::max() : p.batch_,
            std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::min<u128>(batch, b.burst))));
        p.buckets_.push_back(b);
        // The fallback's share: rate and burst over the expected processes, at least 1.
        bucket_options f = b;
        f.rate = std::max<std::uint64_t>(1, b.rate / store.expected_processes);
        f.burst = std::max<std::uint64_t>(1, b.burst / store.expected_processes);
        f.initial.reset();
        auto fb = token_bucket::create(f, now, diag);
        if (!fb) {
            diag.field = field + "." + diag.field;
            return fb.error();
        }
        p.fallback_.push_back(*fb);
    }
    p.store_ = store;
    p.max_wait_ = limits.max_wait;
    p.lease_ttl_ = std::max(duration::zero(), ttl);
    return p;
}

error_code lease_planner::check(std::uint64_t cost, std::uint64_t waiting_cost,
                                time_point now) const
{
    for (const bucket_options& b : buckets_)
        if (cost > b.burst)
            return error::cost_exceeds_burst;
    if (max_wait_ == duration::max())
        return {};
    // A lower bound on the grant, as rate_limiter::enqueue's: full buckets at the configured
    // rates supplying what the waiters ahead want and then this cost.
    const std::uint64_t total = waiting_cost > std::numeric_limits<std::uint64_t>::max() - cost
                                    ? std::numeric_limits<std::uint64_t>::max()
                                    : waiting_cost + cost;
    time_point earliest = now;
    for (const bucket_options& b : buckets_)
        if (auto full = token_bucket::create(b, now))
            earliest = std::max(earliest, saturating_add(now, full->time_to_supply(total, now)));
    if (earliest > saturating_add(now, max_wait_))
        return error::limit_wait_too_long;
    return {};
}

void lease_planner::end_lease(time_point now)
{
    if (lease_ > 0 && now >= lease_end_) {
        refund_ += lease_;
        refunded_tokens_ += lease_;
        lease_ = 0;
        // Demand fell below the lease: ask for less next time.
        target_ /= 2;
    }
}

std::uint64_t lease_planner::usable(time_point now)
{
    if (state_ == store_state::fallback) {
        std::uint64_t n = std::numeric_limits<std::uint64_t>::max();
        for (const token_bucket& b : fallback_)
            n = std::min(n, b.available(now));
        return n;
    }
    end_lease(now);
    return granted_ + lease_;
}

void lease_planner::take(std::uint64_t n, time_point now)
{
    if (n == 0)
        return;
    if (state_ == store_state::fallback) {
        for (token_bucket& b : fallback_)
            b.try_take(n, now);
        fallback_grants_ += n;
        return;
    }
    const std::uint64_t from_granted = std::min(n, granted_);
    granted_ -= from_granted;
    lease_ -= std::min(lease_, n - from_granted);
}

std::optional<store_request> lease_planner::next_request(time_point now,
                                                         std::optional<std::uint64_t> head,
                                                         std::uint64_t waiting, bool at_cap)
{
    if (outstanding_ || now < retry_at_)
        return std::nullopt;
    store_request r;
    if (state_ == store_state::fallback || state_ == store_state::failed) {
        // A probe: is Redis back? It takes nothing.
        if (state_ == store_state::failed && !head)
            return std::nullopt;
    } else {
        if (!head)
            rate_bound_ = false; // the queue emptied: the rate no longer holds sends back
        if (!head || at_cap)
            return std::nullopt;
        const std::uint64_t have = usable(now);
        if (*head <= have)
            return std::nullopt;
        r.min = *head - have;
        r.need = std::max(r.min, waiting > have ? waiting - have : 0);
        if (rate_bound_)
            r.min = std::min(r.need, std::max(r.min, batch_));
        if (lease_ttl_ > duration::zero()) {
            // Demand goes on: the lease doubles, up to max_lease.
            target_ = std::min(store_.max_lease, std::max<std::uint64_t>(1, target_ * 2));
            r.extra = target_;
            r.lease = lease_ttl_;
        }
    }
    outstanding_ = true;
    ++acquires_;
    return r;
}

void lease_planner::on_answer(const store_request& r, const store_answer& a, time_point sent,
                              time_point now)
{
    outstanding_ = false;
    ++answers_;
    state_ = store_state::connected;
    factor_ = a.factor;
    granted_ += a.granted;
    if (a.leased > 0) {
        end_lease(now);
        // A new lease replaces what is left of the old one, which ends with it: both were
        // charged to end by their own lease's end, and the new one ends later.
        lease_ += a.leased;
        lease_end_ = sent + r.lease;
        ++leases_;
        leased_tokens_ += a.leased;
    }
    if (a.granted == 0 && a.leased == 0 && (r.min > 0 || a.retry_after_us > 0)) {
        rate_bound_ = true; // until the queue empties
        ++retries_after_;
        retry_at_ = now + std::chrono::microseconds(std::max<std::uint64_t>(1, a.retry_after_us));
    } else {
        retry_at_ = now;
    }
}

void lease_planner::on_failure(bool permanent, time_point now)
{
    outstanding_ = false;
    rate_bound_ = false;
    ++failures_;
    granted_ = 0;
    retry_at_ = now + store_.retry_interval;
    if (permanent)
        state_ = store_state::failed;
    else if (store_.when_unavailable == unavailable_policy::local_fallback)
        state_ = store_state::fallback;
    else
        state_ = store_state::unavailable;
}

std::uint64_t lease_planner::surrender() noexcept
{
    const std::uint64_t n = lease_ + refund_;
    refunded_tokens_ += lease_;
    lease_ = 0;
    refund_ = 0;
    granted_ = 0;
    return n;
}

std::uint64_t lease_planner::take_refund(time_point now)
{
    end_lease(now);
    return std::exchange(refund_, 0);
}

std::optional<time_point> lease_planner::next_wakeup(time_point now,
                                                     std::optional<std::uint64_t> head, bool at_cap)
{
    std::optional<time_point> w;
    auto at = [&](time_point t) {
        w = w ? std::min(*w, t) : t;
    };
    if (lease_ > 0)
        at(lease_end_);
    if (!outstanding_) {
        if (state_ == store_state::fallback)
            at(std::max(now, retry_at_)); // the next probe
        else if (head && !at_cap && retry_at_ > now)
            at(retry_at_);
    }
    if (state_ == store_state::fallback && head && !at_cap) {
        time_point t = now;
        for (const token_bucket& b : fallback_)
            t = std::max(t, saturating_add(now, b.time_until(*head, now)));
        at(t);
    }
    return w;
}

void lease_planner::set_rate_permille(unsigned permille, time_point now)
{
    for (token_bucket& b : fallback_)
        b.set_rate_permille(permille, now);
}

void lease_planner::fill(limiter_snapshot::store_info& s, time_point now)
{
    end_lease(now);
    s.state = state_;
    s.acquires = acquires_;
    s.failures = failures_;
    s.leases = leases_;
    s.leased_tokens = leased_tokens_;
    s.refunded_tokens = refunded_tokens_;
    s.fallback_grants = fallback_grants_;
    s.lease_held = lease_;
    s.shared_rate_permille = factor_;
}

} // namespace mailroom::limit::detail
