// mailroom::with_diagnostics: a completion token adapter that turns an error into an
// error_with_diagnostics exception carrying the operation's diagnostics.
#pragma once

#include <mailroom/error.hpp>
#include <mailroom/error_with_diagnostics.hpp>

#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace mailroom {

/// Adapts a completion token: an operation whose handler signature is `void(error_code, T...)`
/// completes with `void(std::exception_ptr, T...)` instead, the exception an
/// error_with_diagnostics holding the code and the operation's diagnostics (null on success).
/// Awaited in a coroutine, a failure then throws with the step and the server's reply rather
/// than a bare system_error (after Boost.MySQL's with_diagnostics).
///
/// The diagnostics come from the operation: a send's report (`diag`), or for the client's
/// connect and commands the client's diagnostics as they stand when the operation completes.
/// The default token of those operations is `with_diagnostics(asio::use_awaitable)`
/// (default_token_t); pass `asio::as_tuple(asio::deferred)` (or any other token) to get the
/// code instead.
template <class Token> struct with_diagnostics_t {
    /// The adapted token, which receives `void(std::exception_ptr, T...)`.
    Token token;
};

/// with_diagnostics_t for `token`.
template <class Token>
constexpr with_diagnostics_t<std::decay_t<Token>> with_diagnostics(Token&& token)
{
    return {std::forward<Token>(token)};
}

/// The default completion token of mailroom's operations that report diagnostics:
/// `with_diagnostics(asio::use_awaitable)`, so `co_await op()` in an `asio::awaitable`
/// coroutine returns the value or throws error_with_diagnostics. (Not `asio::deferred`: Asio
/// 1.81 can't co_await a deferred operation completing with `(std::exception_ptr, T)`; pass
/// `asio::deferred` explicitly to compose operations, e.g. in a parallel group, with their
/// error_code.)
using default_token_t = with_diagnostics_t<boost::asio::use_awaitable_t<>>;

namespace detail {

// A source of diagnostics among an operation's initiation arguments, found by ADL
// (`diagnostics_source(arg)` returning a shared_ptr<const diagnostics>), or none.
struct no_diagnostics_source {};
template <class T>
concept has_diagnostics_source = requires(const T& t)
{
    {
        diagnostics_source(t)
        } -> std::convertible_to<std::shared_ptr<const diagnostics>>;
};
inline std::shared_ptr<const diagnostics> find_diagnostics_source()
{
    return nullptr;
}
template <class First, class... Rest>
std::shared_ptr<const diagnostics> find_diagnostics_source(const First& first, const Rest&... rest)
{
    if constexpr (has_diagnostics_source<First>)
        return diagnostics_source(first);
    else
        return find_diagnostics_source(rest...);
}

// The diagnostics a completion value carries: a report's `diag`, a send report's
// `delivery.diag`.
inline const diagnostics* diagnostics_in()
{
    return nullptr;
}
template <class T, class... Rest> const diagnostics* diagnostics_in(const T& t, const Rest&...)
{
    if constexpr (requires { t.diag; })
        return &t.diag;
    else if constexpr (requires { t.delivery.diag; })
        return &t.delivery.diag;
    else
        return nullptr;
}

template <class Handler> struct diagnostics_handler {
    Handler handler;
    std::shared_ptr<const diagnostics> source;

    template <class... Ts> void operator()(error_code ec, Ts&&... values)
    {
        std::exception_ptr e;
        if (ec) {
            const diagnostics* d = diagnostics_in(values...);
            if (!d)
                d = source.get();
            e = std::make_exception_ptr(error_with_diagnostics(ec, d ? *d : diagnostics{}));
        }
        source.reset();
        std::move(handler)(std::move(e), std::forward<Ts>(values)...);
    }
};

template <class Initiation> struct diagnostics_initiation {
    Initiation initiation;

    template <class Handler, class... Args> void operator()(Handler&& h, Args&&... args)
    {
        auto source = find_diagnostics_source(args...);
        std::move(initiation)(
            diagnostics_handler<std::decay_t<Handler>>{std::forward<Handler>(h), std::move(source)},
            std::forward<Args>(args)...);
    }
};

} // namespace detail
} // namespace mailroom

namespace boost::asio {

/// A handler wrapped by with_diagnostics keeps its executor, cancellation slot and the rest of
/// its associations.
template <template <class, class> class Associator, class Handler, class Default>
struct associator<Associator, mailroom::detail::diagnostics_handler<Handler>, Default>
    : Associator<Handler, Default> {
    static typename Associator<Handler, Default>::type
    get(const mailroom::detail::diagnostics_handler<Handler>& h) noexcept
    {
        return Associator<Handler, Default>::get(h.handler);
    }
    static auto get(const mailroom::detail::diagnostics_handler<Handler>& h,
                    const Default& d) noexcept
        -> decltype(Associator<Handler, Default>::get(h.handler, d))
    {
        return Associator<Handler, Default>::get(h.handler, d);
    }
};

template <class Token, class... Ts>
struct async_result<mailroom::with_diagnostics_t<Token>, void(mailroom::error_code, Ts...)>
    : async_result<Token, void(std::exception_ptr, Ts...)> {
    using base = async_result<Token, void(std::exception_ptr, Ts...)>;

    template <class Initiation, class RawToken, class... Args>
    static auto initiate(Initiation&& initiation, RawToken&& token, Args&&... args)
        -> decltype(base::initiate(
            std::declval<mailroom::detail::diagnostics_initiation<std::decay_t<Initiation>>>(),
            std::declval<Token>(), std::declval<Args>()...))
    {
        return base::initiate(
            mailroom::detail::diagnostics_initiation<std::decay_t<Initiation>>{
                std::forward<Initiation>(initiation)},
            std::forward<RawToken>(token).token, std::forward<Args>(args)...);
    }
};

} // namespace boost::asio
