// The resolver's decisions without sockets: which hosts skip DNS, the order of the addresses
// (RFC 8305 §4), when the next connection attempt may start (§5), what a c-ares status means.

#include "detail/resolver.hpp"

#include <ares.h>

#include <boost/asio/error.hpp>

#include <doctest/doctest.h>

using namespace mailroom;
using namespace mailroom::detail;
namespace ip = boost::asio::ip;

namespace {

std::vector<std::string> strings(const std::vector<ip::address>& a)
{
    std::vector<std::string> out;
    for (const auto& x : a)
        out.push_back(x.to_string());
    return out;
}

std::vector<ip::address> addrs(std::initializer_list<const char*> in)
{
    std::vector<ip::address> out;
    for (const char* s : in)
        out.push_back(ip::make_address(s));
    return out;
}

} // namespace

TEST_SUITE("smtp.resolver")
{
    TEST_CASE("IP literals and localhost never reach DNS")
    {
        CHECK(strings(*addresses_without_dns("127.0.0.1")) ==
              std::vector<std::string>{"127.0.0.1"});
        CHECK(strings(*addresses_without_dns("::1")) == std::vector<std::string>{"::1"});
        CHECK(strings(*addresses_without_dns("[::1]")) == std::vector<std::string>{"::1"});
        CHECK(strings(*addresses_without_dns("2001:db8::25")) ==
              std::vector<std::string>{"2001:db8::25"});
        // RFC 6761 §6.3, any case, with or without the root dot.
        for (const char* h :
             {"localhost", "LocalHost", "localhost.", "mx.localhost", "a.b.LOCALHOST"}) {
            CAPTURE(h);
            REQUIRE(addresses_without_dns(h));
            CHECK(strings(*addresses_without_dns(h)) ==
                  std::vector<std::string>{"::1", "127.0.0.1"});
        }
        for (const char* h : {"mail.example.com", "localhost.example.com", "xlocalhost",
                              "notlocalhost", "256.1.1.1", "[mail.example.com]", ""}) {
            CAPTURE(h);
            CHECK_FALSE(addresses_without_dns(h));
        }
    }

    TEST_CASE("families interleaved, starting with the first address's (RFC 8305 §4)")
    {
        CHECK(strings(interleave_families(addrs(
                  {"2001:db8::1", "2001:db8::2", "2001:db8::3", "192.0.2.1", "192.0.2.2"}))) ==
              std::vector<std::string>{"2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2",
                                       "2001:db8::3"});
        CHECK(strings(interleave_families(addrs({"192.0.2.1", "192.0.2.2", "2001:db8::1"}))) ==
              std::vector<std::string>{"192.0.2.1", "2001:db8::1", "192.0.2.2"});
        CHECK(strings(interleave_families(addrs({"192.0.2.1", "192.0.2.2"}))) ==
              std::vector<std::string>{"192.0.2.1", "192.0.2.2"});
        CHECK(interleave_families({}).empty());
    }

    TEST_CASE("attempts: the first at once, the next after the delay or a failure (§5)")
    {
        attempt_schedule s(3);
        CHECK(s.next(false) == 0u);
        CHECK_FALSE(s.next(false)); // the first is still trying: wait
        CHECK(s.more());
        CHECK(s.next(true) == 1u); // 250 ms passed
        CHECK_FALSE(s.next(false));
        s.failed(); // one of the two failed, the other still tries
        CHECK_FALSE(s.next(false));
        s.failed(); // both failed: the next at once
        CHECK(s.next(false) == 2u);
        CHECK_FALSE(s.more());
        CHECK_FALSE(s.next(true));
        CHECK_FALSE(s.exhausted());
        s.failed();
        CHECK(s.exhausted());

        attempt_schedule none(0);
        CHECK_FALSE(none.next(false));
        CHECK(none.exhausted());
    }

    TEST_CASE("c-ares statuses: no such name, try again, cancelled")
    {
        namespace ae = boost::asio::error;
        CHECK(!resolve_error(ARES_SUCCESS));
        CHECK(resolve_error(ARES_ENOTFOUND) == ae::host_not_found);
        CHECK(resolve_error(ARES_ENODATA) == ae::host_not_found);
        for (int st : {ARES_ESERVFAIL, ARES_EREFUSED, ARES_ETIMEOUT, ARES_ECONNREFUSED}) {
            CAPTURE(st);
            CHECK(resolve_error(st) == ae::host_not_found_try_again);
            CHECK(resolve_error(st) == condition::transient);
        }
        CHECK(resolve_error(ARES_ENOTFOUND) == condition::transient); // lib/error.cpp
        CHECK(resolve_error(ARES_ECANCELLED) == ae::operation_aborted);
        CHECK(resolve_error(ARES_EDESTRUCTION) == ae::operation_aborted);
        CHECK(resolve_error(ARES_EBADNAME) == ae::host_not_found);
    }
}
