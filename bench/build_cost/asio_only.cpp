// Build-cost baseline: a translation unit that uses Asio alone the way a service's mail code
// would (an io_context, a coroutine, a timer, a TCP socket), without mailroom.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <string>

namespace asio = boost::asio;

static asio::awaitable<void> job(std::string host, unsigned short port)
{
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer t(ex, std::chrono::milliseconds(1));
    co_await t.async_wait(asio::use_awaitable);
    asio::ip::tcp::socket s(ex);
    co_await s.async_connect({asio::ip::make_address(host), port}, asio::use_awaitable);
    co_await asio::async_write(s, asio::buffer(std::string("QUIT\r\n")), asio::use_awaitable);
}

int main(int argc, char** argv)
{
    asio::io_context ctx;
    asio::co_spawn(ctx, job(argc > 1 ? argv[1] : "127.0.0.1", 25), asio::detached);
    ctx.run();
}
