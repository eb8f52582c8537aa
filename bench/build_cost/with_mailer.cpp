// Build cost with mailroom: the same kind of translation unit, sending one message through a
// mailer (message builder, mailer, coroutine).
#include <mailroom/mailer/mailer.hpp>
#include <mailroom/mime/message_builder.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <string>

namespace asio = boost::asio;

static asio::awaitable<void> job(mailroom::mailer& m)
{
    auto msg = mailroom::mime::message_builder()
                   .from("app@example.com")
                   .to("ops@example.net")
                   .subject("build cost")
                   .text("Hello\n")
                   .build_or_throw();
    co_await m.async_send(msg, asio::use_awaitable);
    co_await m.async_shutdown(asio::use_awaitable);
}

int main(int argc, char** argv)
{
    asio::io_context ctx;
    mailroom::smtp::client_options server;
    server.host = argc > 1 ? argv[1] : "127.0.0.1";
    server.tls.mode = mailroom::smtp::tls_mode::none;
    mailroom::mailer_options mo;
    mo.providers.push_back({.name = "local", .server = server});
    mailroom::mailer m(ctx.get_executor(), std::move(mo));
    asio::co_spawn(ctx, job(m), asio::detached);
    ctx.run();
}
