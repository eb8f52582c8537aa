#include "random.hpp"

#include <cstdint>
#include <random>

namespace mailroom::mime::detail {

namespace {

// One generator per thread, seeded from the OS: builders on many threads never contend.
std::mt19937_64& generator()
{
    thread_local std::mt19937_64 gen = [] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
        return std::mt19937_64(seq);
    }();
    return gen;
}

} // namespace

std::string random_token()
{
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    std::uint64_t hi = generator()(), lo = generator()();
    std::string s(26, '\0');
    for (std::size_t i = 0; i < 26; ++i) {
        s[i] = alphabet[lo & 31];
        lo = (lo >> 5) | (hi << 59);
        hi >>= 5;
    }
    return s;
}

std::string new_boundary()
{
    return "=_mr" + random_token();
}

} // namespace mailroom::mime::detail
