// The pool's decisions (lib/pool/pool_policy.hpp) stepped on a manual clock: no sockets, no
// waits. Each case is a table of steps, each step an event and the actions it must produce.

#include "pool/pool_policy.hpp"

#include "../../common/manual_clock.hpp"

#include <mailroom/smtp/reply_error.hpp>

#include <doctest/doctest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace mailroom;
using namespace mailroom::pool::detail;
using mailroom::pool::duration;
using mailroom::pool::pool_options;
namespace asio = boost::asio;

namespace {

// The connection type the policy is handed here: a number and whether it is still open.
struct fake_conn {
    int id;
    bool open = true;
};
using conn = std::shared_ptr<fake_conn>;
bool is_open(const conn& c)
{
    return c->open;
}

using policy = pool_policy<conn, std::string>; // a waiter carries its name

std::string ms(std::chrono::steady_clock::duration d)
{
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + "ms";
}

std::string code(error_code ec)
{
    if (!ec)
        return "ok";
    if (ec == asio::error::operation_aborted)
        return "aborted";
    if (ec.category() == library_category())
        switch (static_cast<error>(ec.value())) {
        case error::checkout_timeout: return "checkout_timeout";
        case error::pool_closed: return "pool_closed";
        case error::circuit_open: return "circuit_open";
        case error::connect_timeout: return "connect_timeout";
        case error::greeting_timeout: return "greeting_timeout";
        default: return ec.message();
        }
    if (ec.category() == smtp::reply_category())
        return std::to_string(ec.value());
    if (ec == asio::error::connection_refused)
        return "refused";
    return ec.message();
}

const char* timer_name(pool_timer t)
{
    switch (t) {
    case pool_timer::checkout: return "checkout";
    case pool_timer::backoff: return "backoff";
    case pool_timer::maintenance: return "maintenance";
    }
    return "?";
}

// The policy, a manual clock, its timers, and the connections it asked for (#1, #2, ...).
// Every action becomes one line of text; maintenance re-arms are left out unless asked for.
struct harness {
    explicit harness(pool_options o)
        : pol(o)
    {
    }

    policy pol;
    test::manual_clock<> clock;
    test::manual_timers<pool_timer> timers;
    std::vector<conn> conns;
    bool show_maintenance = false;
    std::vector<std::string> log;

    conn& c(int n) { return conns.at(static_cast<std::size_t>(n - 1)); }
    std::string at(time_point t) const { return "@" + ms(t - time_point{}); }

    void collect()
    {
        for (auto& a : pol.actions()) {
            const std::string id = a.conn ? "#" + std::to_string(a.conn->id) : "";
            switch (a.kind) {
            case action_kind::lend: log.push_back("lend " + id + " to " + a.handler); break;
            case action_kind::fail: log.push_back("fail " + a.handler + ": " + code(a.ec)); break;
            case action_kind::open: {
                auto n = std::make_shared<fake_conn>(fake_conn{static_cast<int>(conns.size()) + 1});
                conns.push_back(n);
                pol.connecting(n);
                log.push_back("open #" + std::to_string(n->id));
                break;
            }
            case action_kind::probe: log.push_back("probe " + id); break;
            case action_kind::retire:
                log.push_back(a.quit ? "quit " + id : "close " + id);
                if (!a.quit)
                    a.conn->open = false;
                break;
            case action_kind::discard: log.push_back("discard " + id); break;
            case action_kind::stale: log.push_back("stale " + id); break;
            case action_kind::close:
                log.push_back("close " + id);
                a.conn->open = false;
                break;
            case action_kind::arm_timer:
                timers.arm(a.timer, a.at);
                if (a.timer != pool_timer::maintenance || show_maintenance)
                    log.push_back(std::string("arm ") + timer_name(a.timer) + " " + at(a.at));
                break;
            case action_kind::cancel_timers:
                timers.cancel_all();
                log.push_back("cancel timers");
                break;
            case action_kind::drained: log.push_back("drained: " + code(a.ec)); break;
            case action_kind::breaker_open:
                log.push_back("breaker open until " + at(a.at) + ": " + code(a.ec));
                break;
            case action_kind::breaker_close: log.push_back("breaker closed"); break;
            }
        }
        pol.clear_actions();
    }

    // ---- events, each returning the actions it caused ----------------------------------------

    std::vector<std::string> run(const std::function<void()>& event)
    {
        log.clear();
        event();
        collect();
        return log;
    }

