// Private: completing type-erased handlers the way every mailroom operation does: never inside
// the call that completes them, on the handler's associated executor.
#pragma once

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>

#include <tuple>
#include <utility>

namespace mailroom::detail {

namespace asio = boost::asio;

// any_completion_handler's move assignment in Asio 1.26 passes its argument on as an lvalue,
// which selects the type-erasing constructor again, without end (fixed in later Asio).
// Handlers here are only ever move-constructed or swapped. For the same reason asio::append
// can't wrap one, hence this:
//
// A completion ready to run: the handler and its arguments, run on the handler's associated
// executor.
template <class Sig, class... Args> struct ready_completion {
    asio::any_completion_handler<Sig> handler;
    std::tuple<Args...> args;
    asio::any_completion_executor executor;

    using executor_type = asio::any_completion_executor;
    executor_type get_executor() const noexcept { return executor; }

    void operator()()
    {
        std::apply([this](auto&&... a) { std::move(handler)(std::move(a)...); }, std::move(args));
    }
};

// Posts `h(args...)` through `ex`; it runs on the handler's own associated executor (`ex` when
// it has none).
template <class Sig, class... Args>
void post_completion(const asio::any_io_executor& ex, asio::any_completion_handler<Sig> h,
                     Args... args)
{
    auto hex = asio::get_associated_executor(h, ex);
    asio::post(ex,
               ready_completion<Sig, Args...>{std::move(h), {std::move(args)...}, std::move(hex)});
}

} // namespace mailroom::detail
