// A batch of personalised messages from one template builder, sent through a mailer.
//
// The template holds what every message shares (From, the body, a List-Unsubscribe URI, a
// custom header). The body is prepared once, when text() is called; each message is a copy of
// the template with its own To and Subject, and build() then only lays out the headers. All
// the sends are started at once as a ranged parallel group, and the batch waits for them all.
//
//     example_template_batch HOST PORT [COUNT]      (COUNT messages, default 5)
//
// Plaintext (tls_mode::none), for a local test server such as `mailroom sink`. Exits 0 when
// every message was delivered to every recipient, 1 otherwise.

#include <mailroom/mailer/mailer.hpp>
#include <mailroom/mime/message_builder.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using namespace mailroom;

namespace {

// The type of one deferred send, so that many can be kept in a vector. `asio::deferred`
// explicitly: the group then hands back each send's error_code (the default token,
// with_diagnostics, would make it an exception_ptr).
using send_op =
    decltype(std::declval<mailer&>().async_send(std::declval<mime::message>(), asio::deferred));

asio::awaitable<int> send_batch(mailer* m, std::vector<mime::message> batch)
{
    std::vector<send_op> sends;
    for (const auto& msg : batch)
        sends.push_back(m->async_send(msg, asio::deferred)); // nothing starts yet

    auto [order, codes, reports] =
        co_await asio::experimental::make_parallel_group(std::move(sends))
            .async_wait(asio::experimental::wait_for_all(), asio::deferred);

    // Results are in the order the operations were given; `order` says which finished first.
    int failed = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const std::string to = batch[i].envelope().recipients.front().str();
        if (codes[i] || reports[i].delivery.outcome != smtp::outcome::delivered) {
            ++failed;
            std::cout << to << ": FAILED: " << codes[i].message() << "\n";
        } else {
            std::cout << to << ": delivered " << batch[i].message_id() << "\n";
        }
    }
    std::cout << "first to finish: message " << order.front() + 1 << "; "
              << batch.size() - static_cast<std::size_t>(failed) << " of " << batch.size()
              << " delivered\n";

    co_await m->async_shutdown(); // throws system_error on failure
    co_return failed == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    const int port = argc >= 3 ? std::atoi(argv[2]) : 0;
    const int count = argc == 4 ? std::atoi(argv[3]) : 5;
    if (argc < 3 || argc > 4 || port <= 0 || port > 65535 || count <= 0) {
        std::cerr << "usage: " << argv[0] << " HOST PORT [COUNT]\n";
        return 2;
    }

    // What every message shares.
    mime::message_builder tmpl;
    tmpl.from("Example Newsletter <news@example.com>")
        .header("X-Campaign", "template-batch")
        .list_unsubscribe("https://example.com/unsubscribe")
        .text("Hello,\n\nhere is this week's report. Every reader gets this same body.\n");

    // One message per recipient: a copy of the template (cheap: the prepared body is shared),
    // with its own To and Subject. to() adds a recipient, so each message starts from the
    // template, not from the previous message's builder.
    std::vector<mime::message> batch;
    for (int i = 1; i <= count; ++i) {
        const std::string name = "Reader " + std::to_string(i);
        mime::message_builder b = tmpl;
        b.to(name + " <reader" + std::to_string(i) + "@example.org>")
            .subject("Weekly report for " + name);
        diagnostics diag;
        auto msg = b.build(diag);
        if (!msg) {
            std::cerr << "message " << i << ": " << msg.error().message() << " ("
                      << diag.to_string() << ")\n";
            return 1;
        }
        batch.push_back(std::move(*msg));
    }

    provider_options local;
    local.name = "local";
    local.server.host = argv[1];
    local.server.port = static_cast<std::uint16_t>(port);
    local.server.tls.mode = smtp::tls_mode::none; // plaintext: only for a local test server
    local.pool.max_connections = 2;
    mailer_options mo;
    mo.providers.push_back(std::move(local));

    asio::io_context io;
    mailer m(io.get_executor(), std::move(mo));
    int rc = 1;
    asio::co_spawn(io, send_batch(&m, std::move(batch)), [&](std::exception_ptr e, int r) {
        try {
            if (e)
                std::rethrow_exception(e);
            rc = r;
        } catch (const std::exception& x) {
            std::cerr << "error: " << x.what() << "\n";
        }
    });
    io.run();
    return rc;
}