    std::map<std::string, waiter_id> ids;
    std::vector<std::string> acquire(const std::string& name)
    {
        return run([&] { ids[name] = pol.acquire(name, clock.now()); });
    }
    std::vector<std::string> connected(int n, bool pipelining = false)
    {
        return run([&] { pol.connect_done(c(n), pipelining, clock.now()); });
    }
    std::vector<std::string> refused(int n, error_code ec, double unit = 0.0)
    {
        return run([&] { pol.connect_failed(c(n), ec, unit, clock.now()); });
    }
    std::vector<std::string> probed(int n, error_code ec = {})
    {
        return run([&] { pol.probe_done(c(n), ec, clock.now()); });
    }
    std::vector<std::string> give_back(int n)
    {
        return run([&] { pol.give_back(c(n), clock.now()); });
    }
    std::vector<std::string> quit_done()
    {
        return run([&] { pol.quit_done(clock.now()); });
    }
    std::vector<std::string> cancel(const std::string& name,
                                    asio::cancellation_type t = asio::cancellation_type::terminal)
    {
        return run([&] { pol.cancel(ids.at(name), t, clock.now()); });
    }
    std::vector<std::string> serve()
    {
        return run([&] { pol.serve(clock.now()); });
    }
    std::vector<std::string> drain()
    {
        return run([&] { pol.drain(); });
    }
    std::vector<std::string> close()
    {
        return run([&] { pol.close(); });
    }
    // Moves the clock by `d`, firing each timer that comes due on the way, earliest first.
    std::vector<std::string> advance(std::chrono::steady_clock::duration d)
    {
        log.clear();
        const auto end = clock.now() + d;
        while (auto due = timers.pop_due(end)) {
            clock.set(due->second);
            pol.timer_fired(due->first, clock.now());
            collect();
        }
        clock.set(end);
        return log;
    }
};

using lines = std::vector<std::string>;

// One step of a table: what happens, and what the policy must do about it.
struct step {
    const char* what;
    std::function<lines(harness&)> event;
    lines expected;
};

void run_steps(harness& h, const std::vector<step>& steps)
{
    for (const auto& s : steps) {
        CAPTURE(s.what);
        CHECK(s.event(h) == s.expected);
    }
}

const error_code busy = smtp::make_error_code(smtp::reply_code::service_not_available); // 421
const error_code bad_auth = smtp::make_error_code(smtp::reply_code{535});
const error_code refused = make_error_code(asio::error::connection_refused);
const error_code silent = make_error_code(error::greeting_timeout);

// The options of a case, in designated initializers.
pool_options plain(pool_options o)
{
    return o;
}

} // namespace

