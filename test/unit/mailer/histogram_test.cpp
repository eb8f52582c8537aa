#include <mailroom/mailer/latency_histogram.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <random>
#include <vector>

using namespace std::chrono_literals;
using mailroom::latency_histogram;
using duration = latency_histogram::duration;

TEST_CASE("histogram: empty")
{
    latency_histogram h;
    CHECK(h.count() == 0);
    CHECK(h.percentile(0.5) == duration::zero());
    CHECK(h.max() == duration::zero());
}

TEST_CASE("histogram: buckets are ordered, contiguous and about 9 % wide")
{
    for (unsigned b = 1; b < latency_histogram::buckets; ++b) {
        CAPTURE(b);
        const auto lo = latency_histogram::upper_bound(b - 1);
        const auto hi = latency_histogram::upper_bound(b);
        REQUIRE(hi > lo);
        if (lo >= 10us) // below that, microsecond rounding dominates
            CHECK(static_cast<double>(hi.count()) / static_cast<double>(lo.count()) < 1.13);
    }
    for (duration d :
         std::initializer_list<duration>{1us, 7us, 8us, 9us, 100us, 1ms, 1234us, 1s, 59min}) {
        CAPTURE(d.count());
        const unsigned b = latency_histogram::bucket_of(d);
        CHECK(d <= latency_histogram::upper_bound(b));
        if (b > 0)
            CHECK(d >= latency_histogram::upper_bound(b - 1) - 1us);
    }
    CHECK(latency_histogram::bucket_of(0us) == 0);
    CHECK(latency_histogram::bucket_of(100h) == latency_histogram::buckets - 1);
}

TEST_CASE("histogram: percentiles within a bucket's width of the exact ones")
{
    std::mt19937 rng(42);
    std::lognormal_distribution<double> dist(7.0, 1.5); // µs: median ~1.1 ms, long tail
    std::vector<duration> xs;
    latency_histogram h;
    for (int i = 0; i < 20000; ++i) {
        const auto d = std::chrono::microseconds(static_cast<long>(dist(rng)) + 1);
        xs.push_back(d);
        h.record(d);
    }
    std::sort(xs.begin(), xs.end());
    CHECK(h.count() == xs.size());
    CHECK(h.max() == xs.back());
    for (double q : {0.01, 0.5, 0.9, 0.99, 0.999, 1.0}) {
        CAPTURE(q);
        const auto exact = xs[static_cast<std::size_t>(std::ceil(q * xs.size())) - 1];
        const auto got = h.percentile(q);
        CHECK(got >= exact);
        CHECK(static_cast<double>(got.count()) <= static_cast<double>(exact.count()) * 1.10 + 1000);
    }
}

TEST_CASE("histogram: merge adds counts and keeps the larger max")
{
    latency_histogram a, b;
    a.record(1ms);
    a.record(2ms);
    b.record(50ms);
    a.merge(b);
    CHECK(a.count() == 3);
    CHECK(a.max() == 50ms);
    CHECK(a.percentile(1.0) == 50ms);
    CHECK(a.percentile(0.34) >= 2ms);
    CHECK(a.percentile(0.34) < 3ms);
}
