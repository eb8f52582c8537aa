// Runs a coroutine to completion on an io_context, for tests.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <optional>

namespace mailroom::test {

/// Runs `a` on `io` until it finishes; fails the test if it takes longer than `limit`
/// (a hang is a bug here, not a slow machine: limits are generous) or throws.
template <class T>
T run_coro(boost::asio::io_context& io, boost::asio::awaitable<T> a,
           std::chrono::steady_clock::duration limit = std::chrono::seconds(30))
{
    std::optional<T> result;
    std::exception_ptr error;
    bool done = false;
    boost::asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
        error = e;
        result.emplace(std::move(v));
        done = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + limit;
    io.restart();
    while (!done && std::chrono::steady_clock::now() < deadline)
        io.run_one_for(std::chrono::milliseconds(50));
    REQUIRE_MESSAGE(done, "the coroutine did not finish in time");
    if (error)
        std::rethrow_exception(error);
    return std::move(*result);
}

/// Runs `io` until `done()` is true; fails the test after `limit`.
template <class Pred>
void run_until(boost::asio::io_context& io, Pred done,
               std::chrono::steady_clock::duration limit = std::chrono::seconds(30))
{
    const auto deadline = std::chrono::steady_clock::now() + limit;
    io.restart();
    while (!done() && std::chrono::steady_clock::now() < deadline)
        io.run_one_for(std::chrono::milliseconds(50));
    REQUIRE_MESSAGE(done(), "the operations did not finish in time");
}

/// Runs ready handlers for a moment, e.g. to let a server notice a close.
inline void settle(boost::asio::io_context& io,
                   std::chrono::milliseconds d = std::chrono::milliseconds(50))
{
    io.restart();
    io.run_for(d);
}

} // namespace mailroom::test