TEST_SUITE("pool policy")
{
    TEST_CASE("lending: connections open for demand up to max_connections, then are reused")
    {
        harness h(plain({.max_connections = 2, .pipeline_depth = 1, .checkout_timeout = 1s}));
        run_steps(
            h,
            {
                {"a asks: a connection opens",
                 [](harness& h) { return h.acquire("a"); },
                 {"open #1", "arm checkout @1000ms"}},
                {"b asks: a second one", [](harness& h) { return h.acquire("b"); }, {"open #2"}},
                {"c asks: max_connections reached", [](harness& h) { return h.acquire("c"); }, {}},
                {"#2 is ready first: the oldest waiter gets it",
                 [](harness& h) { return h.connected(2); },
                 {"lend #2 to a"}},
                {"#1 is ready", [](harness& h) { return h.connected(1); }, {"lend #1 to b"}},
                {"a gives #2 back: c gets it",
                 [](harness& h) { return h.give_back(2); },
                 {"lend #2 to c"}},
                {"b gives #1 back: nobody waits", [](harness& h) { return h.give_back(1); }, {}},
                {"d asks: an idle one at once",
                 [](harness& h) { return h.acquire("d"); },
                 {"lend #1 to d"}},
            });
        CHECK(h.conns.size() == 2);
        const auto g = h.pol.gauges();
        CHECK(g.open == 2);
        CHECK(g.leases == 2);
        CHECK(g.waiters == 0);
    }

    TEST_CASE("lending: the most recently used idle connection goes first")
    {
        harness h(plain({.max_connections = 2, .pipeline_depth = 1}));
        h.acquire("a");
        h.acquire("b");
        h.connected(1);
        h.connected(2);
        h.clock.advance(10ms);
        h.give_back(2);
        h.clock.advance(10ms);
        h.give_back(1);
        CHECK(h.acquire("c") == lines{"lend #1 to c"});
        CHECK(h.acquire("d") == lines{"lend #2 to d"});
    }

    TEST_CASE("lending: a pipelining connection takes pipeline_depth sends, least loaded first")
    {
        harness h(plain({.max_connections = 2, .pipeline_depth = 2}));
        run_steps(h, {
                         {"a",
                          [](harness& h) { return h.acquire("a"); },
                          {"open #1", "arm checkout @60000ms"}},
                         {"b", [](harness& h) { return h.acquire("b"); }, {"open #2"}},
                         {"c", [](harness& h) { return h.acquire("c"); }, {}},
                         {"d", [](harness& h) { return h.acquire("d"); }, {}},
                         {"e", [](harness& h) { return h.acquire("e"); }, {}},
                         {"#1 pipelines: two sends on it",
                          [](harness& h) { return h.connected(1, true); },
                          {"lend #1 to a", "lend #1 to b"}},
                         {"#2 doesn't: one send on it",
                          [](harness& h) { return h.connected(2, false); },
                          {"lend #2 to c"}},
                         {"one back on #1: d rides behind the other",
                          [](harness& h) { return h.give_back(1); },
                          {"lend #1 to d"}},
                     });
        CHECK(h.pol.gauges().waiters == 1); // e
    }

    TEST_CASE("try_acquire: only when nobody waits and no probe or new connection is due")
    {
        harness h(plain({.max_connections = 1,
                         .pipeline_depth = 1,
                         .probe_after_idle = 5s,
                         .checkout_timeout = 1s}));
        CHECK_FALSE(h.pol.try_acquire(h.clock.now())); // nothing open
        h.acquire("a");
        h.connected(1);
        CHECK_FALSE(h.pol.try_acquire(h.clock.now())); // lent
        h.give_back(1);
        auto got = h.pol.try_acquire(h.clock.now());
        REQUIRE(got);
        CHECK((*got)->id == 1);
        CHECK(h.acquire("b") == lines{}); // waits behind the fast path's lease
        CHECK_FALSE(h.pol.try_acquire(h.clock.now()));
        CHECK(h.give_back(1) == lines{"lend #1 to b"});
        h.give_back(1);
        h.clock.advance(5s);
        CHECK_FALSE(h.pol.try_acquire(h.clock.now())); // idle too long: a probe first
    }

    TEST_CASE("waiters: first come, first served, whatever order connections free up in")
    {
        harness h(plain({.max_connections = 1, .pipeline_depth = 1}));
        h.acquire("w0");
        h.connected(1);
        for (int i = 1; i <= 5; ++i)
            CHECK(h.acquire("w" + std::to_string(i)) == lines{});
        for (int i = 1; i <= 5; ++i)
            CHECK(h.give_back(1) == lines{"lend #1 to w" + std::to_string(i)});
        CHECK(h.give_back(1) == lines{});
    }

    TEST_CASE("waiters: each ends with checkout_timeout at its own deadline")
    {
        harness h(plain({.max_connections = 1, .pipeline_depth = 1, .checkout_timeout = 1s}));
        run_steps(h,
                  {
                      {"a holds the only connection",
                       [](harness& h) {
                           h.acquire("a");
                           return h.connected(1);
                       },
                       {"lend #1 to a"}},
                      {"b waits from 0 ms", [](harness& h) { return h.acquire("b"); }, {}},
                      {"c waits from 400 ms",
                       [](harness& h) {
                           h.clock.advance(400ms);
                           return h.acquire("c");
                       },
                       {}},
                      {"to 999 ms: nothing yet", [](harness& h) { return h.advance(599ms); }, {}},
                      {"1000 ms: b's deadline; the timer moves on to c's",
                       [](harness& h) { return h.advance(1ms); },
                       {"fail b: checkout_timeout", "arm checkout @1400ms"}},
                      {"1400 ms: c's",
                       [](harness& h) { return h.advance(400ms); },
                       {"fail c: checkout_timeout"}},
                      {"the connection comes back: nobody is left",
                       [](harness& h) { return h.give_back(1); },
                       {}},
                  });
        CHECK(h.pol.gauges().waiters == 0);
    }

    TEST_CASE("waiters: a timed-out or cancelled wait took nothing; the next one is served")
    {
        harness h(plain({.max_connections = 1, .pipeline_depth = 1, .checkout_timeout = 1s}));
        h.acquire("a");
        h.connected(1);
        h.acquire("b");
        h.clock.advance(500ms);
        h.acquire("c");
        CHECK(h.advance(500ms) == lines{"fail b: checkout_timeout", "arm checkout @1500ms"});
        CHECK(h.give_back(1) == lines{"lend #1 to c"});
        CHECK(h.pol.nodes().at(0).checkouts == 2);
    }

    TEST_CASE("cancellation: a waiting acquire honours terminal, partial and total alike")
    {
        for (const auto type :
             {asio::cancellation_type::terminal, asio::cancellation_type::partial,
              asio::cancellation_type::total,
              asio::cancellation_type::terminal | asio::cancellation_type::partial}) {
            CAPTURE(static_cast<int>(type));
            harness h(plain({.max_connections = 1, .pipeline_depth = 1}));
            h.acquire("a");
            h.connected(1);
            h.acquire("b");
            h.acquire("c");
            CHECK(h.pol.waiting(h.ids.at("b")));
            CHECK(h.cancel("b", type) == lines{"fail b: aborted"});
            CHECK_FALSE(h.pol.waiting(h.ids.at("b")));
            CHECK(h.pol.gauges().waiters == 1);
            CHECK(h.cancel("b", type) == lines{}); // once
            CHECK(h.give_back(1) == lines{"lend #1 to c"});
            CHECK(h.pol.nodes().at(0).checkouts == 2); // the cancelled wait took nothing
        }
    }

    TEST_CASE("cancellation: none of the three types, or after the answer, changes nothing")
    {
        harness h(plain({.max_connections = 1, .pipeline_depth = 1}));
        h.acquire("a");
        h.connected(1);
        h.acquire("b");
        CHECK(h.cancel("b", asio::cancellation_type::none) == lines{});
        CHECK(h.pol.waiting(h.ids.at("b")));
        CHECK(h.give_back(1) == lines{"lend #1 to b"});
        CHECK(h.cancel("b", asio::cancellation_type::total) == lines{}); // it has its answer
        CHECK(h.cancel("a") == lines{});
        CHECK(h.pol.gauges().leases == 1);
    }

    TEST_CASE("cancellation: the connection opened for a cancelled wait stays, idle")
    {
        harness h(plain({.max_connections = 2, .pipeline_depth = 1}));
        CHECK(h.acquire("a") == lines{"open #1", "arm checkout @60000ms"});
        CHECK(h.cancel("a", asio::cancellation_type::partial) == lines{"fail a: aborted"});
        CHECK(h.connected(1) == lines{});
        CHECK(h.acquire("b") == lines{"lend #1 to b"});
    }

    TEST_CASE("opening for demand: one connection per waiter beyond those opening, up to max")
    {
        struct row {
            std::size_t max, waiters, expect_opens;
        };
        for (const auto& r : {row{1, 5, 1}, row{3, 2, 2}, row{3, 5, 3}, row{8, 8, 8}}) {
            CAPTURE(r.max);
            CAPTURE(r.waiters);
            harness h(plain({.max_connections = r.max, .pipeline_depth = 1}));
            for (std::size_t i = 0; i < r.waiters; ++i)
                h.acquire("w" + std::to_string(i));
            CHECK(h.conns.size() == r.expect_opens);
            CHECK(h.pol.gauges().connecting == r.expect_opens);
        }
    }

    TEST_CASE("opening for demand: min_idle warms up, and is kept after idle_timeout")
    {
        harness h(plain({.max_connections = 4,
                         .min_idle = 2,
                         .pipeline_depth = 1,
                         .idle_timeout = 100ms,
                         .max_age = 0s}));
        CHECK(h.serve() == lines{"open #1", "open #2"});
        CHECK(h.serve() == lines{}); // already opening
        h.connected(1);
        h.connected(2);
        h.acquire("a");
        h.acquire("b");
        CHECK(h.acquire("c") == lines{"open #3", "arm checkout @60000ms"});
        h.connected(3);
        h.give_back(1);
        h.give_back(2);
        h.give_back(3);
        // Idle for longer than idle_timeout: one retires, min_idle stay.
        CHECK(h.advance(100ms) == lines{"quit #1"});
        h.quit_done();
        CHECK(h.advance(1s) == lines{});
        CHECK(h.pol.gauges().open == 2);
    }

    TEST_CASE("maintenance: idle_timeout retires a connection nobody uses, and then stops")
    {
        harness h(plain({.max_connections = 2, .idle_timeout = 100ms, .max_age = 0s}));
        h.show_maintenance = true;
        CHECK(h.acquire("a") == lines{"open #1", "arm checkout @60000ms"});
        // Every quarter of the idle timeout.
        CHECK(h.connected(1) == lines{"lend #1 to a", "arm maintenance @25ms"});
        CHECK(h.give_back(1) == lines{});
        CHECK(h.advance(100ms) == lines{"arm maintenance @50ms", "arm maintenance @75ms",
                                        "arm maintenance @100ms", "quit #1"});
        CHECK(h.pol.nodes().empty());
        CHECK(h.pol.closing() == 1);
        CHECK(h.quit_done() == lines{});
        CHECK(h.advance(1s) == lines{}); // an empty pool keeps no timer
    }

    TEST_CASE("maintenance: max_age retires a connection when it is next idle")
    {
        harness h(plain({.max_connections = 1,
                         .pipeline_depth = 1,
                         .idle_timeout = 10s,
                         .max_age = 1s,
                         .probe_after_idle = duration::max()}));
        run_steps(h, {
                         {"a",
                          [](harness& h) { return h.acquire("a"); },
                          {"open #1", "arm checkout @60000ms"}},
                         {"#1 ready", [](harness& h) { return h.connected(1); }, {"lend #1 to a"}},
                         {"b waits", [](harness& h) { return h.acquire("b"); }, {}},
                         {"back at 1 s: too old to lend, QUIT",
                          [](harness& h) {
                              h.clock.advance(1s);
                              return h.give_back(1);
                          },
                          // The QUIT still counts against max_connections: no new one yet.
                          {"quit #1"}},
                         {"the QUIT is done: a new connection for b",
                          [](harness& h) { return h.quit_done(); },
                          {"open #2"}},
                         {"#2 ready", [](harness& h) { return h.connected(2); }, {"lend #2 to b"}},
                         {"back, then idle past its age: maintenance retires it",
                          [](harness& h) {
                              h.give_back(2);
                              return h.advance(1s);
                          },
                          {"quit #2"}},
                     });
    }

    TEST_CASE("maintenance: max_messages_per_connection retires after the last lease")
    {
        harness h(
            plain({.max_connections = 1, .pipeline_depth = 1, .max_messages_per_connection = 2}));
        h.acquire("a");
        h.connected(1);
        CHECK(h.give_back(1) == lines{});
        CHECK(h.acquire("b") == lines{"lend #1 to b"});
        CHECK(h.acquire("c") == lines{});
        CHECK(h.give_back(1) == lines{"quit #1"});
        CHECK(h.quit_done() == lines{"open #2"});
        CHECK(h.connected(2) == lines{"lend #2 to c"});
    }

    TEST_CASE("probes: a connection idle past probe_after_idle gets a NOOP before it is lent")
    {
        struct row {
            const char* name;
            error_code probe_result;
            bool closed_meanwhile;
            lines after_probe;
        };
        for (const auto& r : {
                 row{"it passes: lent", {}, false, {"lend #1 to b"}},
                 row{"it fails: stale, a new one opens",
                     make_error_code(error::connection_lost),
                     false,
                     {"stale #1", "open #2"}},
                 row{"the client closed itself: stale", {}, true, {"stale #1", "open #2"}},
             }) {
            CAPTURE(r.name);
            harness h(plain({.max_connections = 1, .probe_after_idle = 5s}));
            h.acquire("a");
            h.connected(1);
            h.give_back(1);
            h.clock.advance(4999ms);
            CHECK(h.acquire("x") == lines{"lend #1 to x"}); // not yet
            h.give_back(1);
            h.clock.advance(5s);
            CHECK(h.acquire("b") == lines{"probe #1"});
            CHECK(h.pol.try_acquire(h.clock.now()) == std::nullopt); // probing
            h.c(1)->open = !r.closed_meanwhile;
            CHECK(h.probed(1, r.probe_result) == r.after_probe);
        }
    }

    TEST_CASE("a connection given back broken is discarded; its place opens again")
    {
        harness h(plain({.max_connections = 1, .pipeline_depth = 2}));
        h.acquire("a");
        h.acquire("b");
        CHECK(h.connected(1, true) == lines{"lend #1 to a", "lend #1 to b"});
        h.acquire("c");
        h.c(1)->open = false; // a 421 or a protocol error: the client closed itself
        CHECK(h.give_back(1) == lines{"discard #1", "open #2"});
        CHECK(h.give_back(1) == lines{}); // b's lease: #1 is gone already
        CHECK(h.connected(2) == lines{"lend #2 to c"});
    }

    TEST_CASE("backoff: failed connects wait d/2 + unit × d/2, doubling to the maximum")
    {
        harness h(plain({.max_connections = 1, .reconnect = {.initial = 100ms, .max = 400ms}}));
        h.acquire("a");
        h.acquire("b");
        // Transient: the oldest waiter hears of it (no connection is open); b waits.
        CHECK(h.refused(1, busy, 0.0) == lines{"fail a: 421", "arm backoff @50ms"});
        CHECK(h.pol.failures() == 1);
        CHECK(h.advance(49ms) == lines{});
        CHECK(h.advance(1ms) == lines{"open #2"});
        CHECK(h.refused(2, busy, 1.0) == lines{"fail b: 421"}); // nobody left to connect for
        CHECK(h.acquire("c") == lines{"arm backoff @250ms"});   // 50 + 200
        CHECK(h.advance(200ms) == lines{"open #3"});
        CHECK(h.refused(3, busy, 0.5) == lines{"fail c: 421"});
        CHECK(h.acquire("d") == lines{"arm backoff @550ms"}); // 250 + 300 (d = 400, capped)
        CHECK(h.advance(300ms) == lines{"open #4"});
        CHECK(h.refused(4, busy, 0.0) == lines{"fail d: 421"});
        CHECK(h.acquire("e") == lines{"arm backoff @750ms"}); // 550 + 200 (still capped)
        CHECK(h.advance(200ms) == lines{"open #5"});
        // A success resets the count: the next failure waits initial/2 again.
        CHECK(h.connected(5) == lines{"lend #5 to e"});
        CHECK(h.pol.failures() == 0);
        h.c(5)->open = false;
        h.acquire("f");
        CHECK(h.give_back(5) == lines{"discard #5", "open #6"});
        CHECK(h.refused(6, busy, 0.0) == lines{"fail f: 421"});
        CHECK(h.acquire("g") == lines{"arm backoff @800ms"});
    }

    TEST_CASE("backoff: with a connection open, a transient failure fails nobody")
    {
        harness h(plain({.max_connections = 2, .pipeline_depth = 1}));
        h.acquire("a");
        h.acquire("b");
        CHECK(h.connected(1) == lines{"lend #1 to a"});
        CHECK(h.refused(2, busy) == lines{"arm backoff @125ms"});
        CHECK(h.give_back(1) == lines{"lend #1 to b"});
    }

    TEST_CASE("a failure that isn't transient fails every waiter at once; none reconnects")
    {
        struct row {
            const char* name;
            error_code ec;
            bool final;
        };
        for (const auto& r : {
                 row{"535 (permanent)", bad_auth, true},
                 row{"no AUTH mechanism (permanent)",
                     make_error_code(error::auth_mechanism_unavailable), true},
                 row{"credentials the mechanism can't carry (invalid input)",
                     make_error_code(error::invalid_credentials), true},
                 row{"421 (transient)", busy, false},
                 row{"connection lost (transient)", make_error_code(error::connection_lost), false},
                 row{"connect timeout (transient)", make_error_code(error::connect_timeout), false},
             }) {
            CAPTURE(r.name);
            CHECK(connect_error_is_final(r.ec) == r.final);
            harness h(plain({.max_connections = 2, .pipeline_depth = 1}));
            h.acquire("a");
            h.acquire("b");
            h.acquire("c");
            const auto name = code(r.ec);
            if (r.final) {
                CHECK(h.refused(1, r.ec) ==
                      lines{"fail a: " + name, "fail b: " + name, "fail c: " + name});
                CHECK(h.refused(2, r.ec) == lines{}); // nobody left
                CHECK(h.advance(10s) == lines{});     // and no reconnect
            } else {
                // The oldest hears of it while no connection is open; the rest wait for the
                // next attempt (the backoff timer, once armed, is re-armed when it fires).
                CHECK(h.refused(1, r.ec) == lines{"fail a: " + name, "arm backoff @125ms"});
                CHECK(h.refused(2, r.ec) == lines{"fail b: " + name});
                CHECK(h.advance(250ms) == lines{"arm backoff @250ms", "open #3"});
            }
            CHECK(h.pol.gauges().waiters == (r.final ? 0u : 1u));
        }
    }

    TEST_CASE("drain: waiting checkouts are still served, then each connection says QUIT")
    {
        harness h(plain({.max_connections = 2, .pipeline_depth = 1, .checkout_timeout = 1s}));
        run_steps(
            h,
            {
                {"a, b",
                 [](harness& h) {
                     h.acquire("a");
                     return h.acquire("b");
                 },
                 {"open #2"}},
                {"#1, #2 ready",
                 [](harness& h) {
                     h.connected(1);
                     return h.connected(2);
                 },
                 {"lend #2 to b"}},
                {"c waits", [](harness& h) { return h.acquire("c"); }, {}},
                {"drain: c still waits", [](harness& h) { return h.drain(); }, {}},
                {"d is refused",
                 [](harness& h) { return h.acquire("d"); },
                 {"fail d: pool_closed"}},
                {"#1 back: c gets it", [](harness& h) { return h.give_back(1); }, {"lend #1 to c"}},
                {"#2 back: #1 still lent", [](harness& h) { return h.give_back(2); }, {}},
                {"#1 back: QUIT on both",
                 [](harness& h) { return h.give_back(1); },
                 {"quit #1", "quit #2"}},
                {"one QUIT done", [](harness& h) { return h.quit_done(); }, {}},
                {"both: drained",
                 [](harness& h) { return h.quit_done(); },
                 {"drained: ok", "cancel timers"}},
            });
    }

    TEST_CASE("drain: a connection still connecting is closed, not waited for")
    {
        harness h(plain({.max_connections = 1}));
        h.acquire("a");
        CHECK(h.cancel("a") == lines{"fail a: aborted"});
        CHECK(h.drain() == lines{"close #1", "drained: ok", "cancel timers"});
        CHECK(h.refused(1, make_error_code(asio::error::operation_aborted)) ==
              lines{"drained: ok", "cancel timers"}); // nothing left; said again, harmlessly
    }

    TEST_CASE("close: waiters fail with operation_aborted, connections close without QUIT")
    {
        harness h(plain({.max_connections = 2, .pipeline_depth = 1}));
        h.acquire("a");
        h.acquire("b");
        h.connected(1);
        h.acquire("c");
        CHECK(h.close() == lines{"fail b: aborted", "fail c: aborted", "close #1", "close #2",
                                 "cancel timers", "drained: aborted"});
        CHECK(h.close() == lines{});
        CHECK(h.acquire("d") == lines{"fail d: pool_closed"});
        CHECK(h.connected(2) == lines{}); // too late: the driver closes it
        CHECK(h.give_back(1) == lines{});
        CHECK(h.pol.gauges().open == 0);
    }

    TEST_CASE("a connection saying QUIT still counts against max_connections")
    {
        harness h(
            plain({.max_connections = 1, .pipeline_depth = 1, .max_messages_per_connection = 1}));
        h.acquire("a");
        h.connected(1);
        h.acquire("b");
        CHECK(h.give_back(1) == lines{"quit #1"});
        CHECK(h.serve() == lines{}); // b waits for the QUIT
        CHECK(h.quit_done() == lines{"open #2"});
    }

    TEST_CASE("abandon: everything is handed back unrun")
    {
        harness h(plain({.max_connections = 1, .pipeline_depth = 1}));
        h.acquire("a");
        h.connected(1);
        h.acquire("b");
        auto [waiters, nodes] = h.pol.abandon();
        CHECK(nodes.size() == 1);
        REQUIRE(waiters.size() == 1);
        CHECK(waiters[0].handler == "b");
        CHECK(h.pol.closed());
        CHECK(h.give_back(1) == lines{});
    }

    TEST_CASE("breaker: which connect failures count")
    {
        CHECK(connect_error_trips_breaker(refused));
        CHECK(connect_error_trips_breaker(silent));
        CHECK(connect_error_trips_breaker(make_error_code(error::connect_timeout)));
        CHECK(connect_error_trips_breaker(make_error_code(error::tls_handshake_timeout)));
        CHECK(connect_error_trips_breaker(make_error_code(error::connection_lost)));
        CHECK(connect_error_trips_breaker(make_error_code(asio::error::host_unreachable)));
        CHECK_FALSE(connect_error_trips_breaker(busy));     // the server answered
        CHECK_FALSE(connect_error_trips_breaker(bad_auth)); // final: fails every waiter anyway
        CHECK_FALSE(connect_error_trips_breaker(error_code{}));
    }

    TEST_CASE("breaker: N failures in a row open it; every waiter fails with the last error")
    {
        harness h(plain({.max_connections = 2,
                         .pipeline_depth = 1,
                         .checkout_timeout = 60s,
                         .breaker = {.failures = 3, .open_for = 1s}}));
        run_steps(
            h, {
                   {"four wait",
                    [](harness& h) {
                        h.acquire("a"), h.acquire("b"), h.acquire("c");
                        return h.acquire("d");
                    },
                    {}},
                   {"1st refusal: the oldest hears of it",
                    [](harness& h) { return h.refused(1, refused); },
                    {"fail a: refused", "arm backoff @125ms"}},
                   {"2nd", [](harness& h) { return h.refused(2, refused); }, {"fail b: refused"}},
                   {"backoff over",
                    [](harness& h) { return h.advance(250ms); },
                    {"arm backoff @250ms", "open #3", "open #4"}},
                   {"3rd: the breaker opens, every waiter fails at once",
                    [](harness& h) { return h.refused(3, silent); },
                    {"fail c: greeting_timeout", "fail d: greeting_timeout",
                     "breaker open until @1250ms: greeting_timeout"}},
                   {"a connect under way fails too: nothing more to do",
                    [](harness& h) { return h.refused(4, refused); },
                    {}},
                   {"a new checkout fails at once",
                    [](harness& h) { return h.acquire("e"); },
                    {"fail e: circuit_open"}},
                   {"and until the open period ends",
                    [](harness& h) {
                        h.advance(999ms);
                        return h.acquire("f");
                    },
                    {"fail f: circuit_open"}},
               });
        CHECK(h.pol.breaker(h.clock.now()) == pool::breaker_state::open);
        CHECK(h.pol.trips() == 1);
        CHECK(h.pol.breaker_failures() == 4);
        CHECK(h.pol.gauges().waiters == 0);
        CHECK(h.advance(10s) == lines{}); // nobody waits: no probe, no timer
        CHECK(h.pol.breaker(h.clock.now()) == pool::breaker_state::half_open);
    }

    TEST_CASE("breaker: half-open lets exactly one probe through; its success closes it")
    {
        harness h(plain({.max_connections = 4,
                         .pipeline_depth = 1,
                         .breaker = {.failures = 2, .open_for = 1s}}));
        h.acquire("a");
        h.acquire("b");
        h.refused(1, refused);
        CHECK(h.refused(2, refused) ==
              lines{"fail b: refused", "breaker open until @1000ms: refused"});
        h.advance(1s);
        run_steps(h, {
                         {"the first checkout after the open period: one probe",
                          [](harness& h) { return h.acquire("c"); },
                          {"open #3"}},
                         {"others wait behind it, no second connect",
                          [](harness& h) {
                              h.acquire("d");
                              return h.acquire("e");
                          },
                          {}},
                         {"the probe connects: closed, waiters served, more connections",
                          [](harness& h) { return h.connected(3); },
                          {"breaker closed", "lend #3 to c", "open #4", "open #5"}},
                     });
        CHECK(h.pol.breaker(h.clock.now()) == pool::breaker_state::closed);
        CHECK(h.pol.breaker_failures() == 0);
        CHECK(h.acquire("f") == lines{"open #6"}); // closed: checkouts wait again
    }

    TEST_CASE("breaker: a failed probe reopens it for another period")
    {
        harness h(plain({.max_connections = 4,
                         .pipeline_depth = 1,
                         .breaker = {.failures = 1, .open_for = 500ms}}));
        h.acquire("a");
        CHECK(h.refused(1, refused) ==
              lines{"fail a: refused", "breaker open until @500ms: refused"});
        h.advance(500ms);
        CHECK(h.acquire("b") == lines{"open #2"});
        h.acquire("c");
        // Whatever the error, even a reply (the server is there, but not serving).
        CHECK(h.refused(2, busy) ==
              lines{"fail b: 421", "fail c: 421", "breaker open until @1000ms: 421"});
        CHECK(h.pol.trips() == 2);
        CHECK(h.acquire("d") == lines{"fail d: circuit_open"});
        h.advance(500ms);
        CHECK(h.acquire("e") == lines{"open #3"});
        CHECK(h.connected(3) == lines{"breaker closed", "lend #3 to e"});
    }

    TEST_CASE("breaker: a success, or a server that answers, starts the count again")
    {
        harness h(plain({.max_connections = 1,
                         .pipeline_depth = 1,
                         .reconnect = {.initial = 10ms, .max = 10ms},
                         .breaker = {.failures = 2, .open_for = 1s}}));
        h.acquire("a");
        CHECK(h.refused(1, refused) == lines{"fail a: refused"}); // nobody left waiting
        CHECK(h.pol.breaker_failures() == 1);
        h.acquire("b");
        CHECK(h.advance(10ms) == lines{"open #2"});
        CHECK(h.connected(2) == lines{"lend #2 to b"});
        CHECK(h.pol.breaker_failures() == 0);
        h.c(2)->open = false;
        h.acquire("c");
        CHECK(h.give_back(2) == lines{"discard #2", "open #3"});
        CHECK(h.refused(3, refused) == lines{"fail c: refused"}); // 1 again, not 2
        h.acquire("d");
        CHECK(h.advance(10ms) == lines{"open #4"});
        CHECK(h.refused(4, busy) == lines{"fail d: 421"}); // a reply: back to 0
        CHECK(h.pol.breaker_failures() == 0);
        h.acquire("e");
        CHECK(h.advance(10ms) == lines{"open #5"});
        CHECK(h.refused(5, refused) == lines{"fail e: refused"});
        h.acquire("f");
        CHECK(h.advance(10ms) == lines{"open #6"});
        CHECK(h.refused(6, refused) ==
              lines{"fail f: refused", "breaker open until @1040ms: refused"});
    }

    TEST_CASE("breaker: with a connection open it stays closed; failures=0 never opens it")
    {
        {
            harness h(plain({.max_connections = 2,
                             .pipeline_depth = 1,
                             .breaker = {.failures = 1, .open_for = 1s}}));
            h.acquire("a");
            h.acquire("b");
            CHECK(h.connected(1) == lines{"lend #1 to a"});
            CHECK(h.refused(2, refused) == lines{"arm backoff @125ms"}); // b waits for #1
            CHECK(h.give_back(1) == lines{"lend #1 to b"});
            CHECK(h.pol.breaker(h.clock.now()) == pool::breaker_state::closed);
        }
        {
            harness h(plain({.max_connections = 1, .breaker = {.failures = 0}}));
            h.acquire("a");
            h.acquire("b");
            CHECK(h.refused(1, refused) == lines{"fail a: refused", "arm backoff @125ms"});
            for (int n = 2; n < 20; ++n) {
                h.advance(60s);
                h.refused(n, refused);
                h.acquire("x" + std::to_string(n));
            }
            CHECK(h.pol.trips() == 0);
        }
    }

    TEST_CASE("breaker: an open breaker arms no probe for min_idle before its time")
    {
        harness h(plain(
            {.max_connections = 1, .min_idle = 1, .breaker = {.failures = 1, .open_for = 1s}}));
        CHECK(h.serve() == lines{"open #1"});
        CHECK(h.refused(1, refused) ==
              lines{"breaker open until @1000ms: refused", "arm backoff @1000ms"});
        CHECK(h.advance(999ms) == lines{});
        CHECK(h.advance(1ms) == lines{"open #2"}); // the probe
        CHECK(h.connected(2) == lines{"breaker closed"});
    }
}
